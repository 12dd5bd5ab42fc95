//! The pub/sub API: publish, bulk publish and streaming subscriptions.
//! Every publish is wrapped in a CloudEvent (unless `rawPayload`), checked
//! against the component's topic scopes and handed to the component.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use mecha_core::{ApiError, GrpcCode};
use mecha_invoke::trace;
use mecha_pubsub::cloudevent::{self, Origin};
use mecha_pubsub::subscription::field_among;
use mecha_pubsub::{
    Feature, Kind, Metadata, PubSubBlock, PubSubHandle, PublishError, PublishRequest,
    SubscribeError, SubscriptionId, SubscriptionSpec,
};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Api;
use crate::topic_stream::StreamSink;
pub use crate::topic_stream::{EventAnswers, TopicEvents};
pub use mecha_pubsub::sink::outcome_of_status_code;
pub use mecha_pubsub::{Event, EventFields, Outcome};

/// A publish, as either transport carries it.
#[derive(Clone, Debug, Default)]
pub struct Publish {
    pub pubsub: String,
    pub topic: String,
    pub data: Bytes,
    /// The payload's content type (`Content-Type`, `data_content_type`).
    pub content_type: Option<String>,
    /// `metadata.*` query parameters, or the gRPC request's metadata.
    pub metadata: Metadata,
    /// The caller's headers, for its trace context.
    pub trace: HeaderMap,
}

/// One entry of a bulk publish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkEntry {
    pub entry_id: String,
    pub event: Bytes,
    pub content_type: String,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default)]
pub struct BulkPublish {
    pub pubsub: String,
    pub topic: String,
    pub entries: Vec<BulkEntry>,
    pub metadata: Metadata,
    pub trace: HeaderMap,
}

/// An entry a bulk publish could not publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEntry {
    pub entry_id: String,
    pub error: String,
}

/// A bulk publish that failed: daprd's error, and the entries that were
/// not published (none when the whole request was refused).
#[derive(Debug)]
pub struct BulkPublishError {
    pub error: ApiError,
    pub failed: Vec<FailedEntry>,
}

impl From<ApiError> for BulkPublishError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            failed: Vec::new(),
        }
    }
}

fn pubsub_error(code: &'static str, http: u16, grpc: GrpcCode, message: String) -> ApiError {
    ApiError::new(code, http, grpc, message)
}

pub fn pubsub_not_found(name: &str) -> ApiError {
    pubsub_error(
        "ERR_PUBSUB_NOT_FOUND",
        404,
        GrpcCode::InvalidArgument,
        format!("pubsub {name} is not found"),
    )
    .with_reason("DAPR_PUBSUB_NOT_FOUND")
}

fn topic_empty(pubsub: &str) -> ApiError {
    pubsub_error(
        "ERR_TOPIC_NAME_EMPTY",
        404,
        GrpcCode::InvalidArgument,
        format!("topic is empty in pubsub {pubsub}"),
    )
    .with_reason("DAPR_PUBSUB_TOPIC_NAME_EMPTY")
    .with_resource("pubsub", pubsub)
}

fn metadata_error(pubsub: &str, problem: String) -> ApiError {
    pubsub_error(
        "ERR_PUBSUB_REQUEST_METADATA",
        400,
        GrpcCode::InvalidArgument,
        format!("failed deserializing metadata. Error: {problem}"),
    )
    .with_reason("DAPR_PUBSUB_METADATA_DESERIALIZATION")
    .with_resource("pubsub", pubsub)
}

fn events_error(reason: &'static str, pubsub: &str, message: String) -> ApiError {
    pubsub_error(
        "ERR_PUBSUB_EVENTS_SER",
        400,
        GrpcCode::InvalidArgument,
        message,
    )
    .with_reason(reason)
    .with_resource("pubsub", pubsub)
}

fn forbidden(pubsub: &str, topic: &str, app_id: &str) -> ApiError {
    let message = format!("topic {topic} is not allowed for app id {app_id}");
    pubsub_error(
        "ERR_PUBSUB_FORBIDDEN",
        403,
        GrpcCode::PermissionDenied,
        message.clone(),
    )
    .with_reason("DAPR_PUBSUB_FORBIDDEN")
    .with_resource("pubsub", pubsub)
    .with_info_metadata("topic", topic)
    .with_info_metadata("error", message)
}

