//! The distributed lock block: `keyPrefix` is the runtime's.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::{LockHandle, LockPrefix, LockStore};

/// The distributed lock building block.
pub struct LockBlock;

impl Block for LockBlock {
    const KIND: &'static str = "lock";
    type Component = dyn LockStore;
    type Settings = LockPrefix;
    type Handle = LockHandle;

    fn settings(metadata: &MetadataReader<'_>, _spec: &ComponentSpec) -> LockPrefix {
        LockPrefix::parse(metadata.string("keyPrefix").as_deref()).unwrap_or_else(|err| {
            metadata.error(format!("metadata field 'keyPrefix': {err}"));
            LockPrefix::AppId
        })
    }

    fn handle(
        component: Arc<dyn LockStore>,
        prefix: LockPrefix,
        spec: &ComponentSpec,
    ) -> LockHandle {
        LockHandle::new(spec.ctx.name.clone(), component, &prefix, &spec.ctx.app_id)
    }
}
