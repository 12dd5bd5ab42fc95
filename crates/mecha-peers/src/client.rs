//! The client side of runtime-to-runtime calls: [`Peers`] over the
//! internal port of other runtimes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mecha_core::{ApiError, GrpcCode};
use mecha_invoke::body::{self, Body};
use mecha_invoke::{InvokeRequest, InvokeResponse, Peers};
use mecha_proto::internal::v1::invocation_client::InvocationClient;
use mecha_proto::internal::v1::{InvokeFrame, RequestHead, RuntimeError, invoke_frame::Frame};
use tonic::transport::{Channel, Endpoint};

use crate::frames;
use crate::server::{headers_from, headers_to};

/// Connections to other runtimes, pooled by address.
pub struct PeerClient {
    channels: Mutex<HashMap<String, Channel>>,
    raw: HyperClient<HttpConnector, Body>,
}

impl Default for PeerClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            channels: Mutex::default(),
            raw: HyperClient::builder(TokioExecutor::new())
                .http2_only(true)
                .build(connector),
        }
    }
}

fn unreachable(target: &str, address: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_DIRECT_INVOKE",
        500,
        GrpcCode::Internal,
        format!(
            "failed to invoke, id: {target}, err: cannot reach the runtime at {address}: {err}"
        ),
    )
}

impl PeerClient {
    fn channel(&self, target: &str, address: &str) -> Result<Channel, ApiError> {
        let mut channels = self.channels.lock().expect("lock");
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|err| unreachable(target, address, err))?
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

#[async_trait]
impl Peers for PeerClient {
    async fn invoke(
        &self,
        address: &str,
        target: &str,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let mut client = InvocationClient::new(self.channel(target, address)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let caller = req.caller.unwrap_or_default();
        let head = InvokeFrame {
            frame: Some(Frame::Request(RequestHead {
                target_app_id: target.to_owned(),
                method: req.method,
                verb: req.verb.as_str().to_owned(),
                query: req.query,
                headers: headers_to(&req.headers),
                caller_app_id: caller.app_id,
                caller_namespace: caller.namespace.unwrap_or_default(),
                any_type_url: req.any_type_url.unwrap_or_default(),
            })),
        };
        // The request body streams behind the head; a body that fails (too
        // large) stops the stream before `end`, so the callee never takes it
        // for a whole one, and the failure is remembered for the answer.
        let failed_rx: SharedFailure = SharedFailure::default();
        let outgoing = outgoing(head, req.body, failed_rx.clone());
        let mut incoming = match client.invoke(outgoing).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Err(status_error(target, address, &status, failed_rx)),
        };
        let head = match incoming.message().await {
            Ok(Some(InvokeFrame {
                frame: Some(Frame::Response(head)),
            })) => head,
            Ok(_) => {
                return Err(unreachable(
                    target,
                    address,
                    "the runtime answered without a response head",
                ));
            }
            Err(status) => return Err(status_error(target, address, &status, failed_rx)),
        };
        if let Some(err) = head.error {
            if let Some(too_large) = failed_rx
                .lock()
                .expect("lock")
                .clone()
                .filter(|e| body::is_too_large_text(e))
            {
                return Err(ApiError::new(
                    "ERR_DIRECT_INVOKE",
                    500,
                    GrpcCode::Internal,
                    format!("failed to invoke, id: {target}, err: {too_large}"),
                ));
            }
            return Err(remote_error(err));
        }
        Ok(InvokeResponse {
            status: remote_status(head.status),
            headers: headers_from(head.headers),
            grpc_status: head.grpc_status.map(|s| mecha_invoke::GrpcStatus {
                code: s.code,
                message: s.message,
                details: s.details,
            }),
            // Read to the close even when the body is not (see
            // frames::pumped_body): an early cancel on every call ends in
            // HTTP/2 resets the callee's connection cannot bear.
            body: frames::pumped_body(incoming).0,
        })
    }

    async fn forward_grpc(
        &self,
        address: &str,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, ApiError> {
        let (mut parts, body) = request.into_parts();
        let path = mecha_invoke::path_and_query(&parts.uri);
        parts.uri = format!("http://{address}{path}")
            .parse()
            .map_err(|err| unreachable("", address, err))?;
        let response = self
            .raw
            .request(http::Request::from_parts(parts, body))
            .await
            .map_err(|err| unreachable("", address, err))?;
        Ok(response.map(body::boxed))
    }
}

/// The error another runtime answered, as this one answers it: its code
/// when it is one a caller branches on, its status when it is a real one.
pub(crate) fn remote_error(err: RuntimeError) -> ApiError {
    let grpc = match err.grpc_code {
        3 => GrpcCode::InvalidArgument,
        5 => GrpcCode::NotFound,
        8 => GrpcCode::ResourceExhausted,
        12 => GrpcCode::Unimplemented,
        _ => GrpcCode::Internal,
    };
    let code: &'static str = if err.code == "ERR_DIRECT_INVOKE" {
        "ERR_DIRECT_INVOKE"
    } else {
        "ERR_INTERNAL"
    };
    let status = u16::try_from(err.http_status)
        .ok()
        .filter(|status| http::StatusCode::from_u16(*status).is_ok())
        .unwrap_or(500);
    ApiError::new(code, status, grpc, err.message)
}

/// The app's status another runtime answered (500 when it is not one).
pub(crate) fn remote_status(status: u32) -> http::StatusCode {
    u16::try_from(status)
        .ok()
        .and_then(|status| http::StatusCode::from_u16(status).ok())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

fn status_error(
    target: &str,
    address: &str,
    status: &tonic::Status,
    failed: SharedFailure,
) -> ApiError {
    if let Some(err) = failed
        .lock()
        .expect("lock")
        .clone()
        .filter(|e| body::is_too_large_text(e))
    {
        return ApiError::new(
            "ERR_DIRECT_INVOKE",
            500,
            GrpcCode::Internal,
            format!("failed to invoke, id: {target}, err: {err}"),
        );
    }
    // The message of a transport failure is terse; its causes say more.
    let mut detail = status.message().to_owned();
    if let Some(source) = std::error::Error::source(status) {
        let causes = mecha_invoke::describe(source);
        if !detail.contains(&causes) {
            detail.push_str(": ");
            detail.push_str(&causes);
        }
    }
    unreachable(target, address, detail)
}

/// Why the request body stopped, when it failed while streaming.
type SharedFailure = std::sync::Arc<Mutex<Option<String>>>;

/// The head, then the body's frames; a failing body ends the stream
/// before `end`, with the failure kept in `failed`.
fn outgoing(
    head: InvokeFrame,
    body: Body,
    failed: SharedFailure,
) -> impl futures::Stream<Item = InvokeFrame> + Send + 'static {
    let frames =
        frames::frames(body).map(
            move |frame: Result<InvokeFrame, body::BoxError>| match frame {
                Ok(frame) => Some(frame),
                Err(err) => {
                    *failed.lock().expect("lock") = Some(err.to_string());
                    None
                }
            },
        );
    futures::stream::once(async { Some(head) })
        .chain(frames)
        .take_while(|frame| futures::future::ready(frame.is_some()))
        .filter_map(futures::future::ready)
}
