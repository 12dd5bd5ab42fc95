//! The state block: `keyPrefix` and `actorStateStore` are the runtime's.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::{Feature, KeyPrefix, KeyScheme, KeyedStateStore, StateStore};

/// The state building block.
pub struct StateBlock;

/// What the runtime reads from a state component's metadata.
pub struct StateSettings {
    keys: KeyScheme,
    actor_state_store: bool,
}

/// A live state store.
#[derive(Clone, Debug)]
pub struct StateHandle {
    pub store: KeyedStateStore,
    /// `actorStateStore: "true"`: the store actors and workflows use.
    pub actor_state_store: bool,
}

impl Block for StateBlock {
    const KIND: &'static str = "state";
    const NOUN: &'static str = "state store";
    const EXCLUSIVE_FLAG: Option<&'static str> = Some("actorStateStore");
    type Component = dyn StateStore;
    type Settings = StateSettings;
    type Handle = StateHandle;

    fn settings(metadata: &MetadataReader<'_>, spec: &ComponentSpec) -> StateSettings {
        let key_prefix = metadata.string("keyPrefix");
        let actor_state_store = metadata.bool_or("actorStateStore", false);
        let ctx = &spec.ctx;
        let keys = match KeyPrefix::parse(key_prefix.as_deref()) {
            Ok(prefix) => prefix.scheme(&ctx.app_id, &ctx.name, ctx.namespace.as_deref()),
            Err(err) => {
                metadata.error(format!("metadata field 'keyPrefix': {err}"));
                KeyScheme::raw()
            }
        };
        StateSettings {
            keys,
            actor_state_store,
        }
    }

    fn handle(
        component: Arc<dyn StateStore>,
        settings: StateSettings,
        spec: &ComponentSpec,
    ) -> StateHandle {
        StateHandle {
            store: KeyedStateStore::new(spec.ctx.name.clone(), component, settings.keys),
            actor_state_store: settings.actor_state_store,
        }
    }

    fn capabilities(entry: &StateHandle) -> Vec<String> {
        let features = entry.store.features();
        let mut capabilities: Vec<String> =
            features.iter().map(|f| f.as_str().to_owned()).collect();
        // As daprd: a store with ETags and transactions can hold actor state.
        if features.contains(&Feature::Etag) && features.contains(&Feature::Transactional) {
            capabilities.push("ACTOR".to_owned());
        }
        capabilities
    }
}
