//! The route table (dapr-contract.md §1.1), the call pipeline, and the
//! fallback.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use futures::future::Either;
use mecha_api::{Instrumented, Refused, Transport};
use mecha_core::ApiError;

use crate::error::error_response;
use crate::{Ctx, bindings, configuration, invoke, lock, metadata, pubsub, secrets, state};

/// API groups not built yet: each answers 501 with Dapr's error body.
const NOT_YET: &[(&str, &str)] = &[
    ("/v1.0/actors/{*rest}", "actors"),
    ("/v1.0/workflows/{*rest}", "workflow"),
    ("/v1.0-beta1/workflows/{*rest}", "workflow"),
    ("/v1.0-alpha1/workflows/{*rest}", "workflow"),
    ("/v1.0/jobs/{*rest}", "jobs"),
    ("/v1.0-alpha1/jobs/{*rest}", "jobs"),
    ("/v1.0-alpha1/conversation/{*rest}", "conversation"),
    ("/v1.0-alpha2/conversation/{*rest}", "conversation"),
    ("/v1.0-alpha1/crypto/{*rest}", "cryptography"),
    ("/v1.0-alpha1/subtlecrypto/{*rest}", "cryptography"),
];

pub(crate) fn build(ctx: Ctx) -> Router {
    let mut router = Router::new()
        .route("/v1.0/state/{store}", post(state::save).put(state::save))
        .route("/v1.0/state/{store}/{key}", any(state::by_key))
        .route(
            "/v1.0-alpha1/state/{store}/query",
            post(state::query).put(state::query),
        )
        .route(
            "/v1.0/bindings/{name}",
            post(bindings::invoke).put(bindings::invoke),
        )
        .route("/v1.0/secrets/{store}/{key}", get(secrets::get))
        .route("/v1.0/configuration/{store}", get(configuration::get))
        .route(
            "/v1.0-alpha1/configuration/{store}",
            get(configuration::get),
        )
        .route(
            "/v1.0/configuration/{store}/subscribe",
            get(configuration::subscribe),
        )
        .route(
            "/v1.0-alpha1/configuration/{store}/subscribe",
            get(configuration::subscribe),
        )
        .route(
            "/v1.0/configuration/{store}/{id}/unsubscribe",
            get(configuration::unsubscribe),
        )
        .route(
            "/v1.0-alpha1/configuration/{store}/{id}/unsubscribe",
            get(configuration::unsubscribe),
        )
        .route("/v1.0-alpha1/lock/{store}", post(lock::try_lock))
        .route("/v1.0-alpha1/unlock/{store}", post(lock::unlock))
        .route("/v1.0/metadata", get(metadata::get))
        .route("/v1.0/metadata/{key}", put(metadata::set))
        .route("/v1.0/healthz", get(metadata::healthz))
        .route("/v1.0/healthz/outbound", get(metadata::outbound_healthz))
        .route("/v1.0/shutdown", post(metadata::shutdown))
        .route("/v1.0/invoke/{*rest}", any(invoke::by_path))
        .route(
            "/v1.0/publish/bulk/{pubsub}/{*topic}",
            post(pubsub::bulk_publish).put(pubsub::bulk_publish),
        )
        .route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}",
            post(pubsub::bulk_publish).put(pubsub::bulk_publish),
        )
        .route(
            "/v1.0/publish/{pubsub}/{*topic}",
            post(pubsub::publish).put(pubsub::publish),
        )
        .route(
            "/v1.0/publish/{pubsub}",
            post(pubsub::publish_incomplete).put(pubsub::publish_incomplete),
        )
        .route(
            "/v1.0/publish/{pubsub}/",
            post(pubsub::publish_incomplete).put(pubsub::publish_incomplete),
        )
        .route(
            "/v1.0/publish/",
            post(pubsub::publish_incomplete).put(pubsub::publish_incomplete),
        );
    for (path, what) in NOT_YET {
        let what: &'static str = what;
        router = router.route(
            path,
            any(move || async move { error_response(&ApiError::unimplemented(what)) }),
        );
    }
    // As in daprd, a path no route takes, or a known path with another
    // method, is service invocation.
    let router = router
        .fallback(fallback)
        .method_not_allowed_fallback(fallback);
    let api = ctx.api.clone();
    router.layer(Pipeline { api }).with_state(ctx)
}

/// Every call enters `mecha-api`'s call pipeline: admitted (with
/// `DAPR_API_TOKEN` set, every call but the health checks must carry
/// `dapr-api-token`; daprd answers 401 with a plain-text body otherwise),
/// then run in its seam. The operation is the route's pattern; calls no
/// route takes are service invocation. (A layer of its own rather than
/// `middleware::from_fn`, which boxes every call twice.)
#[derive(Clone)]
struct Pipeline {
    api: mecha_api::Api,
}

impl<S> tower::Layer<S> for Pipeline {
    type Service = PipelineService<S>;

    fn layer(&self, inner: S) -> PipelineService<S> {
        PipelineService {
            inner,
            api: self.api.clone(),
        }
    }
}

#[derive(Clone)]
struct PipelineService<S> {
    inner: S,
    api: mecha_api::Api,
}

impl<S> tower::Service<Request> for PipelineService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let operation = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("invoke", MatchedPath::as_str);
        let admitted = self.api.admit(
            Transport::Http,
            request.method(),
            request.uri().path(),
            operation,
            request.headers(),
        );
        match admitted {
            Ok(call) => Either::Right(self.api.run(&call, self.inner.call(request))),
            Err(_) => Either::Left(ready(Ok((
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                Refused::HTTP_BODY,
            )
                .into_response()))),
        }
    }
}

/// Any request no route takes is service invocation in daprd: with a
/// `dapr-app-id` header (or Basic auth naming the app id) it would be
/// forwarded; without one it is Dapr's 404.
pub(crate) async fn fallback(State(ctx): State<Ctx>, request: Request) -> Response {
    match target_app_id(request.headers()) {
        Some(target) => invoke::by_header(&ctx, target, request).await,
        None => error_response(&mecha_api::invoke::missing_app_id()),
    }
}

/// The invocation target named by `dapr-app-id` or `Authorization: Basic`.
fn target_app_id(headers: &HeaderMap) -> Option<String> {
    if let Some(id) = headers.get("dapr-app-id").and_then(|v| v.to_str().ok()) {
        return Some(id.to_owned());
    }
    use base64::Engine as _;
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.strip_prefix("dapr-app-id:").map(str::to_owned)
}
