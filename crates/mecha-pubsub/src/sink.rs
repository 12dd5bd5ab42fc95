//! The subscriber's side: what receives events (the app over HTTP or gRPC,
//! or a streaming subscription) and how its answers read.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use crate::cloudevent::{self, CloudEvent};
use crate::component::Metadata;
use crate::subscription::{SubscriptionSpec, field};

/// One event to deliver.
#[derive(Clone, Debug)]
pub struct Event {
    pub pubsub: String,
    pub topic: String,
    /// The route the rules chose.
    pub path: String,
    pub event: CloudEvent,
    /// What HTTP apps receive: the bytes as published, or the synthesised
    /// event of a raw payload.
    pub body: Bytes,
    /// The message's metadata and `pubsubName`: HTTP headers or gRPC
    /// metadata for the app.
    pub metadata: Metadata,
}

impl Event {
    pub fn id(&self) -> &str {
        cloudevent::attribute(&self.event, "id")
    }

    /// The event field by field, as gRPC apps receive it (`OnTopicEvent`,
    /// streaming subscriptions); an error when its data cannot be read.
    pub fn fields(&self) -> Result<EventFields, String> {
        let data = cloudevent::data_bytes(&self.event)?;
        let attribute = |name| cloudevent::attribute(&self.event, name).to_owned();
        Ok(EventFields {
            id: attribute("id"),
            source: attribute("source"),
            kind: attribute("type"),
            spec_version: attribute("specversion"),
            data_content_type: attribute("datacontenttype"),
            data: data.into(),
            topic: self.topic.clone(),
            pubsub_name: self.pubsub.clone(),
            path: self.path.clone(),
            extensions: cloudevent::extensions(&self.event),
        })
    }
}

/// An event field by field: the CloudEvent's core attributes, its data as
/// bytes, and the other attributes as `extensions`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventFields {
    pub id: String,
    pub source: String,
    /// The CloudEvent `type`.
    pub kind: String,
    pub spec_version: String,
    pub data_content_type: String,
    pub data: Bytes,
    pub topic: String,
    pub pubsub_name: String,
    pub path: String,
    pub extensions: CloudEvent,
}

/// What became of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: acknowledge.
    Success,
    /// `RETRY`, an error answer or none: deliver again (or dead-letter).
    Retry(String),
    /// `DROP` or 404: never again; dead-letter it if the subscription says so.
    Drop(String),
    /// The app has no handler for it (gRPC `Unimplemented`): acknowledged,
    /// not dead-lettered, as in daprd.
    Discard(String),
}

/// The status a gRPC app answers an event with (`TopicEventResponse`:
/// `SUCCESS` 0, `RETRY` 1, `DROP` 2).
pub fn outcome_of_status_code(status: i32) -> Outcome {
    match status {
        0 => Outcome::Success,
        2 => Outcome::Drop("the app answered DROP".into()),
        1 => Outcome::Retry("the app answered RETRY".into()),
        other => Outcome::Retry(format!("the app answered the unknown status {other}")),
    }
}

/// The app's status word, on HTTP (`{"status": ...}`) and in bulk answers.
pub fn outcome_of_status(status: &str, bulk: bool) -> Outcome {
    match status {
        "SUCCESS" => Outcome::Success,
        // A single delivery's empty status is success; a bulk entry's is
        // not (daprd's rule).
        "" if !bulk => Outcome::Success,
        "DROP" => Outcome::Drop("the app answered DROP".into()),
        "RETRY" => Outcome::Retry("the app answered RETRY".into()),
        "" => Outcome::Retry("the app gave no status".into()),
        other => Outcome::Retry(format!("the app answered the unknown status '{other}'")),
    }
}

/// Reads a 2xx HTTP answer to a single delivery: an empty body, one that is
/// not `{"status": "..."}`, or `SUCCESS` is success.
pub fn outcome_of_http_body(body: &[u8]) -> Outcome {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => match field(&object, "status") {
            Some(Value::String(status)) => outcome_of_status(status, false),
            _ => Outcome::Success,
        },
        _ => Outcome::Success,
    }
}

