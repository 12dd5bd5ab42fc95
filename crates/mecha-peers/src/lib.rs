//! The peer plane: how runtimes call each other, on the internal port
//! (`--dapr-internal-grpc-port`). Service invocation travels here as
//! Mecha's own `mecha.internal.v1.Invocation` stream (a head, body chunks,
//! an end), and transparent gRPC proxying as the app's own HTTP/2 request;
//! actor calls and reminder delivery will travel here too.
//!
//! - [`PeerClient`]: the caller side (the `Peers` seam of `mecha-invoke`).
//! - [`serve`]: the callee side: the invocation server, and the layer that
//!   hands proxied gRPC calls to the local app.

mod client;
mod frames;
mod proxy;
mod server;

use mecha_api::Api;
use mecha_proto::internal::v1::invocation_server::InvocationServer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

pub use client::PeerClient;
pub use server::InternalService;

/// Serves the internal port on `listener` until `shutdown` resolves, then
/// drains.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let routes = Routes::new(
        InvocationServer::new(InternalService::new(api.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    );
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .layer(proxy::ToLocalAppLayer { api })
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
