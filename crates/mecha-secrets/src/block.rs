//! The secrets block: its stores are built first, resolve the other
//! components' `secretKeyRef`s, and are limited by the `Configuration`'s
//! secret scopes.

use std::collections::HashMap;
use std::sync::Arc;

use mecha_core::block::SendFuture;
use mecha_core::{Block, ComponentSpec, MetadataReader, SecretSource};

use crate::{SecretScope, SecretStore, SecretsHandle};

/// The secrets building block.
pub struct SecretsBlock;

/// `spec.secrets.scopes` of the `Configuration`, by store name.
#[derive(Clone, Debug, Default)]
pub struct SecretScopes(pub HashMap<String, SecretScope>);

impl Block for SecretsBlock {
    const KIND: &'static str = "secretstores";
    const SECRET_STORES: bool = true;
    type Component = dyn SecretStore;
    type Settings = ();
    type Handle = SecretsHandle;

    fn settings(_metadata: &MetadataReader<'_>, _spec: &ComponentSpec) {}

    fn handle(
        component: Arc<dyn SecretStore>,
        _settings: (),
        spec: &ComponentSpec,
    ) -> SecretsHandle {
        let name = &spec.ctx.name;
        let scope = spec
            .settings
            .get::<SecretScopes>()
            .and_then(|scopes| scopes.0.get(name))
            .cloned();
        SecretsHandle::new(name.clone(), component).with_scope(scope)
    }

    fn capabilities(secrets: &SecretsHandle) -> Vec<String> {
        secrets
            .features()
            .iter()
            .map(|f| f.as_str().to_owned())
            .collect()
    }

    fn secret_source(secrets: &SecretsHandle) -> Option<Arc<dyn SecretSource>> {
        Some(Arc::new(secrets.clone()))
    }
}

impl SecretSource for SecretsHandle {
    fn resolve<'a>(
        &'a self,
        name: &'a str,
        key: &'a str,
    ) -> SendFuture<'a, Result<String, String>> {
        Box::pin(async move {
            SecretsHandle::resolve(self, name, key)
                .await
                .map_err(|err| err.to_string())
        })
    }
}
