//! The configuration block.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::{ConfigurationHandle, ConfigurationStore};

/// The configuration building block.
pub struct ConfigurationBlock;

impl Block for ConfigurationBlock {
    const KIND: &'static str = "configuration";
    type Component = dyn ConfigurationStore;
    type Settings = ();
    type Handle = ConfigurationHandle;

    fn settings(_metadata: &MetadataReader<'_>, _spec: &ComponentSpec) {}

    fn handle(
        component: Arc<dyn ConfigurationStore>,
        _settings: (),
        spec: &ComponentSpec,
    ) -> ConfigurationHandle {
        ConfigurationHandle::new(spec.ctx.name.clone(), component)
    }
}
