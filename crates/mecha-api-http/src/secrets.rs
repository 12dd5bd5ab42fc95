//! Secret routes (dapr-contract.md §1.6).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::Ctx;
use crate::body::{self, query_metadata};
use crate::error::ErrorResponse;

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1.0/secrets/{store}/{key}`; the key `bulk` is the bulk route, as
/// in daprd (it is registered first there).
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ErrorResponse> {
    let (store, key) = body::path(path)?;
    let metadata = query_metadata(&body::query(params)?);
    if key == "bulk" {
        let all = ctx.api.get_bulk_secret(&store, metadata).await?;
        return Ok(json(serde_json::to_string(&all).expect("maps of strings")));
    }
    let secret = ctx.api.get_secret(&store, &key, metadata).await?;
    Ok(json(
        serde_json::to_string(&secret).expect("a map of strings"),
    ))
}
