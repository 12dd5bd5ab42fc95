//! `Subscription` resources as the pub/sub block takes them, and their
//! checks.

use mecha_pubsub::routing::{Routes, Rule};
use mecha_pubsub::subscription::{BulkSettings, Kind, SubscriptionSpec, rules_from};
use mecha_resources::Report;

/// A `Subscription` resource as the pub/sub block takes it.
pub fn declarative_spec(resource: &mecha_resources::Subscription) -> SubscriptionSpec {
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
    subscriptions: &[mecha_resources::Subscription],
    components: &[mecha_resources::Component],
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
