//! Distributed lock routes (alpha; dapr-contract.md §1.8).

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::Ctx;
use crate::body;
use crate::error::ErrorResponse;
use mecha_api::Overflow;

/// The request as daprd reads it (protojson): camelCase or snake_case
/// names, the expiry as a number or a numeric string.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LockBody {
    #[serde(alias = "resource_id")]
    #[serde(rename = "resourceId")]
    resource_id: String,
    #[serde(alias = "lock_owner")]
    #[serde(rename = "lockOwner")]
    lock_owner: String,
    #[serde(alias = "expiry_in_seconds")]
    #[serde(rename = "expiryInSeconds")]
    expiry_in_seconds: Option<body::Text>,
}

async fn read(ctx: &Ctx, headers: &HeaderMap, request: Body) -> Result<LockBody, ErrorResponse> {
    let bytes = ctx
        .body_limit
        .read(headers, request, Overflow::BodyRead)
        .await?;
    Ok(body::object_or_default(&bytes)?)
}

fn json(body: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `POST /v1.0-alpha1/lock/{store}` → `{"success": bool}`.
pub(crate) async fn try_lock(
    State(ctx): State<Ctx>,
    store: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let store = body::path(store)?;
    let lock = read(&ctx, &headers, request).await?;
    let expiry = match lock.expiry_in_seconds.map(|t| t.0) {
        None => 0,
        Some(text) if text.is_empty() => 0,
        Some(text) => text.parse::<i32>().map_err(|_| {
            mecha_core::ApiError::malformed_request(format!(
                "failed deserializing HTTP body: expiryInSeconds '{text}' is not a 32-bit integer"
            ))
        })?,
    };
    let success = ctx
        .api
        .try_lock(&store, &lock.resource_id, &lock.lock_owner, expiry)
        .await?;
    Ok(json(format!("{{\"success\":{success}}}")))
}

/// `POST /v1.0-alpha1/unlock/{store}` → `{"status": N}` (a number).
pub(crate) async fn unlock(
    State(ctx): State<Ctx>,
    store: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let store = body::path(store)?;
    let lock = read(&ctx, &headers, request).await?;
    let status = ctx
        .api
        .unlock(&store, &lock.resource_id, &lock.lock_owner)
        .await?;
    Ok(json(format!("{{\"status\":{}}}", status as i32)))
}
