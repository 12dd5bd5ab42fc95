//! `secretstores.local.file`: secrets from a JSON file, read once when the
//! component starts, as daprd does.
//!
//! Nested objects are flattened with `nestedSeparator` (default `:`), and
//! array items by index (`list:0`). With `multiValued: true` each top-level
//! key is one secret, holding the flattened values below it. Unlike daprd,
//! numbers and booleans read as their JSON text (`5432`, `true`) and null
//! as an empty string (daprd prints Go's `%!s(float64=5432)`), and
//! top-level numbers and booleans of a multi-valued file are secrets too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_secrets::*;
use serde_json::Value;

/// The typed configuration of a `secretstores.local.file` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSecretsConfig {
    /// Relative to the runtime's working directory, as in daprd.
    pub secrets_file: PathBuf,
    pub nested_separator: String,
    pub multi_valued: bool,
}

impl FileSecretsConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        Self {
            secrets_file: meta.required("secretsFile").into(),
            nested_separator: meta.string_or("nestedSeparator", ":"),
            multi_valued: meta.bool_or("multiValued", false),
        }
    }
}

pub const SECRETSTORES_LOCAL_FILE: ComponentFactory<dyn SecretStore, FileSecretsConfig> =
    ComponentFactory::new(
        "secretstores.local.file",
        |_, metadata, _| FileSecretsConfig::from_metadata(metadata),
        |config| Box::pin(connect(config)),
    );

async fn connect(config: FileSecretsConfig) -> anyhow::Result<Arc<dyn SecretStore>> {
    Ok(Arc::new(FileSecretStore::open(config).await?))
}

/// The `secretstores.local.file` store.
pub struct FileSecretStore {
    secrets: BTreeMap<String, Secret>,
    multi_valued: bool,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Flattens `value` under `prefix` into `out`.
fn flatten(prefix: &str, value: &Value, separator: &str, out: &mut Secret) {
    let mut child = |key: &str, value: &Value| {
        let name = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}{separator}{key}")
        };
        flatten(&name, value, separator, out);
    };
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| child(k, v)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| child(&i.to_string(), v)),
        scalar => {
            out.insert(prefix.to_owned(), text(scalar));
        }
    }
}

impl FileSecretStore {
    pub async fn open(config: FileSecretsConfig) -> anyhow::Result<Self> {
        let path = &config.secrets_file;
        let bytes = tokio::fs::read(path).await.map_err(|err| {
            anyhow::anyhow!("cannot read the secrets file {}: {err}", path.display())
        })?;
        let document: Value = serde_json::from_slice(&bytes).map_err(|err| {
            anyhow::anyhow!("the secrets file {} is not JSON: {err}", path.display())
        })?;
        let Value::Object(top) = document else {
            anyhow::bail!(
                "the secrets file {} must hold a JSON object",
                path.display()
            );
        };
        let separator = &config.nested_separator;
        let mut secrets = BTreeMap::new();
        if config.multi_valued {
            for (name, value) in &top {
                let mut values = Secret::new();
                match value {
                    Value::Object(_) | Value::Array(_) => {
                        flatten("", value, separator, &mut values)
                    }
                    scalar => {
                        values.insert(name.clone(), text(scalar));
                    }
                }
                secrets.insert(name.clone(), values);
            }
        } else {
            let mut flat = Secret::new();
            flatten("", &Value::Object(top), separator, &mut flat);
            for (name, value) in flat {
                secrets.insert(name.clone(), [(name, value)].into());
            }
        }
        Ok(Self {
            secrets,
            multi_valued: config.multi_valued,
        })
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    fn features(&self) -> &[Feature] {
        if self.multi_valued {
            &[Feature::MultipleKeyValuesPerSecret]
        } else {
            &[]
        }
    }

    async fn get(&self, name: &str, _metadata: &Metadata) -> Result<Secret, SecretError> {
        self.secrets
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(name.to_owned()))
    }

    async fn bulk(&self, _metadata: &Metadata) -> Result<BTreeMap<String, Secret>, SecretError> {
        Ok(self.secrets.clone())
    }
}