fn publish_failed(pubsub: &str, topic: &str, err: impl std::fmt::Display) -> ApiError {
    pubsub_error(
        "ERR_PUBSUB_PUBLISH_MESSAGE",
        500,
        GrpcCode::Internal,
        format!("error when publishing to topic {topic} in pubsub {pubsub}: {err}"),
    )
    .with_reason("DAPR_PUBSUB_PUBLISH_MESSAGE")
    .with_resource("pubsub", pubsub)
    .with_info_metadata("topic", topic)
    .with_info_metadata("error", err.to_string())
}

fn publish_error(pubsub: &str, topic: &str, app_id: &str, err: PublishError) -> ApiError {
    match err {
        PublishError::Forbidden { .. } => forbidden(pubsub, topic, app_id),
        PublishError::Failed(err) => publish_failed(pubsub, topic, format!("{err:#}")),
    }
}

/// A metadata value by key, matched case-insensitively.
fn lookup<'m>(metadata: &'m Metadata, key: &str) -> Option<&'m str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// `rawPayload`: publish the bytes as they are.
fn raw_payload(pubsub: &str, metadata: &Metadata) -> Result<bool, ApiError> {
    match lookup(metadata, "rawPayload").filter(|v| !v.is_empty()) {
        None => Ok(false),
        Some(value) => mecha_core::metadata::parse_bool(value).ok_or_else(|| {
            metadata_error(
                pubsub,
                format!("rawPayload value must be a valid boolean: actual is '{value}'"),
            )
        }),
    }
}

/// The message's time to live, as daprd reads it (`ttl` or `ttlInSeconds`:
/// a Go duration, or a whole number of seconds). As in daprd, a value it
/// cannot read, or one not above zero, means no expiry: the publish goes
/// on without one.
fn ttl(metadata: &Metadata) -> Option<Duration> {
    let value = lookup(metadata, "ttl")
        .or_else(|| lookup(metadata, "ttlInSeconds"))
        .map(str::trim)
        .filter(|v| !v.is_empty())?;
    if let Ok(duration) = mecha_core::units::parse_go_duration(value) {
        return Some(duration).filter(|d| !d.is_zero());
    }
    match value.parse::<i64>() {
        Ok(seconds) if seconds > 0 => Some(Duration::from_secs(seconds as u64)),
        _ => {
            tracing::debug!(value, "unreadable ttlInSeconds on publish: no expiry");
            None
        }
    }
}

