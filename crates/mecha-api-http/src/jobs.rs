//! Jobs routes (`/v1.0/jobs/{name}`, and `/v1.0-alpha1/jobs/{name}`;
//! dapr-contract.md §1.13). The body is daprd's `JobHTTPRequest` as
//! protojson reads it: camelCase or snake_case names, unknown fields
//! ignored, the name in the URL only. JSON `data` is kept as a
//! `google.protobuf.Value`, as daprd keeps it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mecha_api::Overflow;
use mecha_api::jobs::{FailurePolicy, Job, JobData};
use mecha_core::{ApiError, GrpcCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::body::{self, Text};
use crate::error::ErrorResponse;

#[derive(Deserialize, Default)]
#[serde(default)]
struct JobBody {
    name: String,
    schedule: Option<String>,
    repeats: Option<Text>,
    #[serde(alias = "due_time", rename = "dueTime")]
    due_time: Option<String>,
    ttl: Option<String>,
    data: Option<Value>,
    overwrite: bool,
    #[serde(alias = "failure_policy", rename = "failurePolicy")]
    failure_policy: Option<PolicyBody>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PolicyBody {
    drop: Option<Value>,
    constant: Option<ConstantBody>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConstantBody {
    interval: Option<String>,
    #[serde(alias = "max_retries", rename = "maxRetries")]
    max_retries: Option<Text>,
}

fn malformed(reason: impl std::fmt::Display) -> ApiError {
    ApiError::malformed_request(format!("failed deserializing HTTP body: {reason}"))
}

/// A protobuf `Duration` in protojson (`"3s"`, `"1.5s"`).
fn proto_duration(text: &str) -> Result<Duration, ApiError> {
    text.strip_suffix('s')
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| malformed(format!("invalid google.protobuf.Duration value \"{text}\"")))
}

/// A protobuf `Duration` as protojson writes it: 0, 3, 6 or 9 decimals.
fn format_proto_duration(duration: Duration) -> String {
    let (seconds, nanos) = (duration.as_secs(), duration.subsec_nanos());
    match nanos {
        0 => format!("{seconds}s"),
        n if n % 1_000_000 == 0 => format!("{seconds}.{:03}s", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{seconds}.{:06}s", n / 1_000),
        n => format!("{seconds}.{n:09}s"),
    }
}

fn uint32(text: &Text, field: &str) -> Result<u32, ApiError> {
    text.0.parse::<u32>().map_err(|_| {
        malformed(format!(
            "invalid value for uint32 field {field}: {}",
            text.0
        ))
    })
}

fn job_of(name: String, body: JobBody) -> Result<(Job, bool), ApiError> {
    let failure_policy = match body.failure_policy {
        None => None,
        Some(PolicyBody {
            constant: Some(constant),
            ..
        }) => Some(FailurePolicy::Constant {
            interval: constant
                .interval
                .as_deref()
                .map(proto_duration)
                .transpose()?,
            max_retries: constant
                .max_retries
                .as_ref()
                .map(|n| uint32(n, "maxRetries"))
                .transpose()?,
        }),
        Some(PolicyBody { drop: Some(_), .. }) => Some(FailurePolicy::Drop),
        Some(PolicyBody { .. }) => None,
    };
    let job = Job {
        name,
        schedule: body.schedule,
        repeats: body
            .repeats
            .as_ref()
            .map(|n| uint32(n, "repeats"))
            .transpose()?,
        due_time: body.due_time,
        ttl: body.ttl,
        data: body
            .data
            .map(|data| {
                let (type_url, value) = mecha_proto::wkt::json_any(&data);
                JobData { type_url, value }
            })
            .unwrap_or_default(),
        failure_policy,
    };
    Ok((job, body.overwrite))
}

/// A job body for the job `name` (the name in the URL only), and whether
/// it overwrites.
pub(crate) fn parse(name: &str, bytes: &[u8]) -> Result<(Job, bool), ApiError> {
    let job_body: JobBody = body::object_or_default(bytes)?;
    if !job_body.name.is_empty() {
        return Err(ApiError::new(
            "DAPR_SCHEDULER_JOB_NAME",
            400,
            GrpcCode::InvalidArgument,
            "Set the job name in the url only",
        ));
    }
    job_of(name.to_owned(), job_body)
}

/// `POST /v1.0/jobs/{name}` → 204.
pub(crate) async fn schedule(
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
    let (job, overwrite) = parse(&name, &bytes).map_err(|err| {
        if err.code == "DAPR_SCHEDULER_JOB_NAME" {
            err.with_info_metadata("appID", ctx.api.runtime().info.app_id.clone())
        } else {
            err
        }
    })?;
    ctx.api.schedule_job(job, overwrite).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `data` of a job as protojson writes an `Any`.
fn data_json(data: &JobData) -> Option<Value> {
    if data.type_url.is_empty() && data.value.is_empty() {
        return None;
    }
    Some(
        match mecha_proto::wkt::any_json(&data.type_url, &data.value) {
            Some(value) => json!({"@type": data.type_url, "value": value}),
            // A type this runtime has no description of: its bytes, in base64.
            None => {
                use base64::Engine as _;
                let value = base64::engine::general_purpose::STANDARD.encode(&data.value);
                json!({"@type": data.type_url, "value": value})
            }
        },
    )
}

/// A job as daprd's `GET` answers it (protojson of `Job`).
pub(crate) fn job_json(job: &Job) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(job.name));
    let text =
        |value: &Option<String>| value.as_deref().filter(|v| !v.is_empty()).map(|v| json!(v));
    let fields = [
        ("schedule", text(&job.schedule)),
        ("repeats", job.repeats.map(|n| json!(n))),
        ("dueTime", text(&job.due_time)),
        ("ttl", text(&job.ttl)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out.insert(key.into(), value);
        }
    }
    if let Some(data) = data_json(&job.data) {
        out.insert("data".into(), data);
    }
    match &job.failure_policy {
        Some(FailurePolicy::Drop) => {
            out.insert("failurePolicy".into(), json!({"drop": {}}));
        }
        Some(FailurePolicy::Constant {
            interval,
            max_retries,
        }) => {
            let mut constant = Map::new();
            if let Some(interval) = interval {
                constant.insert("interval".into(), json!(format_proto_duration(*interval)));
            }
            if let Some(max) = max_retries {
                constant.insert("maxRetries".into(), json!(max));
            }
            out.insert("failurePolicy".into(), json!({"constant": constant}));
        }
        None => {}
    }
    Value::Object(out)
}

/// `GET /v1.0/jobs/{name}` → 200 with the job.
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let name = body::path(name)?;
    let job = ctx.api.get_job(&name).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        job_json(&job).to_string(),
    )
        .into_response())
}

