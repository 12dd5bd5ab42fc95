//! CloudEvents as Dapr builds them (dapr-contract.md §3): the envelope a
//! publish is wrapped in, the augmenting of an event the app built itself,
//! and the event synthesised for a raw payload on the subscriber side.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use mecha_core::units::format_rfc3339;
use serde_json::{Map, Value};

use crate::component::Metadata;

/// A CloudEvent in its JSON form.
pub type CloudEvent = Map<String, Value>;

pub const SPEC_VERSION: &str = "1.0";
pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
pub const DEFAULT_BULK_TYPE: &str = "com.dapr.event.sent.bulk";
pub const DEFAULT_SOURCE: &str = "Dapr";
pub const DEFAULT_DATA_CONTENT_TYPE: &str = "text/plain";
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
pub const OCTET_STREAM: &str = "application/octet-stream";

/// A new event id: a version 4 UUID, unique in all likelihood as one drawn
/// from the system's random source per id would be, without a system call
/// per id: a random base drawn once per process, stepped by a counter
/// through an odd multiplier (so no two counts give one id).
pub fn new_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    const STEP: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
    let base = *BASE.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let count = u128::from(COUNT.fetch_add(1, Ordering::Relaxed));
    let bits = base ^ count.wrapping_mul(STEP);
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .to_string()
}

/// Who publishes, where, in which trace.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub app_id: &'a str,
    pub pubsub: &'a str,
    pub topic: &'a str,
    pub traceparent: &'a str,
    pub tracestate: &'a str,
}

/// The base of a content type as it is written, without parameters.
fn base_of(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// Whether a content type's base is `base` (lower case), allocating nothing.
pub fn base_content_type_is(content_type: &str, base: &str) -> bool {
    base_of(content_type).eq_ignore_ascii_case(base)
}

/// `application/json` and the `+json` types.
pub fn is_json(content_type: &str) -> bool {
    let base = base_of(content_type);
    base.eq_ignore_ascii_case("application/json")
        || base.len() >= 5 && base.as_bytes()[base.len() - 5..].eq_ignore_ascii_case(b"+json")
}

/// Content types whose data Dapr carries as text.
pub fn is_text(content_type: &str) -> bool {
    let base = base_of(content_type);
    base.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("text/"))
        || base.eq_ignore_ascii_case("application/xml")
}

/// A `metadata.cloudevent.<name>` override, matched case-insensitively.
fn override_of<'m>(metadata: &'m Metadata, name: &str) -> Option<&'m str> {
    metadata
        .iter()
        .find(|(key, _)| {
            key.len() == "cloudevent.".len() + name.len()
                && key[..11].eq_ignore_ascii_case("cloudevent.")
                && key[11..].eq_ignore_ascii_case(name)
        })
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// The `expiration` of an event published at `now` that lives `ttl`.
pub fn expiration(now: SystemTime, ttl: Duration) -> String {
    format_rfc3339(now + ttl)
}

/// Wraps a payload in a new CloudEvent. `data` goes by its content type:
/// JSON types as JSON (as text when it does not parse), binary
/// (`application/octet-stream`, or bytes that are not UTF-8) as
/// `data_base64`, the rest as text. `ttl` stamps `expiration`, for brokers
/// that do not expire messages themselves.
pub fn wrap(
    data: &[u8],
    content_type: Option<&str>,
    metadata: &Metadata,
    origin: &Origin<'_>,
    now: SystemTime,
    ttl: Option<Duration>,
) -> CloudEvent {
    wrapped(data, content_type, metadata, origin, now, ttl).into_event()
}

