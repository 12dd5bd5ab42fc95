//! State routes (dapr-contract.md §1.3).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mecha_api::state::{
    Bulk, BulkStateItem, OptionsOf, TransactionOperation, parse_concurrency, parse_consistency,
    read_consistency, too_many_items, too_many_operations,
};
use mecha_api::state::{DeleteRequest, Metadata, SetRequest};
use mecha_core::ApiError;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::body::{self, Bounded, Object, Text, query_metadata};
use crate::error::ErrorResponse;
use crate::{Ctx, routes};
use mecha_api::Overflow;
use mecha_core::limits::{MAX_BULK_ITEMS, MAX_TRANSACTION_OPERATIONS};

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn query_value<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn to_metadata(map: Option<BTreeMap<String, Text>>) -> Metadata {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OptionsBody {
    concurrency: Option<String>,
    consistency: Option<String>,
}

/// One state item as the HTTP API carries it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ItemBody<'a> {
    key: String,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    etag: Option<Text>,
    metadata: Option<BTreeMap<String, Text>>,
    options: Option<OptionsBody>,
}

impl ItemBody<'_> {
    fn into_request(self, of: OptionsOf) -> Result<SetRequest, ApiError> {
        let options = self.options.unwrap_or_default();
        // The value is stored as the JSON text the app sent.
        let value = self.value.map_or("null", RawValue::get);
        Ok(SetRequest {
            key: self.key,
            value: Bytes::copy_from_slice(value.as_bytes()),
            etag: self.etag.map(|e| e.0),
            concurrency: parse_concurrency(options.concurrency.as_deref().unwrap_or_default(), of)?,
            consistency: parse_consistency(options.consistency.as_deref().unwrap_or_default(), of)?,
            ttl: None,
            metadata: to_metadata(self.metadata),
        })
    }
}

/// Reads a state request's body; one that cannot be read is answered after
/// the store's own checks, in daprd's order (`Api::state_body_error`).
async fn state_body(
    ctx: &Ctx,
    store: &str,
    transaction: bool,
    headers: &HeaderMap,
    request: Body,
) -> Result<Bytes, ApiError> {
    ctx.body_limit
        .read(headers, request, Overflow::Malformed)
        .await
        .map_err(|err| ctx.api.state_body_error(store, transaction, err))
}

/// A save body: a JSON array of items.
pub(crate) fn parse_save(store: &str, bytes: &[u8]) -> Result<Vec<SetRequest>, ApiError> {
    let items: Bounded<Object<ItemBody<'_>>, MAX_BULK_ITEMS> = body::json(bytes)?;
    if items.total > MAX_BULK_ITEMS {
        return Err(too_many_items(store, Bulk::Save, items.total));
    }
    items
        .items
        .into_iter()
        .map(|item| item.0.into_request(OptionsOf::Save))
        .collect()
}

