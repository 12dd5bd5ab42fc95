//! The secrets building block.
//!
//! - [`SecretStore`] is the contract every secret store implements.
//! - [`SecretScope`] is a `Configuration`'s `spec.secrets.scopes` entry for
//!   one store, with daprd's rule for which keys an app may read.
//! - [`SecretsHandle`] is the block's handle on one configured store: the
//!   component and its scope.
//! - `conformance` (feature `conformance`) is the suite every store must
//!   pass, one test per case through [`secrets_conformance!`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;

mod block;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::{SecretScopes, SecretsBlock};

/// One secret: its values by key. A single-valued secret has one entry,
/// named as the secret.
pub type Secret = BTreeMap<String, String>;

/// Request metadata (`metadata.*` on HTTP).
pub type Metadata = BTreeMap<String, String>;

/// A capability a secret store declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// A secret may hold several values (`multiValued` stores).
    MultipleKeyValuesPerSecret,
}

impl Feature {
    /// The name Dapr's metadata API reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::MultipleKeyValuesPerSecret => "MULTIPLE_KEY_VALUES_PER_SECRET",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// The contract of a secret store.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    fn features(&self) -> &[Feature] {
        &[]
    }

    /// One secret; [`SecretError::NotFound`] when there is none by that name.
    async fn get(&self, name: &str, metadata: &Metadata) -> Result<Secret, SecretError>;

    /// Every secret the store holds, by name.
    async fn bulk(&self, metadata: &Metadata) -> Result<BTreeMap<String, Secret>, SecretError>;
}

/// Which secrets of one store an app may read (`spec.secrets.scopes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretScope {
    /// `defaultAccess: deny`.
    pub deny_by_default: bool,
    pub allowed: BTreeSet<String>,
    pub denied: BTreeSet<String>,
}

impl SecretScope {
    /// daprd's rule: a non-empty `allowedSecrets` list is the whole answer;
    /// otherwise `deniedSecrets` refuses, and `defaultAccess` decides the
    /// rest. Names match exactly.
    pub fn allows(&self, name: &str) -> bool {
        if !self.allowed.is_empty() {
            return self.allowed.contains(name);
        }
        if self.denied.contains(name) {
            return false;
        }
        !self.deny_by_default
    }
}

/// Why a secret was not handed out.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("access denied by policy to get \"{key}\" from \"{store}\"")]
    Denied { key: String, store: String },
    #[error(transparent)]
    Store(#[from] SecretError),
}

/// A configured secret store.
#[derive(Clone)]
pub struct SecretsHandle {
    name: String,
    component: Arc<dyn SecretStore>,
    scope: Option<SecretScope>,
}

impl std::fmt::Debug for SecretsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsHandle")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl SecretsHandle {
    pub fn new(name: impl Into<String>, component: Arc<dyn SecretStore>) -> Self {
        Self {
            name: name.into(),
            component,
            scope: None,
        }
    }

    pub fn with_scope(mut self, scope: Option<SecretScope>) -> Self {
        self.scope = scope;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn features(&self) -> &[Feature] {
        self.component.features()
    }

    fn allows(&self, key: &str) -> bool {
        self.scope.as_ref().is_none_or(|scope| scope.allows(key))
    }

    /// One secret, if the scope lets the app read it (checked before the
    /// store is asked).
    pub async fn get(&self, key: &str, metadata: &Metadata) -> Result<Secret, AccessError> {
        if !self.allows(key) {
            return Err(AccessError::Denied {
                key: key.to_owned(),
                store: self.name.clone(),
            });
        }
        Ok(self.component.get(key, metadata).await?)
    }

    /// Every secret the scope lets the app read.
    pub async fn bulk(&self, metadata: &Metadata) -> Result<BTreeMap<String, Secret>, SecretError> {
        let mut all = self.component.bulk(metadata).await?;
        all.retain(|name, _| self.allows(name));
        Ok(all)
    }

    /// A value for a component's `secretKeyRef`: the secret `name`, its
    /// entry `key`. Scopes limit what apps read through the API, not what
    /// the runtime's own component files name, as in daprd.
    pub async fn resolve(&self, name: &str, key: &str) -> Result<String, AccessError> {
        let secret = self.component.get(name, &Metadata::new()).await?;
        secret
            .get(key)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(format!("{name} (key {key})")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(deny: bool, allowed: &[&str], denied: &[&str]) -> SecretScope {
        SecretScope {
            deny_by_default: deny,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            denied: denied.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scopes_follow_daprd() {
        assert!(scope(false, &[], &[]).allows("any"));
        assert!(!scope(true, &[], &[]).allows("any"));
        let allow_list = scope(false, &["a"], &["a", "b"]);
        assert!(allow_list.allows("a"), "the allow list wins");
        assert!(!allow_list.allows("c"), "outside the allow list is denied");
        let deny_list = scope(false, &[], &["b"]);
        assert!(!deny_list.allows("b"));
        assert!(deny_list.allows("B"), "names match exactly");
        assert!(scope(true, &["x"], &[]).allows("x"));
    }
}
