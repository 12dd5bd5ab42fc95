//! MySQL and MariaDB components, with Dapr's type names and metadata keys:
//! `state.mysql` (with the query API).

pub mod dsn;
mod state;

pub use state::{MySqlStateConfig, MySqlStateFactory, MySqlStateStore, cleanup_round};
