//! PostgreSQL components, with Dapr's type names and metadata keys:
//! `state.postgresql` (v1 with `jsonb` and the query API, and v2) and
//! `configuration.postgresql` and `bindings.postgresql`.

mod binding;
mod configuration;
pub mod conninfo;
mod state;

pub use binding::{PgBinding, PgBindingConfig, PgBindingFactory};
pub use configuration::{PgConfigurationConfig, PgConfigurationFactory, PgConfigurationStore};
pub use state::{Layout, PgStateConfig, PgStateFactory, PgStateStore, cleanup_round};