/// The trace context of the publish: the caller's, continued, or a new one.
pub(crate) fn trace_context(caller: &HeaderMap) -> (String, String) {
    let mut headers = HeaderMap::new();
    for key in [trace::TRACEPARENT, trace::TRACESTATE] {
        if let Some(value) = caller.get(key) {
            headers.insert(key, value.clone());
        }
    }
    trace::next_hop(&mut headers);
    let text = |key| {
        headers
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (text(trace::TRACEPARENT), text(trace::TRACESTATE))
}

impl Api {
    /// Finds a pub/sub component by name, with daprd's errors.
    fn broker(&self, name: &str) -> Result<PubSubHandle, ApiError> {
        let components = self.runtime().components();
        // daprd always has its pub/sub registry, so no pub/sub at all is
        // an unknown one (404), never "not configured".
        if name.is_empty() {
            return Err(pubsub_error(
                "ERR_PUBSUB_EMPTY",
                404,
                GrpcCode::InvalidArgument,
                "pubsub name is empty".into(),
            )
            .with_reason("DAPR_PUBSUB_NAME_EMPTY"));
        }
        components
            .get::<PubSubBlock>(name)
            .cloned()
            .ok_or_else(|| pubsub_not_found(name))
    }

    /// The bytes published for one event: the payload as it is with
    /// `rawPayload`, else its CloudEvent.
    #[allow(clippy::too_many_arguments)]
    fn event_bytes(
        &self,
        broker: &PubSubHandle,
        topic: &str,
        data: &[u8],
        content_type: Option<&str>,
        metadata: &Metadata,
        caller: &HeaderMap,
        raw: bool,
    ) -> Result<Bytes, ApiError> {
        if raw {
            return Ok(Bytes::copy_from_slice(data));
        }
        // With a broker that expires messages itself, the TTL is its job.
        let ttl = ttl(metadata).filter(|_| !broker.has(Feature::MessageTtl));
        let (traceparent, tracestate) = trace_context(caller);
        let origin = Origin {
            app_id: &self.runtime().info.app_id,
            pubsub: broker.name(),
            topic,
            traceparent: &traceparent,
            tracestate: &tracestate,
        };
        let now = SystemTime::now();
        let is_cloudevent = content_type
            .is_some_and(|c| cloudevent::base_content_type_is(c, cloudevent::CONTENT_TYPE));
        if !is_cloudevent {
            return Ok(Bytes::from(cloudevent::wrap_to_vec(
                data,
                content_type,
                metadata,
                &origin,
                now,
                ttl,
            )));
        }
        let event = cloudevent::augment(data, &origin, now, ttl).map_err(|err| {
            pubsub_error(
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                500,
                GrpcCode::InvalidArgument,
                "cannot create cloudevent".into(),
            )
            .with_reason("DAPR_PUBSUB_CLOUD_EVENT_CREATION")
            .with_info_metadata("appID", self.runtime().info.app_id.clone())
            .with_info_metadata("error", err.to_string())
        })?;
        Ok(Bytes::from(
            serde_json::to_vec(&event).expect("JSON values serialise"),
        ))
    }

    /// daprd checks the pub/sub, the topic and `rawPayload` before it reads
    /// a publish's body: for a body that could not be read or parsed, their
    /// error, if there is one, comes first. Called on that failure only (a
    /// good request meets the same checks in `publish`, in the same order).
    pub fn publish_body_error(
        &self,
        pubsub: &str,
        topic: &str,
        metadata: &Metadata,
        err: ApiError,
    ) -> ApiError {
        let checked = self.broker(pubsub).and_then(|broker| {
            if topic.is_empty() {
                return Err(topic_empty(broker.name()));
            }
            raw_payload(broker.name(), metadata).map(drop)
        });
        checked.err().unwrap_or(err)
    }

    /// `POST /v1.0/publish/{pubsub}/{topic}`, gRPC `PublishEvent`.
    pub async fn publish(&self, request: Publish) -> Result<(), ApiError> {
        let broker = self.broker(&request.pubsub)?;
        let pubsub = broker.name().to_owned();
        if request.topic.is_empty() {
            return Err(topic_empty(&pubsub));
        }
        let raw = raw_payload(&pubsub, &request.metadata)?;
        let app_id = self.runtime().info.app_id.clone();
        if !broker.may_publish(&request.topic) {
            return Err(forbidden(&pubsub, &request.topic, &app_id));
        }
        let data = self.event_bytes(
            &broker,
            &request.topic,
            &request.data,
            request.content_type.as_deref(),
            &request.metadata,
            &request.trace,
            raw,
        )?;
        let content_type = if raw {
            request.content_type
        } else {
            Some(cloudevent::CONTENT_TYPE.to_owned())
        };
        broker
            .publish(PublishRequest {
                topic: request.topic.clone(),
                data,
                content_type,
                metadata: request.metadata,
            })
            .await
            .map_err(|err| publish_error(&pubsub, &request.topic, &app_id, err))
    }

    /// `POST /v1.0/publish/bulk/{pubsub}/{topic}`, gRPC `BulkPublishEvent`:
    /// every entry is published on its own; as daprd, a failed entry fails
    /// the call (with the first entry's error), listing those that failed.
    pub async fn bulk_publish(&self, request: BulkPublish) -> Result<(), BulkPublishError> {
        let broker = self.broker(&request.pubsub)?;
        let pubsub = broker.name().to_owned();
        if request.topic.is_empty() {
            return Err(topic_empty(&pubsub).into());
        }
        let limit = mecha_core::limits::MAX_BULK_ITEMS;
        mecha_core::limits::check_count("entries", request.entries.len(), limit)
            .map_err(|err| bulk_body_error(&pubsub, &request.topic, err))?;
        let mut seen = HashSet::new();
        if request
            .entries
            .iter()
            .any(|e| e.entry_id.is_empty() || !seen.insert(e.entry_id.as_str()))
        {
            return Err(events_error(
                "DAPR_PUBSUB_MARSHAL_EVENTS",
                &pubsub,
                format!(
                    "error marshaling events to bytes for topic {} pubsub {pubsub}. error: entryId is duplicated or not present for entry",
                    request.topic
                ),
            )
            .into());
        }
        let raw = raw_payload(&pubsub, &request.metadata)?;
        let app_id = self.runtime().info.app_id.clone();
        if !broker.may_publish(&request.topic) {
            return Err(forbidden(&pubsub, &request.topic, &app_id).into());
        }
        let mut ids = Vec::with_capacity(request.entries.len());
        let mut requests = Vec::with_capacity(request.entries.len());
        for entry in request.entries {
            // Unlike daprd, the request's metadata applies to every entry
            // (the entry's own wins).
            let mut metadata = request.metadata.clone();
            metadata.extend(entry.metadata);
            let content_type = Some(entry.content_type.as_str()).filter(|c| !c.is_empty());
            let data = self.event_bytes(
                &broker,
                &request.topic,
                &entry.event,
                content_type,
                &metadata,
                &request.trace,
                raw,
            )?;
            ids.push(entry.entry_id);
            requests.push(PublishRequest {
                topic: request.topic.clone(),
                data,
                content_type: Some(if raw {
                    entry.content_type
                } else {
                    cloudevent::CONTENT_TYPE.to_owned()
                }),
                metadata,
            });
        }
        let results = broker
            .bulk_publish(&request.topic, requests)
            .await
            .map_err(|err| publish_error(&pubsub, &request.topic, &app_id, err))?;
        let failed: Vec<FailedEntry> = ids
            .into_iter()
            .zip(results)
            .filter_map(|(entry_id, result)| {
                result.err().map(|err| FailedEntry {
                    entry_id,
                    error: format!("{err:#}"),
                })
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(BulkPublishError {
            error: bulk_publish_failed(&pubsub, &request.topic, &failed),
            failed,
        })
    }

    /// `SubscribeTopicEventsAlpha1`: the topic's events, for the caller to
    /// answer one by one.
    pub async fn subscribe_stream(
        &self,
        pubsub: &str,
        topic: &str,
        metadata: Metadata,
        dead_letter_topic: Option<String>,
    ) -> Result<TopicEvents, ApiError> {
        if pubsub.is_empty() {
            return Err(ApiError::bad_request("pubsubName is required"));
        }
        if topic.is_empty() {
            return Err(ApiError::bad_request("topic is required"));
        }
        let components = self.runtime().components();
        let broker = components
            .get::<PubSubBlock>(pubsub)
            .ok_or_else(|| pubsub_not_found(pubsub))?;
        let mut spec = SubscriptionSpec::new(pubsub, topic, "/", Kind::Streaming);
        spec.metadata = metadata;
        spec.dead_letter_topic = dead_letter_topic.filter(|t| !t.is_empty());
        let (sink, events) = StreamSink::new();
        let id = self
            .subscriptions()
            .start(spec, broker, sink.clone())
            .await
            .map_err(|err| match err {
                SubscribeError::Forbidden { .. } => pubsub_error(
                    "ERR_PUBSUB_FORBIDDEN",
                    403,
                    GrpcCode::PermissionDenied,
                    format!("failed to create subscription for {pubsub}: {err}"),
                )
                .with_reason("DAPR_PUBSUB_FORBIDDEN"),
                SubscribeError::Invalid(_) => metadata_error(pubsub, err.to_string()),
                SubscribeError::Failed(_) => {
                    ApiError::internal(format!("failed to create subscription for {pubsub}: {err}"))
                }
            })?;
        Ok(sink.into_events(self.clone(), id, events))
    }

    /// Ends a streaming subscription, letting its deliveries in flight end.
    pub(crate) async fn unsubscribe(&self, id: SubscriptionId) {
        self.subscriptions().stop(id, Duration::from_secs(5)).await;
    }
}

impl BulkEntry {
    /// One entry of an HTTP bulk publish body: `entryId` (or the JS SDK's
    /// `entryID`: keys match case-insensitively, as Go's JSON decoding
    /// does), `event`, `contentType` and `metadata`. The entry is read as
    /// strictly as if it were parsed whole, though its event is never built.
    pub fn from_json_entry(pubsub: &str, topic: &str, raw: &RawValue) -> Result<Self, ApiError> {
        cloudevent::read_strictly(raw.get()).map_err(|err| bulk_body_error(pubsub, topic, err))?;
        if !raw.get().starts_with('{') {
            return Err(bulk_entry_error(
                pubsub,
                topic,
                "an entry is not a JSON object",
            ));
        }
        let object: BTreeMap<String, &RawValue> =
            serde_json::from_str(raw.get()).map_err(|err| bulk_body_error(pubsub, topic, err))?;
        let field = |name: &str| {
            field_among(object.get(name), object.iter(), name, |v| v.get() == "null").copied()
        };
        let value =
            |name: &str| field(name).and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
        let text = |name: &str| match value(name) {
            Some(Value::String(text)) => text,
            _ => String::new(),
        };
        let metadata = match value("metadata") {
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, value)
                })
                .collect(),
            _ => Default::default(),
        };
        Self::from_json_event(
            pubsub,
            topic,
            text("entryId"),
            field("event").unwrap_or(RawValue::NULL),
            text("contentType"),
            metadata,
        )
    }

    /// An entry whose event is given as JSON text: JSON content types take
    /// any JSON (kept as it is spelled), text types a string, and binary
    /// types a base64 string; without a content type, a string is text and
    /// anything else JSON.
    pub fn from_json_event(
        pubsub: &str,
        topic: &str,
        entry_id: String,
        event: &RawValue,
        content_type: String,
        metadata: Metadata,
    ) -> Result<Self, ApiError> {
        let mismatch = |detail: &str| bulk_entry_error(pubsub, topic, detail);
        let is_string = event.get().starts_with('"');
        let content_type = match content_type {
            given if !given.is_empty() => given,
            _ if is_string => "text/plain".into(),
            _ => "application/json".into(),
        };
        let string = || {
            serde_json::from_str::<String>(event.get())
                .map_err(|_| mismatch("mismatch between contentType and event"))
        };
        let bytes = if cloudevent::is_json(&content_type) {
            Bytes::copy_from_slice(event.get().as_bytes())
        } else if cloudevent::is_text(&content_type) {
            Bytes::from(string()?)
        } else {
            let encoded = string()?;
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|err| {
                        mismatch(&format!(
                            "unable to decode base64 {content_type} data: {err}"
                        ))
                    })?,
            )
        };
        Ok(BulkEntry {
            entry_id,
            event: bytes,
            content_type,
            metadata,
        })
    }
}

