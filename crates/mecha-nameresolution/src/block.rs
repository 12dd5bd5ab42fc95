//! The name resolution block. Its component comes from the
//! `Configuration` (`spec.nameResolution`), not from resource files.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::NameResolver;

/// The name resolution building block.
pub struct NameResolutionBlock;

impl Block for NameResolutionBlock {
    const KIND: &'static str = "nameresolution";
    const FROM_RESOURCES: bool = false;
    type Component = dyn NameResolver;
    type Settings = ();
    type Handle = Arc<dyn NameResolver>;

    fn settings(_metadata: &MetadataReader<'_>, _spec: &ComponentSpec) {}

    fn handle(
        component: Arc<dyn NameResolver>,
        _settings: (),
        _spec: &ComponentSpec,
    ) -> Self::Handle {
        component
    }
}
