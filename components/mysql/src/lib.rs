//! MySQL and MariaDB components, with Dapr's type names and metadata keys:
//! `state.mysql` (with the query API) and `bindings.mysql`.

mod binding;
pub mod dsn;
mod state;

pub use binding::{MySqlBinding, MySqlBindingConfig, MySqlBindingFactory};
pub use state::{MySqlStateConfig, MySqlStateFactory, MySqlStateStore, cleanup_round};