/// One entry of a bulk delivery.
#[derive(Clone, Debug)]
pub struct BulkEntry {
    pub entry_id: String,
    pub payload: BulkPayload,
    pub content_type: String,
    pub metadata: Metadata,
    /// The event's JSON as it came from the broker, when the runtime added
    /// nothing to it: an HTTP bulk body carries these bytes as they are.
    pub json: Option<Bytes>,
}

#[derive(Clone, Debug)]
pub enum BulkPayload {
    CloudEvent(CloudEvent),
    /// A raw payload (`rawPayload` subscriptions).
    Raw(Bytes),
}

/// Events delivered in one call (bulk subscribe).
#[derive(Clone, Debug)]
pub struct BulkEvent {
    pub id: String,
    pub pubsub: String,
    pub topic: String,
    pub path: String,
    pub metadata: Metadata,
    pub entries: Vec<BulkEntry>,
}

/// What became of a bulk delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkOutcome {
    /// One outcome for every entry.
    All(Outcome),
    /// By entry id; an entry missing from the answer is retried.
    PerEntry(HashMap<String, Outcome>),
}

impl BulkOutcome {
    pub fn of(&self, entry_id: &str) -> Outcome {
        match self {
            BulkOutcome::All(outcome) => outcome.clone(),
            BulkOutcome::PerEntry(outcomes) => {
                outcomes.get(entry_id).cloned().unwrap_or_else(|| {
                    Outcome::Retry(format!("no answer for entry {entry_id}: RETRY required"))
                })
            }
        }
    }
}

/// Reads a 2xx answer to a bulk delivery (`{"statuses": [{"entryId",
/// "status"}]}`); a body that does not parse retries every entry.
pub fn bulk_outcome_of_http_body(body: &[u8]) -> BulkOutcome {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let statuses = parsed
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|o| field(o, "statuses"))
        .and_then(Value::as_array);
    let Some(statuses) = statuses else {
        return BulkOutcome::All(Outcome::Retry(
            "the app's bulk answer has no statuses".into(),
        ));
    };
    let outcomes = statuses
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|entry| {
            let id = field(entry, "entryId")?.as_str()?.to_owned();
            let status = field(entry, "status")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some((id, outcome_of_status(status, true)))
        })
        .collect();
    BulkOutcome::PerEntry(outcomes)
}

