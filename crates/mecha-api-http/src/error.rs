//! Rendering [`ApiError`] as daprd does over HTTP.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mecha_core::{ApiError, error::ERROR_DOMAIN};
use serde_json::{Value, json};

/// `{"errorCode", "message"}`, plus `details` for Dapr's rich errors, with
/// the error's HTTP status.
pub fn error_response(err: &ApiError) -> Response {
    let mut body = json!({ "errorCode": err.code, "message": err.message });
    if let Some(reason) = err.reason {
        body["details"] = Value::Array(details(err, reason));
    }
    let status = StatusCode::from_u16(err.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The `google.rpc` details, in the JSON daprd writes (snake_case fields).
fn details(err: &ApiError, reason: &str) -> Vec<Value> {
    let metadata = match err.info_metadata() {
        Some(metadata) => json!(metadata),
        None => Value::Null,
    };
    let mut details = vec![json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": ERROR_DOMAIN,
        "metadata": metadata,
    })];
    if let Some(resource) = err.resource() {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ResourceInfo",
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
            "owner": "",
            "description": "",
        }));
    }
    if let Some(violation) = err.field_violation() {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{ "field": violation.field, "description": violation.description }],
        }));
    }
    details
}

impl From<ErrorResponse> for Response {
    fn from(err: ErrorResponse) -> Self {
        error_response(&err.0)
    }
}

/// An [`ApiError`] as a handler's error type.
pub(crate) struct ErrorResponse(pub ApiError);

impl From<ApiError> for ErrorResponse {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}
