//! The pub/sub block: topic scopes are the runtime's, and the consumer
//! group is the app id unless the component names one.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader, Properties};

use crate::{PubSub, PubSubHandle, ScopeSettings, TopicScopes};

/// The pub/sub building block.
pub struct PubSubBlock;

/// What the runtime reads from a pub/sub component's metadata.
pub struct PubSubSettings {
    scopes: TopicScopes,
}

impl Block for PubSubBlock {
    const KIND: &'static str = "pubsub";
    type Component = dyn PubSub;
    type Settings = PubSubSettings;
    type Handle = PubSubHandle;

    fn defaults(properties: &mut Properties, spec: &ComponentSpec) {
        // As daprd: the consumer group is the app id unless it is given.
        if properties
            .get("consumerID")
            .is_none_or(|v| v.trim().is_empty())
        {
            properties
                .0
                .push(("consumerID".into(), spec.ctx.app_id.clone()));
        }
    }

    fn settings(metadata: &MetadataReader<'_>, spec: &ComponentSpec) -> PubSubSettings {
        let (allowed, protected, publishing, subscribing) = (
            metadata.string("allowedTopics"),
            metadata.string("protectedTopics"),
            metadata.string("publishingScopes"),
            metadata.string("subscriptionScopes"),
        );
        let scopes = TopicScopes::new(
            &spec.ctx.app_id,
            &ScopeSettings {
                allowed_topics: allowed.as_deref(),
                protected_topics: protected.as_deref(),
                publishing_scopes: publishing.as_deref(),
                subscription_scopes: subscribing.as_deref(),
            },
        );
        PubSubSettings { scopes }
    }

    fn handle(
        component: Arc<dyn PubSub>,
        settings: PubSubSettings,
        spec: &ComponentSpec,
    ) -> PubSubHandle {
        // As daprd: metadata naming `{namespace}` makes the topics of the
        // component the namespace's own.
        let topic_prefix = match (&spec.ctx.namespace, spec.namespaced) {
            (Some(namespace), true) => namespace.clone(),
            _ => String::new(),
        };
        PubSubHandle::new(
            spec.ctx.name.clone(),
            spec.ctx.app_id.clone(),
            component,
            settings.scopes,
        )
        .with_topic_prefix(topic_prefix)
    }

    fn capabilities(broker: &PubSubHandle) -> Vec<String> {
        broker
            .features()
            .iter()
            .filter_map(|f| f.dapr_name())
            .map(str::to_owned)
            .collect()
    }
}