/// [`wrap`], as the JSON bytes published: JSON data is copied into them as
/// it is, checked but never parsed into a tree and written out again, and
/// the attributes are written straight out, in the order a [`CloudEvent`]
/// keeps them, with `data` last.
pub fn wrap_to_vec(
    data: &[u8],
    content_type: Option<&str>,
    metadata: &Metadata,
    origin: &Origin<'_>,
    now: SystemTime,
    ttl: Option<Duration>,
) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, text: &str) {
        serde_json::to_writer(out, text).expect("strings serialise");
    }
    let wrapped = wrapped(data, content_type, metadata, origin, now, ttl);
    let mut out = Vec::with_capacity(data.len() + 512);
    out.push(b'{');
    for (key, value) in &wrapped.attributes {
        string(&mut out, key);
        out.push(b':');
        string(&mut out, value);
        out.push(b',');
    }
    match &wrapped.data {
        Payload::Json(raw) => {
            out.extend_from_slice(br#""data":"#);
            out.extend_from_slice(raw.as_bytes());
        }
        Payload::Text(text) => {
            out.extend_from_slice(br#""data":"#);
            string(&mut out, text);
        }
        Payload::Base64(encoded) => {
            out.extend_from_slice(br#""data_base64":"#);
            string(&mut out, encoded);
        }
    }
    out.push(b'}');
    out
}

/// A new event: its attributes (sorted by name, as a [`CloudEvent`] keeps
/// them), and its data apart.
struct Wrapped<'a> {
    attributes: Vec<(&'static str, Cow<'a, str>)>,
    data: Payload<'a>,
}

impl Wrapped<'_> {
    fn into_event(self) -> CloudEvent {
        let mut event: CloudEvent = self
            .attributes
            .into_iter()
            .map(|(key, value)| (key.to_owned(), Value::String(value.into_owned())))
            .collect();
        let (key, value) = match self.data {
            Payload::Json(raw) => ("data", serde_json::from_str(raw).expect("checked as JSON")),
            Payload::Text(text) => ("data", Value::String(text.to_owned())),
            Payload::Base64(encoded) => ("data_base64", Value::String(encoded)),
        };
        event.insert(key.into(), value);
        event
    }
}

fn wrapped<'a>(
    data: &'a [u8],
    content_type: Option<&'a str>,
    metadata: &'a Metadata,
    origin: &Origin<'a>,
    now: SystemTime,
    ttl: Option<Duration>,
) -> Wrapped<'a> {
    let content_type = content_type
        .filter(|c| !c.is_empty())
        .unwrap_or(DEFAULT_DATA_CONTENT_TYPE);
    let id = match override_of(metadata, "id") {
        Some(id) => Cow::Borrowed(id),
        None => Cow::Owned(new_id()),
    };
    let traceparent = override_of(metadata, "traceparent")
        .or_else(|| override_of(metadata, "traceid"))
        .unwrap_or(origin.traceparent);
    let tracestate = override_of(metadata, "tracestate").unwrap_or(origin.tracestate);
    let mut attributes = vec![
        ("id", id),
        ("specversion", SPEC_VERSION.into()),
        (
            "source",
            override_of(metadata, "source")
                .unwrap_or(origin.app_id)
                .into(),
        ),
        (
            "type",
            override_of(metadata, "type").unwrap_or(DEFAULT_TYPE).into(),
        ),
        ("datacontenttype", content_type.into()),
        ("time", format_rfc3339(now).into()),
    ];
    if let Some(subject) = override_of(metadata, "subject") {
        attributes.push(("subject", subject.into()));
    }
    attributes.extend(stamped(origin, traceparent, tracestate));
    if let Some(ttl) = ttl {
        attributes.push(("expiration", expiration(now, ttl).into()));
    }
    attributes.sort_unstable_by_key(|(key, _)| *key);
    Wrapped {
        attributes,
        data: payload(data, content_type),
    }
}

enum Payload<'d> {
    /// JSON, checked, without the whitespace around it.
    Json(&'d str),
    Text(&'d str),
    Base64(String),
}

fn payload<'d>(data: &'d [u8], content_type: &str) -> Payload<'d> {
    let base64 = || Payload::Base64(base64::engine::general_purpose::STANDARD.encode(data));
    if base_content_type_is(content_type, OCTET_STREAM) {
        return base64();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        // Text would lose these bytes; Dapr would mangle them.
        return base64();
    };
    // One strict reading checks it is a single JSON value with nothing but
    // JSON whitespace around it.
    if is_json(content_type) && read_strictly(text).is_ok() {
        return Payload::Json(text.trim_matches([' ', '\t', '\n', '\r']));
    }
    Payload::Text(text)
}

/// Checks that `text` is one JSON value a subscriber can read back (see
/// [`Strict`]), without building it; the error is the one building it
/// would give.
pub fn read_strictly(text: &str) -> serde_json::Result<()> {
    serde_json::from_str::<Strict>(text).map(drop)
}

