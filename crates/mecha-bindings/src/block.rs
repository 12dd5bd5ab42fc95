//! The bindings block: `direction` and `route` are the runtime's.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::{Binding, Directions, InputBinding, OutputBinding};

/// The bindings building block.
pub struct BindingsBlock;

/// What the runtime reads from a binding's metadata.
pub struct BindingSettings {
    directions: Option<Directions>,
    route: String,
}

/// A live binding: its directions, as its `direction` metadata limits them.
#[derive(Clone)]
pub struct BindingHandle {
    pub name: String,
    pub input: Option<Arc<dyn InputBinding>>,
    pub output: Option<Arc<dyn OutputBinding>>,
    /// Where the app gets its input events (`route`, or `/{name}`).
    pub route: String,
    /// `direction`, when given: then the app is not asked whether it takes
    /// the input.
    pub directions: Option<Directions>,
}

impl Block for BindingsBlock {
    const KIND: &'static str = "bindings";
    type Component = dyn Binding;
    type Settings = BindingSettings;
    type Handle = BindingHandle;

    fn settings(metadata: &MetadataReader<'_>, spec: &ComponentSpec) -> BindingSettings {
        let directions =
            Directions::parse(metadata.string("direction").as_deref()).unwrap_or_else(|err| {
                metadata.error(format!("metadata field 'direction': {err}"));
                None
            });
        let route = metadata
            .string("route")
            .map(|r| {
                if r.starts_with('/') {
                    r
                } else {
                    format!("/{r}")
                }
            })
            .unwrap_or_else(|| format!("/{}", spec.ctx.name));
        BindingSettings { directions, route }
    }

    fn handle(
        component: Arc<dyn Binding>,
        settings: BindingSettings,
        spec: &ComponentSpec,
    ) -> BindingHandle {
        let BindingSettings { directions, route } = settings;
        let wants = |input: bool| directions.is_none_or(|d| if input { d.input } else { d.output });
        BindingHandle {
            input: component.clone().input().filter(|_| wants(true)),
            output: component.output().filter(|_| wants(false)),
            name: spec.ctx.name.clone(),
            route,
            directions,
        }
    }

    fn capabilities(entry: &BindingHandle) -> Vec<String> {
        let mut capabilities = Vec::new();
        if entry.input.is_some() {
            capabilities.push("INPUT_BINDING".to_owned());
        }
        if entry.output.is_some() {
            capabilities.push("OUTPUT_BINDING".to_owned());
        }
        capabilities
    }
}
