//! What every call on the gRPC API port goes through before its service:
//! the call pipeline of `mecha-api` (admission, which checks the API token,
//! and the seam every call runs in), for the runtime's own services and
//! proxied calls alike; then transparent gRPC proxying, the caller side: a
//! call carrying `dapr-app-id` that is not for the runtime's own services
//! goes to that app's runtime (and on to its gRPC server) as it is, unary
//! and streaming alike, metadata and status preserved.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::Either;
use http_body_util::BodyExt;
use mecha_api::budget::{Settle, Size};
use mecha_api::invoke::body;
use mecha_api::invoke::{is_own_grpc_service, missing_proxy_target};
use mecha_api::{Api, Instrumented, Transport};
use tower::{Layer, Service};

use crate::convert::status_from;

#[derive(Clone)]
pub struct CallLayer {
    api: Api,
}

impl CallLayer {
    pub fn new(api: Api) -> Self {
        Self { api }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> CallService<S> {
        CallService {
            inner,
            api: self.api.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    api: Api,
}

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

impl<S> Service<Request> for CallService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    /// A refusal, a call for the runtime's own services, or a proxied call
    /// (boxed: only that path pays for it).
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        Either<Instrumented<Settle<S::Future>>, Instrumented<Proxied>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        let seam = match self.api.admit(
            Transport::Grpc,
            request.method(),
            path,
            path,
            request.headers(),
        ) {
            Ok(call) => call.seam(),
            Err(refused) => {
                let answer = status_from(refused.error()).into_http();
                return Either::Left(ready(Ok(answer)));
            }
        };
        if is_own_grpc_service(request.uri().path()) {
            // The runtime's own methods decode their messages whole: the
            // body is charged to the memory budget until the answer begins.
            let account = self.api.memory_budget().account_for(request.body());
            let request = match &account {
                Some(account) => request.map(|body| {
                    tonic::body::Body::new(
                        account
                            .charge(body, Size::GRPC_MESSAGE)
                            .map_err(over_budget_status),
                    )
                }),
                None => request,
            };
            let work = Settle::new(self.inner.call(request), account);
            return Either::Right(Either::Left(seam.run(work)));
        }
        let api = self.api.clone();
        let work: Proxied = Box::pin(async move { Ok(proxy(&api, request).await) });
        Either::Right(Either::Right(seam.run(work)))
    }
}

/// A body's error as tonic answers it: the memory budget's refusal is
/// `RESOURCE_EXHAUSTED` (tonic finds a `Status` among body errors).
fn over_budget_status(err: body::BoxError) -> body::BoxError {
    match mecha_api::OverBudget::find(err.as_ref()) {
        Some(over) => Box::new(tonic::Status::resource_exhausted(over.to_string())),
        None => err,
    }
}

type Proxied = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// Forwards a call for another service to the app it names.
async fn proxy(api: &Api, request: Request) -> Response {
    if let Some(problem) = missing_proxy_target(request.headers()) {
        return tonic::Status::unknown(problem).into_http();
    }
    match api.proxy_grpc(request.map(body::boxed)).await {
        Ok(response) => response.map(tonic::body::Body::new),
        Err(err) => status_from(err).into_http(),
    }
}
