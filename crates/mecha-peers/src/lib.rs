//! The peer plane: how runtimes call each other, on the internal port
//! (`--dapr-internal-grpc-port`). Service invocation travels here in
//! Mecha's own protocol (`mecha.internal.v1.Invocation`): a small call as
//! one plain HTTP/2 request and answer ([`whole`]), any other as a stream
//! (a head, body chunks, an end); transparent gRPC proxying travels as the
//! app's own HTTP/2 request;
//! actor calls and reminder delivery will travel here too.
//!
//! - [`PeerClient`]: the caller side (the `Peers` seam of `mecha-invoke`).
//! - [`service`]: the callee side: the invocation server, and the layer that
//!   hands proxied gRPC calls to the local app.

mod client;
mod frames;
mod proxy;
mod server;
mod whole;

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

/// What the peer plane makes of another runtime's frames, for the fuzz
/// targets (`fuzz/` at the repository root): the same conversions the
/// server and the client apply.
#[doc(hidden)]
pub mod fuzzing {
    use futures::StreamExt;
    use http_body_util::BodyExt;
    use mecha_proto::internal::v1::{InvokeFrame, invoke_frame::Frame};

    /// Reads frames as a runtime reads a call or an answer: the head's
    /// headers, status and error, then the rest as a body, which must fail
    /// rather than end short when the frames are out of order.
    pub fn read(mut frames: Vec<InvokeFrame>) -> Result<usize, String> {
        if frames.is_empty() {
            return Err("no frames".into());
        }
        match frames.remove(0).frame {
            Some(Frame::Request(head)) => {
                let _ = http::Method::from_bytes(head.verb.as_bytes());
                let _ = crate::server::headers_from(head.headers);
            }
            Some(Frame::Response(head)) => {
                let _ = crate::client::remote_status(head.status);
                let _ = crate::server::headers_from(head.headers);
                if let Some(err) = head.error {
                    let err = crate::client::remote_error(err);
                    http::StatusCode::from_u16(err.http_status).map_err(|e| e.to_string())?;
                }
            }
            _ => return Err("the first frame is not a head".into()),
        }
        let stream = futures::stream::iter(frames.into_iter().map(Ok));
        let body = crate::frames::body(stream.boxed());
        // The frames are all here: the body never waits.
        let mut collect = std::pin::pin!(body.collect());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(collect.as_mut(), &mut cx) {
            std::task::Poll::Ready(Ok(collected)) => Ok(collected.to_bytes().len()),
            std::task::Poll::Ready(Err(err)) => Err(err.to_string()),
            std::task::Poll::Pending => Err("a body of frames at hand waited".into()),
        }
    }
}
