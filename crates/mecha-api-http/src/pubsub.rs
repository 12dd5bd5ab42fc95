//! Pub/sub routes (dapr-contract.md §1.4): publish and bulk publish.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mecha_api::pubsub::{
    BulkPublish, Publish, bulk_body_error, bulk_entry_from_json, bulk_publish_failed,
    publish_body_error,
};
use serde_json::{Value, json};

use crate::Ctx;
use crate::body::{self, query_metadata};
use crate::error::ErrorResponse;

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
    ctx.api.check_publish(&pubsub, &topic, &metadata)?;
    let data = body::read(&headers, request, ctx.max_body)
        .await
        .map_err(|err| publish_body_error(&pubsub, &topic, err))?;
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
    ctx.api.check_publish(&pubsub, &topic, &metadata)?;
    let bytes = body::read(&headers, request, ctx.max_body)
        .await
        .map_err(|err| bulk_body_error(&pubsub, &topic, err.message))?;
    let entries = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(entries)) => entries,
        Ok(other) => {
            return Err(bulk_body_error(
                &pubsub,
                &topic,
                format!("expected a JSON array of entries, got {other}"),
            )
            .into());
        }
        Err(err) => return Err(bulk_body_error(&pubsub, &topic, err).into()),
    };
    let entries = entries
        .iter()
        .map(|entry| bulk_entry_from_json(&pubsub, &topic, entry))
        .collect::<Result<Vec<_>, _>>()?;
    let names = (pubsub.clone(), topic.clone());
    let failed = ctx
        .api
        .bulk_publish(BulkPublish {
            pubsub,
            topic,
            entries,
            metadata,
            trace: headers,
        })
        .await?;
    if failed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let failed_json: Vec<Value> = failed
        .iter()
        .map(|f| json!({"entryId": f.entry_id, "error": f.error}))
        .collect();
    let error = bulk_publish_failed(&names.0, &names.1, &failed);
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
