//! The gRPC adapter: `dapr.proto.runtime.v1.Dapr` on the API port, plus
//! gRPC health, reflection and transparent proxying (the caller side), all
//! behind the call pipeline of `mecha-api`. No rules live here: every
//! operation is the API layer's. (Runtime-to-runtime calls are
//! `mecha-peers`'.)

mod actor_stream;
mod configuration;
mod convert;
mod jobs;
mod pipeline;
mod service;
mod stream;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use mecha_api::Api;
use mecha_proto::runtime::dapr_server::DaprServer;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use convert::status_from;
pub use pipeline::CallLayer;
pub use service::DaprService;

/// The gRPC services of the Dapr API port: Dapr, health and reflection
/// (served behind [`CallLayer`], which checks the API token).
pub fn routes(api: Api) -> Routes {
    let runtime = api.runtime().clone();
    let max_message_size = api.body_limit().bytes();
    let dapr = DaprServer::new(DaprService::new(api))
        .max_decoding_message_size(max_message_size)
        .max_encoding_message_size(usize::MAX);
    // gRPC health follows /v1.0/healthz: not serving until the components
    // are ready, and not serving again from the moment shutdown starts.
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        use tonic_health::ServingStatus::{NotServing, Serving};
        const DAPR: &str = "dapr.proto.runtime.v1.Dapr";
        for service in ["", DAPR] {
            reporter.set_service_status(service, NotServing).await;
        }
        runtime.wait_ready().await;
        for service in ["", DAPR] {
            reporter.set_service_status(service, Serving).await;
        }
        runtime.shutdown_requested().await;
        for service in ["", DAPR] {
            reporter.set_service_status(service, NotServing).await;
        }
    });
    let reflection = Lazy::new(|| {
        reflection_builder()
            .build_v1()
            .expect("the committed descriptor set is valid")
    });
    let reflection_alpha = Lazy::new(|| {
        reflection_builder()
            .build_v1alpha()
            .expect("the committed descriptor set is valid")
    });
    Routes::new(dapr)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mecha_proto::FILE_DESCRIPTOR_SET)
}

/// A gRPC service made on its first call. gRPC reflection decodes every
/// message type of the API into tables of its own (over a megabyte for
/// each of its two versions), which most runtimes are never asked for.
struct Lazy<S> {
    service: Arc<OnceLock<S>>,
    make: fn() -> S,
}

impl<S> Lazy<S> {
    fn new(make: fn() -> S) -> Self {
        Self {
            service: Arc::default(),
            make,
        }
    }
}

impl<S> Clone for Lazy<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            make: self.make,
        }
    }
}

impl<S: NamedService> NamedService for Lazy<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, Request> tower::Service<Request> for Lazy<S>
where
    S: tower::Service<Request> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Only for services that are always ready, as tonic's generated
        // servers (reflection's among them) are: the one made is not
        // asked.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.service.get_or_init(self.make).clone().call(request)
    }
}

/// The gRPC API port as one service (served by the runtime's listeners):
/// every call goes through the call pipeline ([`CallLayer`], which also
/// proxies calls for other services), and a message over the size limit is
/// answered as daprd answers it.
pub fn service(
    api: Api,
) -> impl tower::Service<
    http::Request<tonic::body::Body>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let routes = routes(api.clone()).prepare();
    tower::ServiceBuilder::new()
        .map_response(oversized_as_resource_exhausted)
        .layer(CallLayer::new(api))
        .service(routes)
}

/// tonic refuses a message over the size limit with `OUT_OF_RANGE`; daprd
/// (grpc-go) says `RESOURCE_EXHAUSTED`, which is what clients expect.
fn oversized_as_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
    let oversized = headers.get("grpc-message").is_some_and(|v| {
        v.to_str()
            .unwrap_or_default()
            .contains("message%20length%20too%20large")
    });
    if out_of_range && oversized {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}