/// Any JSON value, read as strictly as a subscriber parses the event (its
/// nesting depth, its strings' escapes, its numbers' range), and kept
/// nowhere. A `RawValue` alone only skips over a value, and would let
/// through data no subscriber could then read.
struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

/// What the runtime sets on every event it publishes.
fn stamped<'a>(
    origin: &Origin<'a>,
    traceparent: &'a str,
    tracestate: &'a str,
) -> [(&'static str, Cow<'a, str>); 5] {
    [
        ("topic", origin.topic.into()),
        ("pubsubname", origin.pubsub.into()),
        ("traceid", traceparent.into()),
        ("traceparent", traceparent.into()),
        ("tracestate", tracestate.into()),
    ]
}

fn stamp(event: &mut CloudEvent, origin: &Origin<'_>, traceparent: &str, tracestate: &str) {
    for (key, value) in stamped(origin, traceparent, tracestate) {
        event.insert(key.into(), Value::String(value.into_owned()));
    }
}

/// Why an event the app built could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InvalidEvent {
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the body is a JSON {0}, not an object")]
    NotObject(&'static str),
}

/// Takes an `application/cloudevents+json` body: every field the app set is
/// kept, the routing and trace fields are the runtime's, and `source`,
/// `type`, `specversion`, `time` and (unlike daprd) `id` are filled in when
/// missing.
pub fn augment(
    body: &[u8],
    origin: &Origin<'_>,
    now: SystemTime,
    ttl: Option<Duration>,
) -> Result<CloudEvent, InvalidEvent> {
    let mut event = match serde_json::from_slice::<Value>(body).map_err(InvalidEvent::NotJson)? {
        Value::Object(map) => map,
        other => return Err(InvalidEvent::NotObject(json_kind(&other))),
    };
    let mut default = |key: &str, value: String| {
        let missing = event
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        if missing {
            event.insert(key.to_owned(), Value::String(value));
        }
    };
    default("id", new_id());
    default("source", DEFAULT_SOURCE.to_owned());
    default("type", DEFAULT_TYPE.to_owned());
    default("specversion", SPEC_VERSION.to_owned());
    default("time", format_rfc3339(now));
    stamp(&mut event, origin, origin.traceparent, origin.tracestate);
    if let Some(ttl) = ttl {
        event.insert("expiration".into(), expiration(now, ttl).into());
    }
    Ok(event)
}

pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The event daprd synthesises for a raw payload (subscription metadata
/// `rawPayload: "true"`): the bytes as `data_base64`, trace fields from the
/// message's metadata.
pub fn from_raw_payload(
    data: &[u8],
    topic: &str,
    pubsub: &str,
    message_metadata: &Metadata,
) -> CloudEvent {
    let mut event = CloudEvent::new();
    let text = |value: &str| Value::String(value.to_owned());
    event.insert("id".into(), Value::String(new_id()));
    event.insert("specversion".into(), text(SPEC_VERSION));
    event.insert("datacontenttype".into(), text(OCTET_STREAM));
    event.insert("source".into(), text(DEFAULT_SOURCE));
    event.insert("type".into(), text(DEFAULT_TYPE));
    event.insert("topic".into(), text(topic));
    event.insert("pubsubname".into(), text(pubsub));
    event.insert(
        "data_base64".into(),
        text(&base64::engine::general_purpose::STANDARD.encode(data)),
    );
    for key in ["traceid", "tracestate", "traceparent"] {
        if let Some(value) = message_metadata.get(key) {
            event.insert(key.into(), text(value));
        }
    }
    if let Some(parent) = message_metadata.get("traceparent") {
        event.insert("traceid".into(), text(parent));
    }
    event
}

/// True when the event's `expiration` is in the past at `now`.
pub fn has_expired(event: &CloudEvent, now: SystemTime) -> bool {
    event
        .get("expiration")
        .and_then(Value::as_str)
        .and_then(mecha_core::units::parse_rfc3339)
        .is_some_and(|at| at <= now)
}

/// A string attribute of an event (`""` when missing or not a string).
pub fn attribute<'e>(event: &'e CloudEvent, name: &str) -> &'e str {
    event.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The event's data as bytes, as daprd gives it to gRPC apps: decoded
