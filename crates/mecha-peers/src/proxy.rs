//! The callee side of transparent gRPC proxying: a call that came from
//! another runtime for a service other than the peer plane's own goes to
//! the local app's gRPC server as it is, unary and streaming alike.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mecha_api::Api;
use mecha_api::invoke::{is_own_grpc_service, missing_proxy_target};
use mecha_core::ApiError;
use mecha_core::error::ERROR_DOMAIN;
use mecha_invoke::body;
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

/// Puts [`ToLocalApp`] in front of the internal port's services.
#[derive(Clone)]
pub struct ToLocalAppLayer {
    pub api: Api,
}

impl<S> Layer<S> for ToLocalAppLayer {
    type Service = ToLocalApp<S>;

    fn layer(&self, inner: S) -> ToLocalApp<S> {
        ToLocalApp {
            inner,
            api: self.api.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ToLocalApp<S> {
    inner: S,
    api: Api,
}

impl<S> Service<Request> for ToLocalApp<S>
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
        if request.uri().path() == crate::whole::PATH {
            let api = self.api.clone();
            return Box::pin(async move {
                let response = crate::whole::serve(api, request.map(body::boxed)).await;
                Ok(response.map(tonic::body::Body::new))
            });
        }
        if request.version() < http::Version::HTTP_2 {
            // HTTP/1.1 is for small calls only; gRPC needs HTTP/2.
            let mut refused = Response::new(tonic::body::Body::new(body::full(
                "this port takes HTTP/1.1 for small calls only",
            )));
            *refused.status_mut() = http::StatusCode::BAD_REQUEST;
            return Box::pin(std::future::ready(Ok(refused)));
        }
        if is_own_grpc_service(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let api = self.api.clone();
        Box::pin(async move {
            if let Some(problem) = missing_proxy_target(request.headers()) {
                return Ok(tonic::Status::unknown(problem).into_http());
            }
            let result = api.proxy_grpc_local(request.map(body::boxed)).await;
            Ok(match result {
                Ok(response) => response.map(tonic::body::Body::new),
                Err(err) => status_of(err).into_http(),
            })
        })
    }
}

/// The callee's errors (the local app cannot be reached) as a gRPC status
/// with Dapr's `ErrorInfo`, as the API port renders them.
fn status_of(err: ApiError) -> tonic::Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        err.info_reason(),
        ERROR_DOMAIN,
        HashMap::<String, String>::new(),
    );
    tonic::Status::with_error_details(
        tonic::Code::from_i32(err.grpc_code as i32),
        err.message,
        details,
    )
}
