//! Components on the local machine, with Dapr's type names and metadata
//! keys: `secretstores.local.file` (a JSON file),
//! `secretstores.local.env` (the runtime's environment), `bindings.cron`
//! (a schedule) and `bindings.localstorage` (files of a folder).

mod cron;
mod env;
mod file;
mod localstorage;

pub use cron::{BINDINGS_CRON, CronBinding, Schedule};
pub use localstorage::{BINDINGS_LOCALSTORAGE, LocalStorage};

pub use env::{EnvSecretStore, SECRETSTORES_LOCAL_ENV};
pub use file::{FileSecretStore, FileSecretsConfig, SECRETSTORES_LOCAL_FILE};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_CRON);
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_LOCALSTORAGE);
    registry.register::<mecha_secrets::SecretsBlock>(SECRETSTORES_LOCAL_ENV);
    registry.register::<mecha_secrets::SecretsBlock>(SECRETSTORES_LOCAL_FILE);
}
