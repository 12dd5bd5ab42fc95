//! The configuration block.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::{ConfigurationStore, Configurations};

/// The configuration building block.
pub struct ConfigurationBlock;

impl Block for ConfigurationBlock {
    const KIND: &'static str = "configuration";
    type Component = dyn ConfigurationStore;
    type Settings = ();
    type Handle = Configurations;

    fn settings(_metadata: &MetadataReader<'_>, _spec: &ComponentSpec) {}

    fn handle(
        component: Arc<dyn ConfigurationStore>,
        _settings: (),
        spec: &ComponentSpec,
    ) -> Configurations {
        Configurations::new(spec.ctx.name.clone(), component)
    }
}
