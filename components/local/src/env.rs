//! `secretstores.local.env`: secrets from the runtime's environment. With
//! `prefix`, secret `name` is variable `{prefix}{name}`, and a bulk read
//! lists the variables with the prefix, named without it.
//!
//! As in daprd, `APP_API_TOKEN` and `DAPR_*` are never handed out. Unlike
//! daprd, which answers an empty value, a variable that is not set is a
//! "not found" error, as every other store answers for a missing secret.
//! The environment is read when the component starts (a process's
//! environment does not change under it).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use mecha_core::ComponentFactory;
use mecha_secrets::*;

pub const SECRETSTORES_LOCAL_ENV: ComponentFactory<dyn SecretStore, String> = ComponentFactory::new(
    "secretstores.local.env",
    |_, metadata, _| metadata.string_or("prefix", ""),
    |prefix| Box::pin(connect(prefix)),
);

async fn connect(prefix: String) -> anyhow::Result<Arc<dyn SecretStore>> {
    // Variables that are not UTF-8 cannot be secrets (and must not stop
    // the runtime).
    let environment = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    Ok(Arc::new(EnvSecretStore::new(prefix, environment)))
}

/// The `secretstores.local.env` store.
pub struct EnvSecretStore {
    /// The variables with the prefix, named without it.
    secrets: BTreeMap<String, String>,
}

/// Variables a secret store must never hand out: the runtime's own.
fn forbidden(variable: &str) -> bool {
    let upper = variable.to_ascii_uppercase();
    upper == "APP_API_TOKEN" || upper.starts_with("DAPR_")
}

impl EnvSecretStore {
    /// A store over `environment` (the process's, in the runtime).
    pub fn new(prefix: String, environment: impl IntoIterator<Item = (String, String)>) -> Self {
        let secrets = environment
            .into_iter()
            .filter(|(variable, _)| !forbidden(variable))
            .filter_map(|(variable, value)| {
                let name = variable.strip_prefix(&prefix)?;
                (!name.is_empty()).then(|| (name.to_owned(), value))
            })
            .collect();
        Self { secrets }
    }
}

#[async_trait]
impl SecretStore for EnvSecretStore {
    async fn get(&self, name: &str, _metadata: &Metadata) -> Result<Secret, SecretError> {
        match self.secrets.get(name) {
            Some(value) => Ok([(name.to_owned(), value.clone())].into()),
            None => Err(SecretError::NotFound(name.to_owned())),
        }
    }

    async fn bulk(&self, _metadata: &Metadata) -> Result<BTreeMap<String, Secret>, SecretError> {
        Ok(self
            .secrets
            .iter()
            .map(|(name, value)| (name.clone(), [(name.clone(), value.clone())].into()))
            .collect())
    }
}
