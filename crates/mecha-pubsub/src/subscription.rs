//! Subscriptions as the block knows them, whichever way they were declared:
//! a `Subscription` resource, the app's answer to `GET /dapr/subscribe` or
//! `ListTopicSubscriptions`, or a streaming subscription.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::component::Metadata;
use crate::routing::Rule;

/// How a subscription was declared (the metadata API's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Declarative,
    Programmatic,
    Streaming,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Declarative => "DECLARATIVE",
            Kind::Programmatic => "PROGRAMMATIC",
            Kind::Streaming => "STREAMING",
        }
    }

    /// The `PubsubSubscriptionType` enum value of the gRPC metadata API.
    pub fn grpc_value(self) -> i32 {
        match self {
            Kind::Declarative => 1,
            Kind::Programmatic => 2,
            Kind::Streaming => 3,
        }
    }
}

/// Bulk subscribe: deliver up to `max_messages` at once, waiting at most
/// `max_await` for a batch to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkSettings {
    pub max_messages: usize,
    pub max_await: Duration,
}

pub const DEFAULT_BULK_MAX_MESSAGES: usize = 100;
pub const DEFAULT_BULK_MAX_AWAIT: Duration = Duration::from_millis(1000);

impl BulkSettings {
    /// Dapr's settings, where zero (or less) takes the default.
    pub fn from_dapr(max_messages: i64, max_await_ms: i64) -> Self {
        Self {
            max_messages: usize::try_from(max_messages)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_BULK_MAX_MESSAGES),
            max_await: u64::try_from(max_await_ms)
                .ok()
                .filter(|n| *n > 0)
                .map_or(DEFAULT_BULK_MAX_AWAIT, Duration::from_millis),
        }
    }
}

/// One subscription: which topic, where its events go, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionSpec {
    pub pubsub: String,
    pub topic: String,
    pub metadata: Metadata,
    /// In order; a rule with no expression is the default route.
    pub rules: Vec<Rule>,
    pub dead_letter_topic: Option<String>,
    pub bulk: Option<BulkSettings>,
    pub kind: Kind,
}

impl SubscriptionSpec {
    /// A subscription of every event of `topic` to `path`.
    pub fn new(pubsub: &str, topic: &str, path: &str, kind: Kind) -> Self {
        Self {
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            metadata: Metadata::new(),
            rules: vec![Rule::default_route(path)],
            dead_letter_topic: None,
            bulk: None,
            kind,
        }
    }

    /// The `rawPayload` subscription metadata.
    pub fn raw_payload(&self) -> Result<bool, String> {
        match lookup(&self.metadata, "rawPayload") {
            None => Ok(false),
            Some(value) => mecha_core::metadata::parse_bool(value).ok_or_else(|| {
                format!("rawPayload value must be a valid boolean: actual is '{value}'")
            }),
        }
    }
}

fn lookup<'m>(metadata: &'m Metadata, key: &str) -> Option<&'m str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Dapr's route fields into rules: the rules in order, then `default` as
/// the last one, or else the v1 `route`.
pub fn rules_from(mut rules: Vec<Rule>, default: &str, route: &str) -> Vec<Rule> {
    if !default.is_empty() {
        rules.push(Rule::default_route(default));
    } else if !route.is_empty() {
        rules.push(Rule::default_route(route));
    }
    rules
}

/// Merges programmatic subscriptions over declarative ones: for one pubsub
/// and topic, the app's own declaration wins, as in daprd; among several
/// declarations of one kind the first declarative and the last programmatic
/// one count.
pub fn merge(
    declarative: Vec<SubscriptionSpec>,
    programmatic: Vec<SubscriptionSpec>,
) -> Vec<SubscriptionSpec> {
    let mut by_topic: BTreeMap<(String, String), SubscriptionSpec> = BTreeMap::new();
    let mut order = Vec::new();
    for spec in declarative {
        let key = (spec.pubsub.clone(), spec.topic.clone());
        if let std::collections::btree_map::Entry::Vacant(slot) = by_topic.entry(key.clone()) {
            order.push(key);
            slot.insert(spec);
        }
    }
    for spec in programmatic {
        let key = (spec.pubsub.clone(), spec.topic.clone());
        if by_topic.insert(key.clone(), spec).is_none() {
            order.push(key);
        }
    }
    order
        .into_iter()
        .filter_map(|key| by_topic.remove(&key))
        .collect()
}

/// A field of a JSON object, by name matched case-insensitively (Go's JSON
/// decoding, which daprd uses, matches keys that way).
pub fn field<'v>(object: &'v serde_json::Map<String, Value>, name: &str) -> Option<&'v Value> {
    field_among(object.get(name), object.iter(), name, Value::is_null)
}

