//! Request bodies: read within `--max-body-size`, and decoded as JSON with
//! Dapr's errors.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use mecha_core::ApiError;
use serde::Deserialize;

/// Reads a whole body, refusing one over `max` bytes before reading it when
/// its length is declared, and as soon as it passes `max` otherwise. Over
/// the limit is daprd's answer for a body it decodes as it reads (state):
/// `ERR_MALFORMED_REQUEST`.
pub(crate) async fn read(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    read_within(headers, body, max, || {
        ApiError::malformed_request(format!(
            "failed deserializing HTTP body: stream too large: the request body exceeds the limit of {max} bytes (--max-body-size)"
        ))
    })
    .await
}

/// [`read`] for the bodies daprd reads whole as bytes (lock, query,
/// metadata): over the limit is `ERR_BODY_READ`.
pub(crate) async fn read_bytes(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, ApiError> {
    read_within(headers, body, max, || {
        ApiError::body_read(format!(
            "failed to read request body: stream too large: the request body exceeds the limit of {max} bytes (--max-body-size)"
        ))
    })
    .await
}

async fn read_within(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    too_large: impl FnOnce() -> ApiError,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(ApiError::body_read(format!(
            "failed reading the request body: {err}"
        ))),
    }
}

/// `?metadata.k=v` parameters, without their prefix.
pub(crate) fn query_metadata(
    params: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata.")
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect()
}

/// Decodes JSON with Dapr's error for a malformed body.
pub(crate) fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::malformed_request(format!("failed deserializing HTTP body: {err}"))
    })
}

/// A JSON scalar read as text: metadata values are strings in Dapr, but
/// numbers and booleans are accepted too (`"ttlInSeconds": 60`).
#[derive(Debug)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Text(text)),
            serde_json::Value::Number(number) => Ok(Text(number.to_string())),
            serde_json::Value::Bool(flag) => Ok(Text(flag.to_string())),
            serde_json::Value::Null => Ok(Text(String::new())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string, found {other}"
            ))),
        }
    }
}

/// A value that must be a JSON object. serde lets a struct be read from a
/// JSON array as well; Dapr's bodies are objects, and an array where an
/// object belongs is a malformed request.
#[derive(Debug, Default)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

/// Path parameters, with Dapr's error when they cannot be decoded (such as
/// percent-encoding that is not UTF-8).
pub(crate) fn path<T>(
    extracted: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> Result<T, ApiError> {
    extracted
        .map(|axum::extract::Path(value)| value)
        .map_err(|err| ApiError::malformed_request(format!("invalid path: {}", err.body_text())))
}

/// Query parameters, with Dapr's error when they cannot be decoded.
pub(crate) fn query<T>(
    extracted: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    extracted
        .map(|axum::extract::Query(value)| value)
        .map_err(|err| ApiError::malformed_request(format!("invalid query: {}", err.body_text())))
}
