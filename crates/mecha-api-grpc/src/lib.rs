//! The gRPC adapters: `dapr.proto.runtime.v1.Dapr` on the API port (plus
//! gRPC health, reflection and transparent proxying), and Mecha's own
//! runtime-to-runtime service on the internal port, with its client. No
//! rules live here: every operation is the API layer's.

mod configuration;
mod convert;
mod frames;
mod internal;
mod peers;
mod proxy;
mod service;
mod stream;

use mecha_api::Api;
use mecha_proto::internal::v1::invocation_server::InvocationServer;
use mecha_proto::runtime::dapr_server::DaprServer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Status};

pub use convert::status_from;
pub use internal::InternalService;
pub use peers::PeerClient;
pub use proxy::{ProxyLayer, Side};
pub use service::DaprService;

/// The gRPC services of the Dapr API port: Dapr (behind the API token when
/// one is set), health (always open) and reflection.
pub fn routes(api: Api, max_message_size: usize) -> Routes {
    let runtime = api.runtime().clone();
    let auth_api = api.clone();
    let check_token = move |request: Request<()>| -> Result<Request<()>, Status> {
        let token = request
            .metadata()
            .get("dapr-api-token")
            .map(|v| v.as_bytes());
        match auth_api.token_refusal(token) {
            None => Ok(request),
            Some(detail) => Err(convert::unauthenticated(detail)),
        }
    };
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
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mecha_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the committed descriptor set is valid");
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mecha_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the committed descriptor set is valid");
    Routes::new(InterceptedService::new(dapr, check_token.clone()))
        .add_service(health)
        .add_service(InterceptedService::new(reflection, check_token.clone()))
        .add_service(InterceptedService::new(reflection_alpha, check_token))
}

/// The runtime-to-runtime service of the internal port.
pub fn internal_routes(api: Api) -> Routes {
    Routes::new(
        InvocationServer::new(InternalService::new(api))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    )
}

/// Serves `routes` on `listener` until `shutdown` resolves, then drains.
/// Calls carrying `dapr-app-id` for other services are proxied (`side`).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    proxy: ProxyLayer,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            oversized_as_resource_exhausted,
        ))
        .layer(proxy)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
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
