//! What every call on a gRPC port goes through before its service.
//!
//! On the API port: the call pipeline of `mecha-api` (admission, which
//! checks the API token, and the seam every call runs in), for the runtime's
//! own services and proxied calls alike.
//!
//! On both ports: transparent gRPC proxying. A call carrying `dapr-app-id`
//! that is not for the runtime's own services goes to that app's gRPC
//! server as it is, unary and streaming alike, metadata and status
//! preserved. On the API port this is the caller side (resolve, forward to
//! the target's runtime); on the internal port it is the callee side
//! (forward to the local app).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mecha_api::{Api, Transport};
use mecha_invoke::body;
use mecha_invoke::headers::APP_ID;
use tower::{Layer, Service};

use crate::convert::status_from;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The API port: calls from the app.
    Caller,
    /// The internal port: calls from other runtimes.
    Callee,
}

/// Services a runtime answers itself: never proxied.
const OWN_SERVICES: &[&str] = &[
    "/dapr.proto.runtime.v1.Dapr/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/mecha.internal.v1.Invocation/",
];

#[derive(Clone)]
pub struct CallLayer {
    api: Api,
    side: Side,
}

impl CallLayer {
    pub fn new(api: Api, side: Side) -> Self {
        Self { api, side }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> CallService<S> {
        CallService {
            inner,
            api: self.api.clone(),
            side: self.side,
        }
    }
}

#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    api: Api,
    side: Side,
}

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

fn own_service(request: &Request) -> bool {
    let path = request.uri().path();
    OWN_SERVICES.iter().any(|own| path.starts_with(own))
}

impl<S> Service<Request> for CallService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let call = match self.side {
            Side::Callee => None,
            Side::Caller => {
                let path = request.uri().path();
                match self.api.admit(
                    Transport::Grpc,
                    request.method(),
                    path,
                    path,
                    request.headers(),
                ) {
                    Ok(call) => Some(call),
                    Err(refused) => {
                        let answer = status_from(refused.error()).into_http();
                        return Box::pin(std::future::ready(Ok(answer)));
                    }
                }
            }
        };
        let api = self.api.clone();
        let work: Self::Future = if own_service(&request) {
            Box::pin(self.inner.call(request))
        } else {
            let (api, side) = (api.clone(), self.side);
            Box::pin(async move { Ok(proxy(&api, side, request).await) })
        };
        match call {
            Some(call) => Box::pin(async move { api.run(&call, work).await }),
            None => work,
        }
    }
}

/// Forwards a call for another service to its app.
async fn proxy(api: &Api, side: Side, request: Request) -> Response {
    if !request.headers().contains_key(APP_ID) {
        // A service the runtime does not serve, with no target: daprd's
        // proxy answers UNKNOWN in these words.
        return tonic::Status::unknown(
            "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found",
        )
        .into_http();
    }
    let request = request.map(body::boxed);
    let result = match side {
        Side::Caller => api.proxy_grpc(request).await,
        Side::Callee => api.proxy_grpc_local(request).await,
    };
    match result {
        Ok(response) => response.map(tonic::body::Body::new),
        Err(err) => status_from(err).into_http(),
    }
}