/// `POST|PUT /v1.0/state/{store}`: save a JSON array of items.
pub(crate) async fn save(
    State(ctx): State<Ctx>,
    store: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<StatusCode, ErrorResponse> {
    let store = body::path(store)?;
    let bytes = state_body(&ctx, &store, false, &headers, request).await?;
    let reqs =
        parse_save(&store, &bytes).map_err(|err| ctx.api.state_body_error(&store, false, err))?;
    // The items hold copies of what they need: the body goes now.
    drop(bytes);
    ctx.api.save_state(&store, reqs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/v1.0/state/{store}/{key}`: get and delete a key, and the `bulk` and
/// `transaction` sub-routes (a key named `bulk` can still be read with GET).
pub(crate) async fn by_key(
    State(ctx): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    uri: axum::http::Uri,
    params: Params,
    headers: HeaderMap,
    request: Body,
) -> Response {
    let (store, key, params) =
        match body::path(path).and_then(|(s, k)| Ok((s, k, body::query(params)?))) {
            Ok(parts) => parts,
            Err(err) => return ErrorResponse(err).into_response(),
        };
    let result = match (&method, key.as_str()) {
        (&Method::POST | &Method::PUT, "bulk") => {
            bulk_get(&ctx, &store, &params, &headers, request).await
        }
        (&Method::POST | &Method::PUT, "transaction") => {
            transaction(&ctx, &store, &params, &headers, request).await
        }
        (&Method::GET, _) => get(&ctx, &store, &key, &params).await,
        (&Method::DELETE, _) => delete(&ctx, &store, &key, &params, &headers).await,
        _ => {
            // Another method on this path is service invocation, as in daprd.
            let mut whole = axum::extract::Request::new(request);
            *whole.method_mut() = method;
            *whole.uri_mut() = uri;
            *whole.headers_mut() = headers;
            return routes::fallback(State(ctx), whole).await;
        }
    };
    result.unwrap_or_else(|err| err.into_response())
}

async fn get(
    ctx: &Ctx,
    store: &str,
    key: &str,
    params: &[(String, String)],
) -> Result<Response, ErrorResponse> {
    let consistency = read_consistency(query_value(params, "consistency"));
    let found = ctx
        .api
        .get_state(store, key, consistency, query_metadata(params))
        .await?;
    let Some(item) = found else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut response = (StatusCode::OK, item.data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(etag) = item.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(header::ETAG, etag);
    }
    add_metadata_headers(headers, &item.metadata);
    Ok(response)
}

/// Response metadata as `metadata.<key>` headers.
pub(crate) fn add_metadata_headers(headers: &mut HeaderMap, metadata: &Metadata) {
    for (key, value) in metadata {
        let name = HeaderName::try_from(format!("metadata.{key}"));
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
}

async fn delete(
    ctx: &Ctx,
    store: &str,
    key: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ErrorResponse> {
    let etag = headers
        .get(header::IF_MATCH)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let req = DeleteRequest {
        key: key.to_owned(),
        etag,
        concurrency: parse_concurrency(query_value(params, "concurrency"), OptionsOf::Delete)?,
        consistency: parse_consistency(query_value(params, "consistency"), OptionsOf::Delete)?,
        metadata: query_metadata(params),
    };
    ctx.api.delete_state(store, req).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct BulkGetBody {
    keys: Bounded<String, MAX_BULK_ITEMS>,
    parallelism: Option<i64>,
    metadata: Option<BTreeMap<String, Text>>,
}

/// A bulk get body: its keys, and the rest of it.
pub(crate) fn parse_bulk_get(
    store: &str,
    bytes: &[u8],
) -> Result<(Vec<String>, BulkGetBody), ApiError> {
    let Object(mut req): Object<BulkGetBody> = body::json(bytes)?;
    if req.keys.total > MAX_BULK_ITEMS {
        return Err(too_many_items(store, Bulk::Get, req.keys.total));
    }
    Ok((std::mem::take(&mut req.keys.items), req))
}

async fn bulk_get(
    ctx: &Ctx,
    store: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let bytes = state_body(ctx, store, false, headers, request).await?;
    let (keys, req) =
        parse_bulk_get(store, &bytes).map_err(|err| ctx.api.state_body_error(store, false, err))?;
    drop(bytes);
    let mut metadata = to_metadata(req.metadata);
    metadata.extend(query_metadata(params));
    let items = ctx
        .api
        .get_bulk_state(store, keys, req.parallelism.unwrap_or(0), metadata)
        .await?;
    let body = bulk_items_json(&items);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Bulk items as daprd writes them: `data` is the stored JSON embedded as
/// is. Values that are not JSON (such as bytes saved over gRPC) are given as
/// a JSON string, or base64 when they are not UTF-8, instead of daprd's
/// empty answer.
fn bulk_items_json(items: &[BulkStateItem]) -> String {
    // Sized once: a growing string would hold up to twice the answer.
    let size: usize = items
        .iter()
        .map(|item| 32 + 2 * item.key.len() + item.data.as_ref().map_or(0, |d| d.len() * 4 / 3 + 8))
        .sum();
    let mut out = String::with_capacity(size + 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        out.push_str(&serde_json::to_string(&item.key).expect("string"));
        if let Some(data) = &item.data {
            out.push_str(",\"data\":");
            match std::str::from_utf8(data) {
                // Valid JSON is embedded as it is (serde_json does not check
                // UTF-8 inside strings it skips, so UTF-8 is checked first).
                Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
                    out.push_str(text);
                }
                Ok(text) => out.push_str(&serde_json::to_string(text).expect("string")),
                Err(_) => {
                    use base64::Engine as _;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
                    out.push_str(&serde_json::to_string(&encoded).expect("string"));
                }
            }
        }
        if let Some(etag) = &item.etag {
            out.push_str(",\"etag\":");
            out.push_str(&serde_json::to_string(etag).expect("string"));
        }
        if !item.metadata.is_empty() {
            out.push_str(",\"metadata\":");
            out.push_str(&serde_json::to_string(&item.metadata).expect("map"));
        }
        if let Some(error) = &item.error {
            out.push_str(",\"error\":");
            out.push_str(&serde_json::to_string(error).expect("string"));
        }
        out.push('}');
    }
    out.push(']');
    out
}

#[derive(Deserialize)]
struct OperationBody<'a> {
    #[serde(default)]
    operation: String,
    #[serde(borrow, default)]
    request: Object<ItemBody<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TransactionBody<'a> {
    #[serde(borrow)]
    operations: Bounded<Object<OperationBody<'a>>, MAX_TRANSACTION_OPERATIONS>,
    metadata: Option<BTreeMap<String, Text>>,
}

/// A transaction body: its operations and its metadata.
pub(crate) fn parse_transaction(
    store: &str,
    bytes: &[u8],
) -> Result<(Vec<TransactionOperation>, Metadata), ApiError> {
    let Object(req): Object<TransactionBody<'_>> = body::json(bytes)?;
    if req.operations.total > MAX_TRANSACTION_OPERATIONS {
        return Err(too_many_operations(store, req.operations.total));
    }
    let operations = req
        .operations
        .items
        .into_iter()
        .map(|Object(op)| {
            Ok(TransactionOperation {
                operation: op.operation,
                item: op.request.0.into_request(OptionsOf::Transaction)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((operations, to_metadata(req.metadata)))
}

async fn transaction(
    ctx: &Ctx,
    store: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let bytes = state_body(ctx, store, true, headers, request).await?;
    let (operations, mut metadata) = parse_transaction(store, &bytes)
        .map_err(|err| ctx.api.state_body_error(store, true, err))?;
    drop(bytes);
    metadata.extend(query_metadata(params));
    ctx.api
        .execute_state_transaction(store, operations, metadata)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST|PUT /v1.0-alpha1/state/{store}/query`: the body is the query
/// JSON; `metadata.*` query parameters go to the store. No results is 204.
pub(crate) async fn query(
    State(ctx): State<Ctx>,
    store: Result<Path<String>, PathRejection>,
    params: Params,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ErrorResponse> {
    let store = body::path(store)?;
    let params = body::query(params)?;
    let bytes = ctx
        .body_limit
        .read(&headers, request, Overflow::BodyRead)
        .await?;
    // A body that is not UTF-8 cannot be JSON: the query parser says so.
    let text = String::from_utf8_lossy(&bytes);
    let response = ctx
        .api
        .query_state(&store, &text, query_metadata(&params))
        .await?;
    if response.results.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        query_response_json(&response),
    )
        .into_response())
}

/// A query answer as daprd writes it: each `data` is the stored JSON
/// embedded as is (only JSON values are ever results).
fn query_response_json(response: &mecha_api::state::QueryResponse) -> String {
    let mut out = String::from("{\"results\":[");
    for (i, item) in response.results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        out.push_str(&serde_json::to_string(&item.key).expect("string"));
        out.push_str(",\"data\":");
        match std::str::from_utf8(&item.data) {
            Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
                out.push_str(text)
            }
            // Not reachable with the stores' rules; kept valid JSON anyway.
            _ => out.push_str("null"),
        }
        if let Some(etag) = &item.etag {
            out.push_str(",\"etag\":");
            out.push_str(&serde_json::to_string(etag).expect("string"));
        }
        out.push('}');
    }
    out.push(']');
    if let Some(token) = &response.token {
        out.push_str(",\"token\":");
        out.push_str(&serde_json::to_string(token).expect("string"));
    }
    if !response.metadata.is_empty() {
        out.push_str(",\"metadata\":");
        out.push_str(&serde_json::to_string(&response.metadata).expect("map"));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn save_items_keep_the_json_the_app_sent() {
        let body = br#"[{"key":"k","value":{"b":1,"a":[1.50,"x"]},"etag":"7","metadata":{"ttlInSeconds":60},"options":{"concurrency":"first-write","consistency":"strong"}}]"#;
        let reqs = parse_save("s", body).unwrap();
        assert_eq!(reqs[0].value, &br#"{"b":1,"a":[1.50,"x"]}"#[..]);
        assert_eq!(reqs[0].etag.as_deref(), Some("7"));
        assert_eq!(reqs[0].metadata["ttlInSeconds"], "60");
        assert_eq!(
            reqs[0].concurrency,
            mecha_api::state::Concurrency::FirstWrite
        );
        let missing_value = parse_save("s", br#"[{"key":"k"}]"#).unwrap();
        assert_eq!(missing_value[0].value, &b"null"[..]);
    }

    proptest! {
        /// No body, however malformed, makes the parsers panic.
        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_save("s", &body);
            let _ = parse_bulk_get("s", &body);
            let _ = parse_transaction("s", &body);
        }

        /// Whatever items an app sends, keys, values and etags come out as sent.
        #[test]
        fn save_items_round_trip(
            items in proptest::collection::vec(
                ("\\PC{0,20}", prop_oneof![
                    Just(serde_json::json!(null)),
                    any::<i64>().prop_map(|n| serde_json::json!(n)),
                    "\\PC{0,20}".prop_map(|s| serde_json::json!(s)),
                    proptest::collection::btree_map("[a-z]{1,5}", any::<bool>(), 0..4).prop_map(|m| serde_json::json!(m)),
                ], proptest::option::of("[0-9a-f-]{1,36}")),
                0..8,
            )
        ) {
            let body: Vec<serde_json::Value> = items
                .iter()
                .map(|(key, value, etag)| serde_json::json!({"key": key, "value": value, "etag": etag}))
                .collect();
            let bytes = serde_json::to_vec(&body).unwrap();
            let reqs = parse_save("s", &bytes).unwrap();
            prop_assert_eq!(reqs.len(), items.len());
            for (req, (key, value, etag)) in reqs.iter().zip(&items) {
                prop_assert_eq!(&req.key, key);
                let parsed: serde_json::Value = serde_json::from_slice(&req.value).unwrap();
                prop_assert_eq!(&parsed, value);
                prop_assert_eq!(req.etag.as_deref().filter(|e| !e.is_empty()), etag.as_deref());
            }
        }
    }
}
