//! The route table (dapr-contract.md §1.1), the call pipeline, and the
//! fallback.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use futures::future::Either;
use mecha_api::budget::{Settle, Size};
use mecha_api::{Instrumented, Refused, Transport};
use mecha_core::ApiError;

use crate::error::error_response;
use crate::{
    Ctx, actors, bindings, configuration, invoke, jobs, lock, metadata, pubsub, secrets, state,
};

/// API groups not built yet: each answers 501 with Dapr's error body.
const NOT_YET: &[(&str, &str)] = &[
    (
        "/v1.0/actors/{actor_type}/{actor_id}/reminders/{name}",
        "actor reminders",
    ),
    (
        "/v1.0/actors/{actor_type}/{actor_id}/timers/{name}",
        "actor timers",
    ),
    ("/v1.0/workflows/{*rest}", "workflow"),
    ("/v1.0-beta1/workflows/{*rest}", "workflow"),
    ("/v1.0-alpha1/workflows/{*rest}", "workflow"),
    ("/v1.0-alpha1/conversation/{*rest}", "conversation"),
    ("/v1.0-alpha2/conversation/{*rest}", "conversation"),
    ("/v1.0-alpha1/crypto/{*rest}", "cryptography"),
    ("/v1.0-alpha1/subtlecrypto/{*rest}", "cryptography"),
];

pub(crate) fn build(ctx: Ctx) -> Pipeline<Router> {
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
        .route(
            "/v1.0/jobs/{name}",
            post(jobs::schedule).get(jobs::get).delete(jobs::delete),
        )
        .route(
            "/v1.0-alpha1/jobs/{name}",
            post(jobs::schedule).get(jobs::get).delete(jobs::delete),
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
            "/v1.0/actors/{actor_type}/{actor_id}/method/{method}",
            any(actors::invoke),
        )
        .route(
            "/v1.0/actors/{actor_type}/{actor_id}/state",
            post(actors::transaction).put(actors::transaction),
        )
        .route(
            "/v1.0/actors/{actor_type}/{actor_id}/state/{key}",
            get(actors::get_state),
        )
        .route(
            "/v1.0/actors/{actor_type}/{actor_id}/timers/{name}",
            post(actors::create_timer)
                .put(actors::create_timer)
                .delete(actors::delete_timer),
        )
        .route(
            "/v1.0/actors/{actor_type}/{actor_id}/reminders/{name}",
            post(actors::create_reminder)
                .put(actors::create_reminder)
                .get(actors::get_reminder)
                .delete(actors::delete_reminder),
        )
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
    Pipeline {
        inner: router.with_state(ctx),
        api,
    }
}

/// The HTTP API: every call enters `mecha-api`'s call pipeline, then the
/// router. With `DAPR_API_TOKEN` set, every call but the health checks must
/// carry `dapr-api-token` (daprd answers 401 with a plain-text body
/// otherwise). It wraps the whole router rather than each route (as
/// `Router::layer` would), which would box every call once more and need
/// the matched route in the request's extensions.
#[derive(Clone)]
pub struct Pipeline<S> {
    inner: S,
    api: mecha_api::Api,
}

impl<S> tower::Service<Request> for Pipeline<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, Instrumented<Settle<S::Future>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        let operation = operation(path);
        let seam = match self.api.admit(
            Transport::Http,
            request.method(),
            path,
            operation,
            request.headers(),
        ) {
            Ok(call) => call.seam(),
            Err(_) => {
                return Either::Left(ready(Ok((
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    Refused::HTTP_BODY,
                )
                    .into_response())));
            }
        };
        // Bodies read whole are charged to the memory budget until the
        // answer begins; invocation streams its bodies on.
        let account = match operation {
            "invoke" => None,
            _ => self
                .api
                .memory_budget()
                .account_for(request.body())
                // A path no route takes, with a target app, is forwarded.
                .filter(|_| target_app_id(request.headers()).is_none()),
        };
        let request = match &account {
            Some(account) => request.map(|body| {
                let size = Size::of(&body);
                Body::new(account.charge(body, size))
            }),
            None => request,
        };
        Either::Right(seam.run(Settle::new(self.inner.call(request), account)))
    }
}

/// The API groups, by the path segment after the version.
const GROUPS: &[&str] = &[
    "state",
    "publish",
    "bindings",
    "secrets",
    "configuration",
    "lock",
    "unlock",
    "metadata",
    "healthz",
    "shutdown",
    "invoke",
    "actors",
    "workflows",
    "jobs",
    "conversation",
    "crypto",
    "subtlecrypto",
];

/// The operation a call is for, as the pipeline names it: its API group,
/// read from `/v1.0[-suffix]/{group}/...` without routing (a bounded set, as
/// metrics will need). A path outside the groups is service invocation, as
/// the router's fallback takes it.
fn operation(path: &str) -> &'static str {
    let group = path
        .strip_prefix("/v1.0")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(suffix, _)| suffix.is_empty() || suffix.starts_with('-'))
        .map(|(_, rest)| rest.split_once('/').map_or(rest, |(group, _)| group));
    group
        .and_then(|group| GROUPS.iter().find(|known| **known == group))
        .copied()
        .unwrap_or("invoke")
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

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn operations_are_api_groups() {
        for (path, group) in [
            ("/v1.0/state/store/key", "state"),
            ("/v1.0-alpha1/state/store/query", "state"),
            ("/v1.0/publish/bulk/pubsub/topic", "publish"),
            ("/v1.0-alpha1/lock/store", "lock"),
            ("/v1.0/healthz", "healthz"),
            ("/v1.0/metadata", "metadata"),
            ("/v1.0/invoke/app/method/m", "invoke"),
            ("/v1.0-beta1/workflows/dapr/x/start", "workflows"),
            ("/anything/the/app/serves", "invoke"),
            ("/v1.0/unknown/x", "invoke"),
            ("/v1.0", "invoke"),
            ("/v1.0x/state/s", "invoke"),
            ("/v1.0/state", "state"),
            ("/", "invoke"),
        ] {
            assert_eq!(operation(path), group, "{path}");
        }
    }
}
