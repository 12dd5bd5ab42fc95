//! Configuration routes (dapr-contract.md §1.7), stable and alpha1 alike.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Ctx;
use crate::body::{self, query_metadata};
use crate::error::ErrorResponse;

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn keys(params: &[(String, String)]) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.clone())
        .collect()
}

/// `GET /v1.0/configuration/{store}?key=a&key=b`; no items is 204.
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    store: Result<Path<String>, PathRejection>,
    params: Params,
) -> Result<Response, ErrorResponse> {
    let store = body::path(store)?;
    let params = body::query(params)?;
    let items = ctx
        .api
        .get_configuration(&store, keys(&params), query_metadata(&params))
        .await?;
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(json(
        StatusCode::OK,
        serde_json::to_string(&items).expect("strings serialise"),
    ))
}

/// `GET /v1.0/configuration/{store}/subscribe?key=a`: changes are pushed to
/// the app; → `{"id": ...}`.
pub(crate) async fn subscribe(
    State(ctx): State<Ctx>,
    store: Result<Path<String>, PathRejection>,
    params: Params,
) -> Result<Response, ErrorResponse> {
    let store = body::path(store)?;
    let params = body::query(params)?;
    let id = ctx
        .api
        .subscribe_configuration_to_app(&store, keys(&params), query_metadata(&params))
        .await?;
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "id": id }).to_string(),
    ))
}

/// `GET /v1.0/configuration/{store}/{id}/unsubscribe` → `{"ok": true}`, or
/// 500 with `{"message": ...}` when there is no such subscription (daprd
/// leaves out `ok` when false).
pub(crate) async fn unsubscribe(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ErrorResponse> {
    let (store, id) = body::path(path)?;
    match ctx.api.unsubscribe_configuration(Some(&store), &id)? {
        Ok(()) => Ok(json(StatusCode::OK, r#"{"ok":true}"#.into())),
        Err(message) => Ok(json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "message": message }).to_string(),
        )),
    }
}
