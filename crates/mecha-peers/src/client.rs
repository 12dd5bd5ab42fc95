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
use mecha_invoke::{ActorRef, InvokeRequest, InvokeResponse, Peers};
use mecha_proto::internal::v1::invocation_client::InvocationClient;
use mecha_proto::internal::v1::{
    ActorTarget, InvokeFrame, RequestHead, ResponseHead, RuntimeError, invoke_frame::Frame,
};

use crate::server::{headers_from, headers_to};
use crate::{frames, whole};

/// The gRPC client of the peer plane: tonic's codec straight over hyper's
/// pooled HTTP/2 client (no buffer task between them, as tonic's `Channel`
/// has).
#[derive(Clone)]
struct Transport(HyperClient<HttpConnector, Body>);

impl tower::Service<http::Request<tonic::body::Body>> for Transport {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // The pool makes or waits for its connection in `call`.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.0.request(request.map(body::boxed))
    }
}

/// Connections to other runtimes: one HTTP/2 connection per address,
/// shared by invocations and proxied gRPC calls, and a pool of HTTP/1.1
/// connections for small calls to runtimes that take them.
pub struct PeerClient {
    raw: HyperClient<HttpConnector, Body>,
    clients: Mutex<HashMap<String, InvocationClient<Transport>>>,
    /// What each runtime called so far takes, by address.
    peers: Mutex<HashMap<String, Peer>>,
}

/// How to make a small call to one runtime.
#[derive(Clone)]
struct Peer {
    /// Its small calls' URI.
    uri: http::Uri,
    takes: Takes,
    /// Its HTTP/1.1 connections (none until it takes small calls over
    /// HTTP/1.1).
    http1: std::sync::Arc<mecha_http1::Pool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// Small calls over HTTP/2 (and it may say it takes HTTP/1.1).
    Http2,
    /// Small calls over HTTP/1.1, as it said in an answer.
    Http1,
    /// Only streams: it predates small calls, and every call to it
    /// streams instead of being refused once per call first.
    StreamsOnly,
}

impl Default for PeerClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            raw: HyperClient::builder(TokioExecutor::new())
                .http2_only(true)
                .build(connector),
            clients: Mutex::default(),
            peers: Mutex::default(),
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

/// A request body that failed, as the caller gets it.
fn body_failed(target: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_DIRECT_INVOKE",
        500,
        GrpcCode::Internal,
        format!("failed to invoke, id: {target}, err: {err}"),
    )
}

impl PeerClient {
    fn client(&self, target: &str, address: &str) -> Result<InvocationClient<Transport>, ApiError> {
        let mut clients = self.clients.lock().expect("lock");
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let origin: http::Uri = format!("http://{address}")
            .parse()
            .map_err(|err| unreachable(target, address, err))?;
        let client = InvocationClient::with_origin(Transport(self.raw.clone()), origin)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }

    /// How to make a small call to the runtime at `address`.
    fn peer(&self, target: &str, address: &str) -> Result<Peer, ApiError> {
        let mut peers = self.peers.lock().expect("lock");
        if let Some(peer) = peers.get(address) {
            return Ok(peer.clone());
        }
        let uri: http::Uri = format!("http://{address}{}", whole::PATH)
            .parse()
            .map_err(|err| unreachable(target, address, err))?;
        let http1 =
            mecha_http1::Pool::new(address).map_err(|err| unreachable(target, address, err))?;
        let peer = Peer {
            uri,
            takes: Takes::Http2,
            http1,
        };
        peers.insert(address.to_owned(), peer.clone());
        Ok(peer)
    }

    /// Records what the runtime at `address` takes.
    fn learned(&self, address: &str, takes: Takes) {
        if let Some(peer) = self.peers.lock().expect("lock").get_mut(address) {
            peer.takes = takes;
        }
    }
}

/// The head of `req`'s call to app `target`.
fn request_head(target: &str, req: InvokeRequest) -> (RequestHead, Body) {
    let caller = req.caller.unwrap_or_default();
    let head = RequestHead {
        target_app_id: target.to_owned(),
        method: req.method,
        verb: req.verb.as_str().to_owned(),
        query: req.query,
        headers: headers_to(&req.headers),
        caller_app_id: caller.app_id,
        caller_namespace: caller.namespace.unwrap_or_default(),
        any_type_url: req.any_type_url.unwrap_or_default(),
        body: None,
        actor: None,
    };
    (head, req.body)
}

#[async_trait]
impl Peers for PeerClient {
    async fn invoke(
        &self,
        address: &str,
        target: &str,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let (head, body) = request_head(target, req);
        self.send(address, target, head, body).await
    }

