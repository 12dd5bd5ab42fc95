//! Actors over HTTP: `/v1.0/actors/{type}/{id}/method/{method}` (any
//! verb), and actor state (`.../state` for a transaction, a bare JSON
//! array; `.../state/{key}` to read).

use std::collections::BTreeMap;

use axum::body::Body as AxumBody;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mecha_api::Overflow;
use mecha_api::actors::{ActorStateOperation, ReminderSpec, TimerSpec};
use mecha_api::invoke::{InvokeRequest, body as invoke_body};
use serde::Deserialize;

use crate::Ctx;
use crate::body;
use crate::error::{ErrorResponse, error_response};

/// `/v1.0/actors/{type}/{id}/method/{method}`, any verb.
pub(crate) async fn invoke(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    request: Request,
) -> Response {
    let (actor_type, actor_id, method) = match body::path(path) {
        Ok(parts) => parts,
        Err(err) => return error_response(&err),
    };
    let (parts, request_body) = request.into_parts();
    let call = InvokeRequest {
        method: method.clone(),
        verb: parts.method,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body: invoke_body::boxed(request_body),
        caller: None,
        any_type_url: None,
    };
    match ctx
        .api
        .invoke_actor(&actor_type, &actor_id, &method, call)
        .await
    {
        Ok(answer) => {
            let mut response = Response::new(AxumBody::new(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        Err(err) => error_response(&err),
    }
}

#[derive(Deserialize)]
struct WireOperation {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    request: WireRequest,
}

#[derive(Deserialize, Default)]
struct WireRequest {
    #[serde(default)]
    key: String,
    value: Option<serde_json::Value>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// `POST|PUT /v1.0/actors/{type}/{id}/state`: a JSON array of operations.
pub(crate) async fn transaction(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    request: axum::body::Body,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id) = body::path(path)?;
    let bytes = ctx
        .body_limit
        .read(&headers, request, Overflow::Malformed)
        .await?;
    let wire: Vec<WireOperation> = body::json(&bytes)?;
    let operations = wire
        .into_iter()
        .map(|op| ActorStateOperation {
            operation: op.operation,
            key: op.request.key,
            // The value is stored as JSON written again, as daprd stores
            // it (compact, object keys sorted).
            value: op
                .request
                .value
                .map(|value| Bytes::from(serde_json::to_vec(&value).unwrap_or_default())),
            metadata: op.request.metadata,
        })
        .collect();
    drop(bytes);
    ctx.api
        .actor_state_transaction(&actor_type, &actor_id, operations)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1.0/actors/{type}/{id}/state/{key}`: the value as stored, 204
/// when there is none.
pub(crate) async fn get_state(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id, key) = body::path(path)?;
    let Some(found) = ctx
        .api
        .get_actor_state(&actor_type, &actor_id, &key)
        .await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut response = (StatusCode::OK, found.data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    crate::state::add_metadata_headers(headers, &found.metadata);
    Ok(response)
}

/// The body of a timer or a reminder, as daprd reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSchedule {
    #[serde(default)]
    due_time: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    ttl: String,
    #[serde(default)]
    callback: String,
    data: Option<Box<serde_json::value::RawValue>>,
    overwrite: Option<bool>,
}

async fn schedule_body(
    ctx: &Ctx,
    headers: &HeaderMap,
    request: axum::body::Body,
) -> Result<WireSchedule, ErrorResponse> {
    let bytes = ctx
        .body_limit
        .read(headers, request, Overflow::Malformed)
        .await?;
    Ok(body::json(&bytes)?)
}

fn raw_data(data: Option<Box<serde_json::value::RawValue>>) -> Option<Bytes> {
    data.map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()))
}

/// `POST|PUT /v1.0/actors/{type}/{id}/timers/{name}`.
pub(crate) async fn create_timer(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    request: axum::body::Body,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id, name) = body::path(path)?;
    let wire = schedule_body(&ctx, &headers, request).await?;
    let spec = TimerSpec {
        due_time: wire.due_time,
        period: wire.period,
        ttl: wire.ttl,
        callback: wire.callback,
        data: raw_data(wire.data),
    };
    ctx.api
        .create_actor_timer(&actor_type, &actor_id, &name, spec)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1.0/actors/{type}/{id}/timers/{name}`.
pub(crate) async fn delete_timer(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id, name) = body::path(path)?;
    ctx.api.delete_actor_timer(&actor_type, &actor_id, &name)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST|PUT /v1.0/actors/{type}/{id}/reminders/{name}`.
pub(crate) async fn create_reminder(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    request: axum::body::Body,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id, name) = body::path(path)?;
    let wire = schedule_body(&ctx, &headers, request).await?;
    let spec = ReminderSpec {
        due_time: wire.due_time,
        period: wire.period,
        ttl: wire.ttl,
        data: raw_data(wire.data),
        overwrite: wire.overwrite,
    };
    ctx.api
        .create_actor_reminder(&actor_type, &actor_id, &name, spec)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1.0/actors/{type}/{id}/reminders/{name}`: daprd's JSON, empty
/// fields left out.
pub(crate) async fn get_reminder(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id, name) = body::path(path)?;
    let reminder = ctx
        .api
        .get_actor_reminder(&actor_type, &actor_id, &name)
        .await?;
    let mut out = serde_json::Map::new();
    out.insert("actorID".into(), reminder.actor.actor_id.into());
    out.insert("actorType".into(), reminder.actor.actor_type.into());
    if let Some(data) = reminder.data
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&data)
    {
        out.insert("data".into(), value);
    }
    for (field, value) in [
        ("dueTime", reminder.due_time),
        ("period", reminder.period),
        ("ttl", reminder.ttl),
    ] {
        if !value.is_empty() {
            out.insert(field.into(), value.into());
        }
    }
    Ok(axum::Json(serde_json::Value::Object(out)).into_response())
}

/// `DELETE /v1.0/actors/{type}/{id}/reminders/{name}`.
pub(crate) async fn delete_reminder(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let (actor_type, actor_id, name) = body::path(path)?;
    ctx.api
        .delete_actor_reminder(&actor_type, &actor_id, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
