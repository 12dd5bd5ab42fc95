//! MySQL and MariaDB components, with Dapr's type names and metadata keys:
//! `state.mysql` (with the query API) and `bindings.mysql`.

mod binding;
pub mod dsn;
mod state;

pub use binding::{BINDINGS_MYSQL, MySqlBinding, MySqlBindingConfig};
pub use state::{MySqlStateConfig, MySqlStateStore, STATE_MYSQL, cleanup_round};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_MYSQL);
    registry.register::<mecha_state::StateBlock>(STATE_MYSQL);
}
