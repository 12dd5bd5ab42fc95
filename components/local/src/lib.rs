//! Components on the local machine, with Dapr's type names and metadata
//! keys: `secretstores.local.file` (a JSON file) and
//! `secretstores.local.env` (the runtime's environment).

mod env;
mod file;

pub use env::{EnvSecretStore, EnvSecretsFactory};
pub use file::{FileSecretStore, FileSecretsConfig, FileSecretsFactory};