/// A bulk publish entry that cannot be read, as daprd answers it.
pub fn bulk_entry_error(pubsub: &str, topic: &str, detail: &str) -> ApiError {
    events_error(
        "DAPR_PUBSUB_MARSHAL_ENVELOPE",
        pubsub,
        format!(
            "error when marshalling cloud event envelope for topic {topic} pubsub {pubsub}: error: {detail}"
        ),
    )
}

/// A bulk publish with entries that failed, as daprd answers it: the call
/// fails with the first entry's error.
fn bulk_publish_failed(pubsub: &str, topic: &str, failed: &[FailedEntry]) -> ApiError {
    let first = failed.first().map(|f| f.error.as_str()).unwrap_or_default();
    publish_failed(pubsub, topic, first)
}

/// A publish whose body could not be read (over `--max-body-size`), as
/// daprd answers it: the publish failed.
pub fn unreadable_publish(pubsub: &str, topic: &str, err: ApiError) -> ApiError {
    if err.code == crate::budget::CODE {
        return err;
    }
    publish_failed(pubsub, topic, err.message)
}

/// The error of an HTTP bulk publish body that is not a JSON array (or
/// cannot be read).
pub fn bulk_body_error(pubsub: &str, topic: &str, err: impl std::fmt::Display) -> ApiError {
    events_error(
        "DAPR_PUBSUB_UNMARSHAL_EVENTS",
        pubsub,
        format!("error when unmarshaling the request for topic {topic} pubsub {pubsub}: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_entries_by_content_type() {
        let raw_entry = |event: &str, content_type: &str| {
            let event = RawValue::from_string(event.to_owned()).unwrap();
            BulkEntry::from_json_event(
                "p",
                "t",
                "1".into(),
                &event,
                content_type.into(),
                Metadata::new(),
            )
        };
        let entry = |event: Value, content_type: &str| raw_entry(&event.to_string(), content_type);
        let json = entry(serde_json::json!({"a": 1}), "application/json").unwrap();
        assert_eq!(&json.event[..], br#"{"a":1}"#);
        let spelled = raw_entry(r#"{"a": 2.50}"#, "application/json").unwrap();
        assert_eq!(
            &spelled.event[..],
            br#"{"a": 2.50}"#,
            "kept as it is spelled"
        );
        let escaped = raw_entry(r#""a\u0062""#, "text/plain").unwrap();
        assert_eq!(&escaped.event[..], b"ab", "a string's escapes are read");
        let text = entry(serde_json::json!("hi"), "text/plain").unwrap();
        assert_eq!(&text.event[..], b"hi");
        let binary = entry(serde_json::json!("AAE="), "application/octet-stream").unwrap();
        assert_eq!(&binary.event[..], [0, 1]);
        let inferred = entry(serde_json::json!("x"), "").unwrap();
        assert_eq!(inferred.content_type, "text/plain");
        let inferred = entry(serde_json::json!([1]), "").unwrap();
        assert_eq!(inferred.content_type, "application/json");
        for (bad, content_type) in [
            (serde_json::json!({"a": 1}), "text/plain"),
            (serde_json::json!("***"), "application/octet-stream"),
            (serde_json::json!(7), "application/octet-stream"),
        ] {
            let err = entry(bad.clone(), content_type).unwrap_err();
            assert_eq!(err.code, "ERR_PUBSUB_EVENTS_SER", "{bad}");
            assert_eq!(err.http_status, 400);
        }
    }

    #[test]
    fn a_failed_bulk_entry_fails_a_grpc_bulk_publish_as_in_daprd() {
        let failed = [
            FailedEntry {
                entry_id: "2".into(),
                error: "broker said no".into(),
            },
            FailedEntry {
                entry_id: "5".into(),
                error: "later".into(),
            },
        ];
        let err = bulk_publish_failed("p", "t", &failed);
        assert_eq!(
            (err.code, err.http_status, err.grpc_code),
            ("ERR_PUBSUB_PUBLISH_MESSAGE", 500, GrpcCode::Internal)
        );
        assert_eq!(
            err.message,
            "error when publishing to topic t in pubsub p: broker said no"
        );
        assert_eq!(err.reason, Some("DAPR_PUBSUB_PUBLISH_MESSAGE"));
    }

    #[test]
    fn metadata_is_checked() {
        let metadata: Metadata = [("rawPayload".to_owned(), "maybe".to_owned())].into();
        assert_eq!(
            raw_payload("p", &metadata).unwrap_err().code,
            "ERR_PUBSUB_REQUEST_METADATA"
        );
        let ttl_of = |key: &str, value: &str| ttl(&[(key.to_owned(), value.to_owned())].into());
        assert_eq!(ttl_of("ttlInSeconds", "soon"), None, "ignored, as in daprd");
        assert_eq!(ttl_of("ttlInSeconds", "-3"), None);
        assert_eq!(ttl_of("ttlinseconds", "5"), Some(Duration::from_secs(5)));
        assert_eq!(ttl_of("ttl", "90s"), Some(Duration::from_secs(90)));
        assert_eq!(
            ttl_of("ttlInSeconds", "1m30s"),
            Some(Duration::from_secs(90))
        );
    }
}
