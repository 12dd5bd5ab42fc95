//! Pub/sub routes (dapr-contract.md §1.4): publish and bulk publish.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mecha_api::pubsub::{
    BulkEntry, BulkPublish, BulkPublishError, Publish, bulk_body_error, unreadable_publish,
};
use mecha_core::ApiError;
use mecha_core::limits::MAX_BULK_ITEMS;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::Ctx;
use crate::body::{self, Bounded, query_metadata};
use crate::error::ErrorResponse;
use mecha_api::Overflow;

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `POST|PUT /v1.0/publish/{pubsub}/{topic...}`.
pub(crate) async fn publish(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Params,
    headers: HeaderMap,
    request: Body,
) -> Result<StatusCode, ErrorResponse> {
    let (pubsub, topic) = body::path(path)?;
    let params = body::query(params)?;
    let metadata = query_metadata(&params);
    let data = ctx
        .body_limit
        .read(&headers, request, Overflow::Malformed)
        .await
        .map_err(|err| {
            let err = unreadable_publish(&pubsub, &topic, err);
            ctx.api.publish_body_error(&pubsub, &topic, &metadata, err)
        })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ctx.api
        .publish(Publish {
            pubsub,
            topic,
            data,
            content_type,
            metadata,
            trace: headers,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/v1.0/publish/{pubsub}` (no topic) and `/v1.0/publish/`: Dapr's errors
/// for what is missing.
pub(crate) async fn publish_incomplete(
    State(ctx): State<Ctx>,
    path: Option<Path<String>>,
) -> Result<StatusCode, ErrorResponse> {
    let pubsub = path.map(|Path(p)| p).unwrap_or_default();
    ctx.api
        .publish(Publish {
            pubsub,
            ..Publish::default()
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A bulk publish body: a JSON array of entries. The array is read as
/// borrowed JSON text and each entry decoded on its own, its event kept as
/// the text it came as, so a large body never becomes a tree of JSON values.
pub(crate) fn parse_bulk(
    pubsub: &str,
    topic: &str,
    bytes: &[u8],
) -> Result<Vec<BulkEntry>, ApiError> {
    let entries: Bounded<&RawValue, MAX_BULK_ITEMS> =
        serde_json::from_slice(bytes).map_err(|err| bulk_body_error(pubsub, topic, err))?;
    entries
        .within("entries")
        .map_err(|err| bulk_body_error(pubsub, topic, err))?
        .into_iter()
        .map(|raw| BulkEntry::from_json_entry(pubsub, topic, raw))
        .collect()
}

/// `POST|PUT /v1.0/publish/bulk/{pubsub}/{topic...}` (and its
/// `v1.0-alpha1` alias): 204 when every entry is published, else 500 with
/// the failed entries.
pub(crate) async fn bulk_publish(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Params,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let (pubsub, topic) = body::path(path)?;
    let params = body::query(params)?;
    let metadata = query_metadata(&params);
    let body_error = |err| ctx.api.publish_body_error(&pubsub, &topic, &metadata, err);
    let bytes = ctx
        .body_limit
        .read(&headers, request, Overflow::Malformed)
        .await
        .map_err(|err| match err.code {
            mecha_api::budget::CODE => err,
            _ => body_error(bulk_body_error(&pubsub, &topic, err.message)),
        })?;
    let entries = parse_bulk(&pubsub, &topic, &bytes).map_err(body_error)?;
    drop(bytes);
    let published = ctx
        .api
        .bulk_publish(BulkPublish {
            pubsub,
            topic,
            entries,
            metadata,
            trace: headers,
        })
        .await;
    let (error, failed) = match published {
        Ok(()) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(BulkPublishError { error, failed }) if failed.is_empty() => return Err(error.into()),
        Err(BulkPublishError { error, failed }) => (error, failed),
    };
    let failed_json: Vec<Value> = failed
        .iter()
        .map(|f| json!({"entryId": f.entry_id, "error": f.error}))
        .collect();
    let body = json!({"failedEntries": failed_json, "errorCode": error.code}).to_string();
    let mut response = (
        StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
        .into_response();
    // As daprd: the answer and the error again, as response metadata.
    for (name, value) in [
        ("metadata.responsedata", body),
        ("metadata.error", error.message),
    ] {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_entries_are_json_objects() {
        let raw = |value: Value| RawValue::from_string(value.to_string()).unwrap();
        let entry = BulkEntry::from_json_entry(
            "p",
            "t",
            &raw(json!({"entryID": "1", "event": "AAE=", "contentType": "application/octet-stream", "metadata": {"k": 1, "s": "v"}})),
        )
        .unwrap();
        assert_eq!(entry.entry_id, "1", "the JS SDK's entryID is read");
        assert_eq!(&entry.event[..], [0, 1]);
        assert_eq!(
            (&entry.metadata["k"][..], &entry.metadata["s"][..]),
            ("1", "v")
        );
        let inferred =
            BulkEntry::from_json_entry("p", "t", &raw(json!({"entryId": "2", "event": {"a": 1}})))
                .unwrap();
        assert_eq!(inferred.content_type, "application/json");
        let err = BulkEntry::from_json_entry("p", "t", &raw(json!("not an object"))).unwrap_err();
        assert_eq!((err.code, err.http_status), ("ERR_PUBSUB_EVENTS_SER", 400));
        let entries = parse_bulk("p", "t", br#"[{"entryId":"1","event":"x"}]"#).unwrap();
        assert_eq!(entries.len(), 1);
        let err = parse_bulk("p", "t", br#"{"entryId":"1"}"#).unwrap_err();
        assert_eq!(err.code, "ERR_PUBSUB_EVENTS_SER");
        // The event is kept as it is spelled, and still read as strictly
        // as a tree would read it.
        let entries = parse_bulk(
            "p",
            "t",
            br#"[{"ENTRYID":"1","event":{"n": 2.50},"METADATA":{"k":"v"}}]"#,
        )
        .unwrap();
        assert_eq!(entries[0].entry_id, "1");
        assert_eq!(&entries[0].event[..], br#"{"n": 2.50}"#);
        assert_eq!(entries[0].metadata["k"], "v");
        for unreadable in [
            &br#"[{"entryId":"1","event":{"n":1e400}}]"#[..],
            br#"[{"entryId":"1","event":"\ud800"}]"#,
        ] {
            let err = parse_bulk("p", "t", unreadable).unwrap_err();
            assert_eq!((err.code, err.http_status), ("ERR_PUBSUB_EVENTS_SER", 400));
        }
    }
}
