//! Output binding routes (dapr-contract.md §1.5).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mecha_api::bindings::BindingFailure;
use mecha_api::bindings::{InvokeRequest, Metadata};
use serde::Deserialize;

use crate::Ctx;
use crate::body::{self, Object, Text};
use crate::error::{ErrorResponse, error_response};
use mecha_api::Overflow;

#[derive(Deserialize, Default)]
#[serde(default)]
struct InvokeBody {
    data: serde_json::Value,
    metadata: Option<BTreeMap<String, Text>>,
    operation: String,
}

/// `POST|PUT /v1.0/bindings/{name}` → 200 with what the binding answered
/// and its metadata as `metadata.<k>` headers, or 204 when it answered
/// nothing.
pub(crate) async fn invoke(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let name = body::path(name)?;
    let bytes = ctx
        .body_limit
        .read(&headers, request, Overflow::Malformed)
        .await?;
    let Object(invoke): Object<InvokeBody> = body::json(&bytes)?;
    // As daprd: `data` goes to the binding as JSON, a string with its quotes.
    let data = serde_json::to_vec(&invoke.data).expect("a JSON value serializes");
    let request = InvokeRequest {
        operation: invoke.operation,
        data: data.into(),
        metadata: invoke
            .metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, Text(v))| (k, v))
            .collect(),
    };
    match ctx.api.invoke_binding(&name, request, &headers).await {
        Ok(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(Some(answer)) => {
            let content_type = answer
                .metadata
                .get("contentType")
                .and_then(|v| HeaderValue::from_str(v).ok())
                .unwrap_or(HeaderValue::from_static("application/json"));
            let mut response = (StatusCode::OK, answer.data).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            add_metadata(&mut response, &answer.metadata);
            Ok(response)
        }
        Err(BindingFailure { error, metadata }) => {
            let mut response = error_response(&error);
            add_metadata(&mut response, &metadata);
            Ok(response)
        }
    }
}

/// Response metadata as `metadata.<k>` headers; a pair no header can carry
/// is left out.
fn add_metadata(response: &mut Response, metadata: &Metadata) {
    for (key, value) in metadata {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(format!("metadata.{key}")),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        response.headers_mut().append(name, value);
    }
}
