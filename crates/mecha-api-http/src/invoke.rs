//! Service invocation over HTTP: `/v1.0/invoke/{app-id}/method/{method...}`
//! with any verb, and any unrouted path with a `dapr-app-id` header.

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use mecha_api::invoke::{InvokeRequest, body};

use crate::Ctx;
use crate::error::error_response;

const PREFIX: &str = "/v1.0/invoke/";

/// `{app-id}` and `{method...}` of `/v1.0/invoke/{app-id}/method/{method...}`
/// (the method exactly as the caller encoded it).
fn split_invoke_path(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (id, method) = rest.split_once("/method/")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    // The app id of the path form is URL-encoded.
    Some((mecha_core::address::percent_decode(id)?, method))
}

/// `/v1.0/invoke/...`.
pub(crate) async fn by_path(State(ctx): State<Ctx>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    match split_invoke_path(&path) {
        Some((target, method)) => {
            let method = method.to_owned();
            invoke(&ctx, &target, method, request).await
        }
        None => error_response(&mecha_api::invoke::missing_app_id()),
    }
}

/// Any other path, addressed by `dapr-app-id` (or Basic auth): the whole
/// path is the method.
pub(crate) async fn by_header(ctx: &Ctx, target: String, mut request: Request) -> Response {
    request
        .headers_mut()
        .remove(mecha_api::invoke::headers::APP_ID);
    if request
        .headers()
        .get(http_auth())
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "))
    {
        request.headers_mut().remove(http_auth());
    }
    let method = request.uri().path().trim_start_matches('/').to_owned();
    invoke(ctx, &target, method, request).await
}

fn http_auth() -> axum::http::HeaderName {
    axum::http::header::AUTHORIZATION
}

async fn invoke(ctx: &Ctx, target: &str, method: String, request: Request) -> Response {
    let (parts, request_body) = request.into_parts();
    let invocation = InvokeRequest {
        method,
        verb: parts.method,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body: body::boxed(request_body),
        caller: None,
        any_type_url: None,
    };
    match ctx.api.invoke(target, invocation).await {
        Ok(answer) => {
            let mut response = Response::new(AxumBody::new(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        Err(err) => error_response(&err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_paths() {
        assert_eq!(
            split_invoke_path("/v1.0/invoke/app/method/a/b%20c"),
            Some(("app".into(), "a/b%20c"))
        );
        assert_eq!(
            split_invoke_path("/v1.0/invoke/app.ns/method/"),
            Some(("app.ns".into(), ""))
        );
        assert_eq!(
            split_invoke_path("/v1.0/invoke/http%3A%2F%2Fx/method/m"),
            Some(("http://x".into(), "m"))
        );
        assert_eq!(split_invoke_path("/v1.0/invoke/app/method"), None);
        assert_eq!(split_invoke_path("/v1.0/invoke/app/other/m"), None);
        assert_eq!(split_invoke_path("/v1.0/invoke/%ZZ/method/m"), None);
    }
}