/// The body of an HTTP bulk delivery, written straight out: an event that
/// came as JSON the runtime did not change is copied in, not rebuilt.
pub fn bulk_http_body(event: &BulkEvent) -> Vec<u8> {
    use base64::Engine as _;
    fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
        serde_json::to_writer(out, value).expect("JSON values serialise");
    }
    let size: usize = event
        .entries
        .iter()
        .map(|entry| entry.json.as_ref().map_or(512, Bytes::len) + 256)
        .sum();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(br#"{"id":"#);
    json(&mut out, &event.id);
    out.extend_from_slice(br#","type":"#);
    json(&mut out, cloudevent::DEFAULT_BULK_TYPE);
    out.extend_from_slice(br#","topic":"#);
    json(&mut out, &event.topic);
    out.extend_from_slice(br#","pubsubname":"#);
    json(&mut out, &event.pubsub);
    out.extend_from_slice(br#","metadata":"#);
    json(&mut out, &event.metadata);
    out.extend_from_slice(br#","entries":["#);
    for (index, entry) in event.entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"entryId":"#);
        json(&mut out, &entry.entry_id);
        out.extend_from_slice(br#","event":"#);
        match (&entry.json, &entry.payload) {
            (Some(bytes), _) => out.extend_from_slice(bytes),
            (None, BulkPayload::CloudEvent(ce)) => json(&mut out, ce),
            (None, BulkPayload::Raw(bytes)) => json(
                &mut out,
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            ),
        }
        out.extend_from_slice(br#","metadata":"#);
        json(&mut out, &entry.metadata);
        if !entry.content_type.is_empty() {
            out.extend_from_slice(br#","contentType":"#);
            json(&mut out, &entry.content_type);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// What events are delivered to.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    async fn deliver(&self, event: &Event) -> Outcome;

    async fn deliver_bulk(&self, event: &BulkEvent) -> BulkOutcome;
}

/// The app as a subscriber: it also declares subscriptions of its own.
#[async_trait]
pub trait AppSubscriber: Sink {
    /// `GET /dapr/subscribe` or `ListTopicSubscriptions`; an empty list
    /// when the app declares none.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionSpec>, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_delivery_answers() {
        assert_eq!(outcome_of_http_body(b""), Outcome::Success);
        assert_eq!(outcome_of_http_body(b"null"), Outcome::Success);
        assert_eq!(outcome_of_http_body(b"not json"), Outcome::Success);
        assert_eq!(outcome_of_http_body(br#"{"status":""}"#), Outcome::Success);
        assert_eq!(
            outcome_of_http_body(br#"{"status":"SUCCESS"}"#),
            Outcome::Success
        );
        assert!(matches!(
            outcome_of_http_body(br#"{"status":"RETRY"}"#),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            outcome_of_http_body(br#"{"Status":"DROP"}"#),
            Outcome::Drop(_)
        ));
        assert!(matches!(
            outcome_of_http_body(br#"{"status":"success"}"#),
            Outcome::Retry(_)
        ));
    }

    /// The HTTP bulk body: every entry's event, whether it is copied in as
    /// it came, written from its parsed form, or a raw payload.
    #[test]
    fn bulk_body_holds_every_entry() {
        let event: CloudEvent = serde_json::from_str(r#"{"id":"e1","data":{"n":1}}"#).unwrap();
        let metadata = Metadata::from([("k".to_owned(), "v \"q\"".to_owned())]);
        let entry = |id: &str, payload, json: Option<&str>| BulkEntry {
            entry_id: id.into(),
            payload,
            content_type: "application/cloudevents+json".into(),
            metadata: metadata.clone(),
            json: json.map(|j| Bytes::copy_from_slice(j.as_bytes())),
        };
        let bulk = BulkEvent {
            id: "b".into(),
            pubsub: "ps".into(),
            topic: "t\"x".into(),
            path: "/p".into(),
            metadata: metadata.clone(),
            entries: vec![
                entry(
                    "1",
                    BulkPayload::CloudEvent(event.clone()),
                    Some(r#" {"id":"e1","data":{"n":1}} "#),
                ),
                entry("2", BulkPayload::CloudEvent(event.clone()), None),
                entry("3", BulkPayload::Raw(Bytes::from_static(&[0, 255])), None),
            ],
        };
        let body: Value = serde_json::from_slice(&bulk_http_body(&bulk)).unwrap();
        assert_eq!(body["id"], "b");
        assert_eq!(body["type"], cloudevent::DEFAULT_BULK_TYPE);
        assert_eq!(body["topic"], "t\"x");
        assert_eq!(body["pubsubname"], "ps");
        assert_eq!(body["metadata"]["k"], "v \"q\"");
        let entries = body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0]["event"], Value::Object(event.clone()));
        assert_eq!(entries[1]["event"], Value::Object(event));
        assert_eq!(entries[2]["event"], "AP8=");
        for (entry, id) in entries.iter().zip(["1", "2", "3"]) {
            assert_eq!(entry["entryId"], id);
            assert_eq!(entry["metadata"]["k"], "v \"q\"");
            assert_eq!(entry["contentType"], "application/cloudevents+json");
        }
    }

    #[test]
    fn bulk_answers() {
        let outcome = bulk_outcome_of_http_body(
            br#"{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryID":"b","status":"DROP"},{"entryId":"c","status":""}]}"#,
        );
        assert_eq!(outcome.of("a"), Outcome::Success);
        assert!(matches!(outcome.of("b"), Outcome::Drop(_)));
        assert!(matches!(outcome.of("c"), Outcome::Retry(_)), "empty status");
        assert!(
            matches!(outcome.of("d"), Outcome::Retry(_)),
            "missing entry"
        );
        assert!(matches!(
            bulk_outcome_of_http_body(b""),
            BulkOutcome::All(Outcome::Retry(_))
        ));
    }
}