/// [`field`] over any object's fields: the `exact` match, else the first
/// key equal to `name` in any case; a null value counts as absent.
pub fn field_among<'v, V>(
    exact: Option<&'v V>,
    mut fields: impl Iterator<Item = (&'v String, &'v V)>,
    name: &str,
    is_null: impl Fn(&V) -> bool,
) -> Option<&'v V> {
    exact
        .or_else(|| {
            fields
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
        .filter(|value| !is_null(value))
}

fn string_field(object: &serde_json::Map<String, Value>, name: &str) -> String {
    match field(object, name) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Metadata values as strings: scalars as their text, and a value that is
/// itself a quoted JSON string (the JS SDK sends `"\"true\""`) unquoted.
fn metadata_of(value: Option<&Value>) -> Metadata {
    let Some(Value::Object(map)) = value else {
        return Metadata::new();
    };
    map.iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::String(inner)) if text.starts_with('"') => inner,
                    _ => text.clone(),
                },
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// Parses the app's answer to `GET /dapr/subscribe`: the v1 (`route`) and
/// v2 (`routes`) shapes, in one array. Entries naming no pubsub, topic or
/// path are skipped with a warning, as daprd skips them.
pub fn parse_programmatic(body: &[u8]) -> Result<Vec<SubscriptionSpec>, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| format!("the app's subscription list is not JSON: {err}"))?;
    let Value::Array(entries) = value else {
        return Err(format!(
            "the app's subscription list is a JSON {}, not an array",
            crate::cloudevent::json_kind(&value)
        ));
    };
    let mut specs = Vec::new();
    for entry in entries {
        let Value::Object(object) = entry else {
            tracing::warn!("the app's subscription list holds a non-object entry; skipped");
            continue;
        };
        let pubsub = string_field(&object, "pubsubname");
        let topic = string_field(&object, "topic");
        if pubsub.is_empty() || topic.is_empty() {
            tracing::warn!(
                pubsub,
                topic,
                "a subscription without pubsubname or topic; skipped"
            );
            continue;
        }
        let (rules, default) = match field(&object, "routes") {
            Some(Value::Object(routes)) => {
                let rules = match field(routes, "rules") {
                    Some(Value::Array(rules)) => rules
                        .iter()
                        .filter_map(Value::as_object)
                        .map(|rule| Rule {
                            matches: string_field(rule, "match"),
                            path: string_field(rule, "path"),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                (rules, string_field(routes, "default"))
            }
            _ => (Vec::new(), String::new()),
        };
        let rules = rules_from(rules, &default, &string_field(&object, "route"));
        if rules.is_empty() {
            tracing::warn!(
                pubsub,
                topic,
                "topic {topic} has an empty routes; removing it from the subscriptions"
            );
            continue;
        }
        let bulk = match field(&object, "bulkSubscribe") {
            Some(Value::Object(bulk))
                if field(bulk, "enabled").and_then(Value::as_bool) == Some(true) =>
            {
                let number = |name| field(bulk, name).and_then(Value::as_i64).unwrap_or(0);
                Some(BulkSettings::from_dapr(
                    number("maxMessagesCount"),
                    number("maxAwaitDurationMs"),
                ))
            }
            _ => None,
        };
        let dead_letter_topic =
            Some(string_field(&object, "deadLetterTopic")).filter(|t| !t.is_empty());
        specs.push(SubscriptionSpec {
            pubsub,
            topic,
            metadata: metadata_of(field(&object, "metadata")),
            rules,
            dead_letter_topic,
            bulk,
            kind: Kind::Programmatic,
        });
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes() {
        let body = br#"[
          {"pubsubname":"pubsub","topic":"orders","route":"/orders","metadata":{"rawPayload":"true"},"deadLetterTopic":"dlq"},
          {"pubsubName":"pubsub","topic":"events",
           "routes":{"rules":[{"match":"event.type == \"order\"","path":"/o"}],"default":"/other"},
           "bulkSubscribe":{"enabled":true,"maxMessagesCount":10}},
          {"pubsubname":"pubsub","topic":"js","route":"/js","metadata":{"rawPayload":"\"true\"","n":3}},
          {"pubsubname":"pubsub","topic":"none"},
          {"topic":"nameless","route":"/x"}
        ]"#;
        let specs = parse_programmatic(body).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].rules, vec![Rule::default_route("/orders")]);
        assert_eq!(specs[0].dead_letter_topic.as_deref(), Some("dlq"));
        assert_eq!(specs[0].raw_payload(), Ok(true));
        assert_eq!(specs[1].pubsub, "pubsub", "keys match case-insensitively");
        assert_eq!(specs[1].rules.len(), 2);
        assert_eq!(specs[1].rules[1], Rule::default_route("/other"));
        assert_eq!(
            specs[1].bulk,
            Some(BulkSettings {
                max_messages: 10,
                max_await: DEFAULT_BULK_MAX_AWAIT
            })
        );
        assert_eq!(specs[2].metadata["rawPayload"], "true");
        assert_eq!(specs[2].metadata["n"], "3");
        assert!(parse_programmatic(b"{}").is_err());
        assert!(parse_programmatic(b"nope").is_err());
    }

    #[test]
    fn app_declarations_win() {
        let declared = SubscriptionSpec::new("p", "t", "/declared", Kind::Declarative);
        let other = SubscriptionSpec::new("p", "u", "/u", Kind::Declarative);
        let programmatic = SubscriptionSpec::new("p", "t", "/app", Kind::Programmatic);
        let merged = merge(vec![declared, other], vec![programmatic]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].rules[0].path, "/app");
        assert_eq!(merged[1].topic, "u");
    }

    #[test]
    fn raw_payload_must_be_a_boolean() {
        let mut spec = SubscriptionSpec::new("p", "t", "/", Kind::Streaming);
        spec.metadata.insert("rawPayload".into(), "maybe".into());
        assert!(spec.raw_payload().is_err());
    }
}
