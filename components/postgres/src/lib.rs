//! PostgreSQL components, with Dapr's type names and metadata keys:
//! `state.postgresql` (v1 with `jsonb` and the query API, and v2) and
//! `configuration.postgresql` and `bindings.postgresql`, and Mecha's
//! `scheduler.postgresql`.

mod binding;
mod configuration;
pub mod conninfo;
mod scheduler;
mod state;

pub use binding::{BINDINGS_POSTGRES, BINDINGS_POSTGRESQL, PgBinding, PgBindingConfig};
pub use configuration::{CONFIGURATION_POSTGRESQL, PgConfigurationConfig, PgConfigurationStore};
pub use scheduler::{PgJobStore, PgSchedulerConfig, SCHEDULER_POSTGRESQL};
pub use state::{Layout, PgStateConfig, PgStateStore, STATE_POSTGRESQL, cleanup_round};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_POSTGRESQL);
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_POSTGRES);
    registry.register::<mecha_configuration::ConfigurationBlock>(CONFIGURATION_POSTGRESQL);
    registry.register::<mecha_scheduler::SchedulerBlock>(SCHEDULER_POSTGRESQL);
    registry.register::<mecha_state::StateBlock>(STATE_POSTGRESQL);
}