/// `data_base64`; text as its bytes; anything else as JSON. Unlike daprd,
/// data of other content types is not left out.
pub fn data_bytes(event: &CloudEvent) -> Result<Vec<u8>, String> {
    if let Some(encoded) = event.get("data_base64") {
        let text = encoded
            .as_str()
            .ok_or("data_base64 is not a string".to_owned())?;
        return base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|err| format!("data_base64 is not base64: {err}"));
    }
    match event.get("data") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if !is_json(attribute(event, "datacontenttype")) => {
            Ok(text.as_bytes().to_vec())
        }
        Some(value) => Ok(serde_json::to_vec(value).expect("JSON values serialise")),
    }
}

/// The attributes that are not CloudEvent core fields (gRPC `extensions`).
pub fn extensions(event: &CloudEvent) -> CloudEvent {
    const CORE: [&str; 7] = [
        "id",
        "source",
        "type",
        "specversion",
        "datacontenttype",
        "data",
        "data_base64",
    ];
    event
        .iter()
        .filter(|(key, _)| !CORE.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            app_id: "publisher",
            pubsub: "pubsub",
            topic: "orders",
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            tracestate: "",
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn wraps_json_text_and_binary() {
        let json = wrap(
            br#"{"a":1}"#,
            Some("application/json"),
            &Metadata::new(),
            &origin(),
            at(0),
            None,
        );
        assert_eq!(json["data"], serde_json::json!({"a": 1}));
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["source"], "publisher");
        assert_eq!(json["type"], DEFAULT_TYPE);
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["topic"], "orders");
        assert_eq!(json["pubsubname"], "pubsub");
        assert_eq!(json["traceid"], json["traceparent"]);
        assert_eq!(json["time"], "1970-01-01T00:00:00Z");
        assert!(json["id"].as_str().is_some_and(|id| id.len() == 36));

        let text = wrap(b"hello", None, &Metadata::new(), &origin(), at(0), None);
        assert_eq!(text["data"], "hello");
        assert_eq!(text["datacontenttype"], "text/plain");

        let invalid_json = wrap(
            b"{nope",
            Some("application/json"),
            &Metadata::new(),
            &origin(),
            at(0),
            None,
        );
        assert_eq!(invalid_json["data"], "{nope");

        let binary = wrap(
            &[0, 159, 255],
            Some("application/octet-stream"),
            &Metadata::new(),
            &origin(),
            at(0),
            None,
        );
        assert_eq!(binary["data_base64"], "AJ//");
        assert!(!binary.contains_key("data"));
        // Bytes that are not UTF-8 are never mangled into text.
        let not_utf8 = wrap(
            &[0xff, 0xfe],
            Some("image/png"),
            &Metadata::new(),
            &origin(),
            at(0),
            None,
        );
        assert_eq!(not_utf8["data_base64"], "//4=");
    }

    /// The bytes published are the event `wrap` builds, with JSON data
    /// kept as it came.
    #[test]
    fn wrapped_bytes_are_the_wrapped_event() {
        let metadata: Metadata = [
            ("cloudevent.id", "fixed"),
            ("cloudevent.subject", "a \"quoted\"\nsubject"),
            ("cloudevent.TraceParent", "00-tp"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        // JSON no subscriber could read (a lone surrogate, a number out of
        // range, nesting past 128) goes as text, as JSON that does not
        // parse always did.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for unreadable in [r#""\ud800""#, "1e400", &deep] {
            let event = wrap(
                unreadable.as_bytes(),
                Some("application/json"),
                &metadata,
                &origin(),
                at(7),
                None,
            );
            assert_eq!(event["data"], unreadable, "{unreadable}");
        }
        for (data, content_type) in [
            (
                &br#" {"a": [1, 2.50, "x\u00e9"], "b": null} "#[..],
                Some("application/json"),
            ),
            (b"12345678901234567890", Some("application/json")),
            (b"{nope", Some("application/json")),
            (deep.as_bytes(), Some("application/json")),
            (b"hello", None),
            (&[0, 159, 255], Some("application/octet-stream")),
            (&[0xff, 0xfe], Some("image/png")),
        ] {
            let ttl = Some(Duration::from_secs(5));
            let event = wrap(data, content_type, &metadata, &origin(), at(7), ttl);
            let bytes = wrap_to_vec(data, content_type, &metadata, &origin(), at(7), ttl);
            let parsed: CloudEvent = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed, event, "{}", String::from_utf8_lossy(&bytes));
        }
        // JSON data is copied, not rewritten: its spelling is kept.
        let bytes = wrap_to_vec(
            br#"{"n": 2.50}"#,
            Some("application/json"),
            &metadata,
            &origin(),
            at(7),
            None,
        );
        assert!(
            String::from_utf8(bytes)
                .unwrap()
                .contains(r#""data":{"n": 2.50}"#),
            "the data as it came"
        );
    }

    #[test]
    fn ids_are_version_4_uuids_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn metadata_overrides_and_expiration() {
        let metadata: Metadata = [
            ("cloudevent.id", "my-id"),
            ("CloudEvent.Type", "my.type"),
            ("cloudevent.source", "my-source"),
            ("cloudevent.subject", "sub"),
            (
                "cloudevent.traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let event = wrap(
            b"x",
            None,
            &metadata,
            &origin(),
            at(100),
            Some(Duration::from_secs(10)),
        );
        assert_eq!(event["id"], "my-id");
        assert_eq!(event["type"], "my.type");
        assert_eq!(event["source"], "my-source");
        assert_eq!(event["subject"], "sub");
        assert_eq!(
            event["traceid"],
            "00-11111111111111111111111111111111-2222222222222222-01"
        );
        assert_eq!(event["expiration"], "1970-01-01T00:01:50Z");
        assert!(!has_expired(&event, at(109)));
        assert!(has_expired(&event, at(110)));
    }

    #[test]
    fn augments_an_app_event() {
        let body = br#"{"id":"e1","type":"t","data":{"x":1},"topic":"other","custom":"kept"}"#;
        let event = augment(body, &origin(), at(0), None).unwrap();
        assert_eq!(event["id"], "e1");
        assert_eq!(event["type"], "t");
        assert_eq!(event["custom"], "kept");
        assert_eq!(event["topic"], "orders", "the runtime's topic wins");
        assert_eq!(event["source"], DEFAULT_SOURCE);
        assert_eq!(event["specversion"], "1.0");
        assert!(event.contains_key("time"));
        let without_id = augment(br#"{"data":1}"#, &origin(), at(0), None).unwrap();
        assert!(without_id["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(matches!(
            augment(b"[1]", &origin(), at(0), None),
            Err(InvalidEvent::NotObject("array"))
        ));
        assert!(matches!(
            augment(b"{", &origin(), at(0), None),
            Err(InvalidEvent::NotJson(_))
        ));
    }

    #[test]
    fn data_for_grpc_apps() {
        let mut event = CloudEvent::new();
        event.insert("datacontenttype".into(), "application/json".into());
        event.insert("data".into(), serde_json::json!({"b": 2, "a": 1}));
        assert_eq!(data_bytes(&event).unwrap(), br#"{"a":1,"b":2}"#);
        event.insert("data".into(), "quoted".into());
        assert_eq!(data_bytes(&event).unwrap(), br#""quoted""#);
        event.insert("datacontenttype".into(), "text/plain".into());
        assert_eq!(data_bytes(&event).unwrap(), b"quoted");
        event.insert("data_base64".into(), "AJ//".into());
        assert_eq!(data_bytes(&event).unwrap(), [0, 159, 255]);
        event.insert("data_base64".into(), "***".into());
        assert!(data_bytes(&event).is_err());
    }

    #[test]
    fn raw_payloads_become_events() {
        let metadata: Metadata = [(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )]
        .into();
        let event = from_raw_payload(b"raw", "t", "p", &metadata);
        assert_eq!(event["data_base64"], "cmF3");
        assert_eq!(event["datacontenttype"], OCTET_STREAM);
        assert_eq!(event["source"], DEFAULT_SOURCE);
        assert_eq!(event["traceid"], event["traceparent"]);
        assert!(!event.contains_key("time"));
        let ext = extensions(&event);
        assert!(ext.contains_key("topic") && !ext.contains_key("id"));
    }
}
