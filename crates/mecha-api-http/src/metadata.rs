//! Metadata, health and shutdown routes.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mecha_core::units::format_go_duration;
use serde_json::{Value, json};

use crate::error::{ErrorResponse, error_response};
use crate::{Ctx, body};
use mecha_api::Overflow;

pub(crate) async fn get(State(ctx): State<Ctx>) -> Response {
    let meta = ctx.api.metadata();
    let components: Vec<Value> = meta
        .components
        .iter()
        .map(|c| json!({"name": c.name, "type": c.type_name, "version": c.version, "capabilities": c.capabilities}))
        .collect();
    let app = &meta.app_connection;
    let mut app_json = json!({
        "protocol": app.protocol,
        "channelAddress": app.channel_address,
        "maxConcurrency": app.max_concurrency,
    });
    if let Some(port) = app.port {
        app_json["port"] = json!(port);
    }
    if let Some(health) = &app.health {
        app_json["health"] = json!({
            "healthCheckPath": health.path,
            "healthProbeInterval": format_go_duration(health.interval),
            "healthProbeTimeout": format_go_duration(health.timeout),
            "healthThreshold": health.threshold,
        });
    }
    // Rules are flattened here (gRPC keeps `rules.rules`), as in daprd.
    let subscriptions: Vec<Value> = meta
        .subscriptions
        .iter()
        .map(|s| {
            let rules: Vec<Value> = s
                .rules
                .iter()
                .map(|r| {
                    let mut rule = serde_json::Map::new();
                    if !r.matches.is_empty() {
                        rule.insert("match".into(), json!(r.matches));
                    }
                    if !r.path.is_empty() {
                        rule.insert("path".into(), json!(r.path));
                    }
                    Value::Object(rule)
                })
                .collect();
            let mut entry = json!({
                "pubsubname": s.pubsub,
                "topic": s.topic,
                "deadLetterTopic": s.dead_letter_topic.clone().unwrap_or_default(),
                "type": s.kind.as_str(),
            });
            if !s.metadata.is_empty() {
                entry["metadata"] = json!(s.metadata);
            }
            if !rules.is_empty() {
                entry["rules"] = Value::Array(rules);
            }
            entry
        })
        .collect();
    // daprd leaves a count of 0 out.
    let active: Vec<Value> = meta
        .active_actors
        .iter()
        .map(|(actor_type, count)| match count {
            0 => json!({"type": actor_type}),
            n => json!({"type": actor_type, "count": n}),
        })
        .collect();
    Json(json!({
        "id": meta.id,
        "runtimeVersion": meta.runtime_version,
        "enabledFeatures": meta.enabled_features,
        "actors": active,
        "components": components,
        "extended": meta.extended,
        "subscriptions": subscriptions,
        "httpEndpoints": [],
        "appConnectionProperties": app_json,
        "actorRuntime": {
            "runtimeStatus": meta.actor_runtime_status,
            "activeActors": active,
            "hostReady": meta.host_ready,
            "placement": meta.placement,
        },
    }))
    .into_response()
}

pub(crate) async fn set(
    State(ctx): State<Ctx>,
    key: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<StatusCode, ErrorResponse> {
    let key = body::path(key)?;
    let bytes = ctx
        .body_limit
        .read(&headers, request, Overflow::BodyRead)
        .await?;
    let value = String::from_utf8_lossy(&bytes).into_owned();
    ctx.api.set_metadata(&key, value)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn healthz(
    State(ctx): State<Ctx>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let query = match body::query(query) {
        Ok(query) => query,
        Err(err) => return error_response(&err),
    };
    // Readiness first, then the app id, as daprd checks.
    let result = match query.get("appid") {
        Some(app_id) => ctx
            .api
            .healthz()
            .and_then(|()| ctx.api.check_app_id(app_id)),
        None => ctx.api.healthz(),
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(&err),
    }
}

pub(crate) async fn outbound_healthz(State(ctx): State<Ctx>) -> Response {
    match ctx.api.outbound_healthz() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(&err),
    }
}

pub(crate) async fn shutdown(State(ctx): State<Ctx>) -> StatusCode {
    // The graceful shutdown drains this request too, so the 204 is sent.
    ctx.api.shutdown();
    StatusCode::NO_CONTENT
}
