//! The peer plane: how runtimes call each other, on the internal port
//! (`--dapr-internal-grpc-port`). Service invocation travels here as
//! Mecha's own `mecha.internal.v1.Invocation` stream (a head, body chunks,
//! an end), and transparent gRPC proxying as the app's own HTTP/2 request;
//! actor calls and reminder delivery will travel here too.
//!
//! - [`PeerClient`]: the caller side (the `Peers` seam of `mecha-invoke`).
//! - [`service`]: the callee side: the invocation server, and the layer that
//!   hands proxied gRPC calls to the local app.

mod client;
mod frames;
mod proxy;
mod server;

use std::convert::Infallible;

use mecha_api::Api;
use mecha_proto::internal::v1::invocation_server::InvocationServer;
use tonic::service::Routes;

pub use client::PeerClient;
pub use server::InternalService;

/// The internal port as one service (served by the runtime's listeners):
/// the invocation server, and proxied gRPC calls handed to the local app.
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
    let routes = Routes::new(
        InvocationServer::new(InternalService::new(api.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    )
    .prepare();
    tower::ServiceBuilder::new()
        .layer(proxy::ToLocalAppLayer { api })
        .service(routes)
}
