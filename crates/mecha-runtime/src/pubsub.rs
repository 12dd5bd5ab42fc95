//! Starting the app's subscriptions: the declarative ones (`Subscription`
//! resources) merged with those the app declares itself, once the app
//! listens.

use std::sync::Arc;

use mecha_config::Report;
use mecha_pubsub::routing::{Routes, Rule};
use mecha_pubsub::subscription::{BulkSettings, Kind, SubscriptionSpec, merge, rules_from};
use mecha_pubsub::{PubSubBlock, Sink};

use crate::Runtime;

/// A `Subscription` resource as the pub/sub block takes it.
pub fn declarative_spec(resource: &mecha_config::Subscription) -> SubscriptionSpec {
    let rules = resource
        .rules
        .iter()
        .map(|rule| Rule {
            matches: rule.matches.clone(),
            path: rule.path.clone(),
        })
        .collect();
    SubscriptionSpec {
        pubsub: resource.pubsub_name.clone(),
        topic: resource.topic.clone(),
        metadata: resource.metadata.clone(),
        rules: rules_from(rules, &resource.default_route, &resource.route),
        dead_letter_topic: resource.dead_letter_topic.clone(),
        bulk: resource
            .bulk_subscribe
            .filter(|bulk| bulk.enabled)
            .map(|bulk| {
                BulkSettings::from_dapr(bulk.max_messages_count, bulk.max_await_duration_ms)
            }),
        kind: Kind::Declarative,
    }
}

/// Checks `Subscription` resources without starting anything: their rules
/// must compile and their metadata parse; one naming a pubsub that no
/// component defines is a warning.
pub fn check_subscriptions(
    subscriptions: &[mecha_config::Subscription],
    components: &[mecha_config::Component],
) -> Report {
    let mut report = Report::default();
    for resource in subscriptions {
        let label = Some(format!("subscription '{}'", resource.name));
        let spec = declarative_spec(resource);
        if let Err(err) = Routes::compile(&spec.rules) {
            report.error(&resource.file, label.clone(), err);
        }
        if let Err(err) = spec.raw_payload() {
            report.error(
                &resource.file,
                label.clone(),
                format!("spec.metadata: {err}"),
            );
        }
        let defined = components
            .iter()
            .any(|c| c.block() == "pubsub" && c.name == resource.pubsub_name);
        if !defined {
            report.warning(
                &resource.file,
                label,
                format!(
                    "pubsub '{}' is not defined by any component; the subscription will not start",
                    resource.pubsub_name
                ),
            );
        }
    }
    report
}

/// Starts every subscription of the app: to be called once the components
/// are built and the app listens. Subscriptions to an unknown pubsub, or
/// that a component refuses, are reported and skipped.
pub async fn start_subscriptions(runtime: &Arc<Runtime>) {
    let declarative = runtime.declarative_subscriptions();
    let Some(app) = runtime.app_subscriber().cloned() else {
        if !declarative.is_empty() {
            tracing::warn!(
                count = declarative.len(),
                "Subscription resources are loaded, but there is no app (--app-port) to deliver to; not subscribed"
            );
        }
        return;
    };
    let programmatic = if runtime.components().has::<PubSubBlock>() {
        match app.subscriptions().await {
            Ok(specs) => specs,
            Err(err) => {
                tracing::error!("error getting topics from app: {err}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let components = runtime.components();
    let sink: Arc<dyn Sink> = app;
    for spec in merge(declarative, programmatic) {
        let Some(broker) = components.get::<PubSubBlock>(&spec.pubsub) else {
            tracing::warn!(
                pubsub = %spec.pubsub,
                topic = %spec.topic,
                "a subscription names pubsub {}, which is not loaded; skipped",
                spec.pubsub
            );
            continue;
        };
        let (pubsub, topic) = (spec.pubsub.clone(), spec.topic.clone());
        if let Err(err) = runtime
            .subscriptions()
            .start(spec, broker, sink.clone())
            .await
        {
            tracing::error!(%pubsub, %topic, "failed to subscribe: {err}");
        }
    }
}

/// Stops delivering: the subscriptions first, then the components'
/// connections.
pub async fn stop_pubsub(runtime: &Runtime, grace: std::time::Duration) {
    runtime.subscriptions().close_all(grace).await;
    for broker in runtime.components().all::<PubSubBlock>() {
        broker.component().close().await;
    }
}
