//! Components on the local machine, with Dapr's type names and metadata
//! keys: `secretstores.local.file` (a JSON file),
//! `secretstores.local.env` (the runtime's environment), `bindings.cron`
//! (a schedule) and `bindings.localstorage` (files of a folder).

mod cron;
mod env;
mod file;
mod localstorage;

pub use cron::{CronBinding, CronFactory, Schedule};
pub use localstorage::{LocalStorage, LocalStorageFactory};

pub use env::{EnvSecretStore, EnvSecretsFactory};
pub use file::{FileSecretStore, FileSecretsConfig, FileSecretsFactory};