/// `DELETE /v1.0/jobs/{name}` → 204.
pub(crate) async fn delete(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let name = body::path(name)?;
    ctx.api.delete_job(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_as_protojson() {
        let body: JobBody = serde_json::from_str(
            r#"{"schedule":"@every 1m","repeats":"5","due_time":"30s","ttl":"1h",
                "data":{"k":"v"},"overwrite":true,"unknown":1,
                "failurePolicy":{"constant":{"interval":"1.5s","max_retries":3}}}"#,
        )
        .unwrap();
        let (job, overwrite) = job_of("j".into(), body).unwrap();
        assert!(overwrite);
        assert_eq!(job.repeats, Some(5));
        assert_eq!(job.due_time.as_deref(), Some("30s"));
        assert_eq!(
            job.failure_policy,
            Some(FailurePolicy::Constant {
                interval: Some(Duration::from_millis(1500)),
                max_retries: Some(3)
            })
        );
        let rendered = job_json(&job);
        assert_eq!(
            rendered["data"],
            json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": {"k": "v"}})
        );
        assert_eq!(
            rendered["failurePolicy"],
            json!({"constant": {"interval": "1.500s", "maxRetries": 3}})
        );
        for bad in [
            r#"{"repeats":-1}"#,
            r#"{"failurePolicy":{"constant":{"interval":"1m"}}}"#,
        ] {
            let body: JobBody = serde_json::from_str(bad).unwrap();
            assert!(job_of("j".into(), body).is_err(), "{bad}");
        }
    }
}