    async fn call_actor(
        &self,
        address: &str,
        target: &str,
        actor: &ActorRef,
        hops: u32,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let (mut head, body) = request_head(target, req);
        head.actor = Some(ActorTarget {
            actor_type: actor.actor_type.clone(),
            actor_id: actor.actor_id.clone(),
            hops,
        });
        self.send(address, target, head, body).await
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

/// The callee's answer: its head, then its body in frames behind it.
/// `failed` is why the request body stopped, if it did.
async fn answer(
    target: &str,
    address: &str,
    mut incoming: tonic::Streaming<InvokeFrame>,
    failed: &SharedFailure,
) -> Result<InvokeResponse, ApiError> {
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
        Err(status) => return Err(status_error(target, address, &status, failed)),
    };
    if let Some(err) = head.error {
        if let Some(too_large) = too_large(failed) {
            return Err(body_failed(target, too_large));
        }
        return Err(remote_error(err));
    }
    // Read to the close even when the body is not (see
    // frames::pumped_body): an early cancel on every call ends in HTTP/2
    // resets the callee's connection cannot bear.
    Ok(response_of(head, frames::pumped_body(incoming).0))
}

/// The app's answer, from its head and its body.
pub(crate) fn response_of(head: ResponseHead, body: Body) -> InvokeResponse {
    InvokeResponse {
        status: remote_status(head.status),
        headers: headers_from(head.headers),
        grpc_status: head.grpc_status.map(|s| mecha_invoke::GrpcStatus {
            code: s.code,
            message: s.message,
            details: s.details,
        }),
        body,
    }
}

/// The request body's failure, when it was too large.
fn too_large(failed: &SharedFailure) -> Option<String> {
    failed
        .lock()
        .expect("lock")
        .clone()
        .filter(|e| body::is_too_large_text(e))
}

/// The error another runtime answered, as this one answers it: its code
/// when it is one a caller branches on, its status when it is a real one.
/// The error codes another runtime's answer may carry as they are; any
/// other becomes `ERR_INTERNAL`.
const REMOTE_CODES: &[&str] = &[
    "ERR_DIRECT_INVOKE",
    "ERR_ACTOR_INVOKE_METHOD",
    "ERR_ACTOR_STACK_DEPTH",
    "ERR_ACTOR_RUNTIME_CLOSED",
];

pub(crate) fn remote_error(err: RuntimeError) -> ApiError {
    let grpc = match err.grpc_code {
        3 => GrpcCode::InvalidArgument,
        5 => GrpcCode::NotFound,
        7 => GrpcCode::PermissionDenied,
        8 => GrpcCode::ResourceExhausted,
        9 => GrpcCode::FailedPrecondition,
        12 => GrpcCode::Unimplemented,
        14 => GrpcCode::Unavailable,
        _ => GrpcCode::Internal,
    };
    let code: &'static str = REMOTE_CODES
        .iter()
        .find(|code| **code == err.code)
        .copied()
        .unwrap_or("ERR_INTERNAL");
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
    failed: &SharedFailure,
) -> ApiError {
    if let Some(err) = too_large(failed) {
        return body_failed(target, err);
    }
    // The message of a transport failure is terse; its causes say more.
    let mut detail = status.message().to_owned();
    if let Some(source) = std::error::Error::source(status) {
        let causes = mecha_invoke::describe(source);
        if causes.contains(&detail) {
            detail = causes;
        } else if !detail.contains(&causes) {
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

impl PeerClient {
    /// Sends the call `head` (its body apart) to the runtime at `address`.
    async fn send(
        &self,
        address: &str,
        target: &str,
        mut head: RequestHead,
        mut body: Body,
    ) -> Result<InvokeResponse, ApiError> {
        let peer = self.peer(target, address)?;
        if frames::fits_whole(&body) && peer.takes != Takes::StreamsOnly {
            // A small call: one message each way.
            let whole = body::collect(body, frames::WHOLE_MAX)
                .await
                .map_err(|err| body_failed(target, err))?;
            head.body = Some(whole);
            let http1 = peer.takes == Takes::Http1;
            let via = if http1 {
                whole::Via::Http1(&peer.http1)
            } else {
                whole::Via::Http2(&self.raw)
            };
            match whole::send(via, peer.uri, head).await? {
                whole::Sent::Answered {
                    response,
                    http1: takes_http1,
                } => {
                    if takes_http1 && !http1 {
                        self.learned(address, Takes::Http1);
                    }
                    return Ok(response);
                }
                whole::Sent::Failed(err) => {
                    if http1 {
                        // Whatever serves the address now is asked again,
                        // over HTTP/2, on the next call.
                        self.learned(address, Takes::Http2);
                    }
                    return Err(unreachable(target, address, err));
                }
                whole::Sent::NotKnown(older) => {
                    self.learned(address, Takes::StreamsOnly);
                    head = older;
                    body = body::full(head.body.take().unwrap_or_default());
                }
            }
        }
        // The request body streams behind the head; a body that fails (too
        // large) stops the stream before `end`, so the callee never takes it
        // for a whole one, and the failure is remembered for the answer.
        let failed: SharedFailure = SharedFailure::default();
        let head = InvokeFrame {
            frame: Some(Frame::Request(head)),
        };
        let outgoing = outgoing(head, body, failed.clone());
        let mut client = self.client(target, address)?;
        match client.invoke(outgoing).await {
            Ok(response) => answer(target, address, response.into_inner(), &failed).await,
            Err(status) => Err(status_error(target, address, &status, &failed)),
        }
    }
}
