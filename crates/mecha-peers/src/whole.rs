//! Small calls between runtimes: one plain request and one answer (see the
//! protocol's comment in `invocation.proto`), over HTTP/1.1 to a runtime
//! that says it takes them ([`HTTP1`]), else over HTTP/2.
//!
//! Over HTTP/1.1 the head travels as the request's body: head and body go
//! out in one write, and the answer in one, with no header compression, no
//! flow-control frames, and no task per stream on the callee.
//!
//! Over HTTP/2 (the first call to a runtime, and runtimes that predate
//! HTTP/1.1 small calls) each way is a single frame that ends its stream.
//! gRPC would add trailers after the answer, and a request body piped by a
//! task of its own: each a write, and on a small call each write wakes the
//! other runtime once more. For the same reason a call whose head is small
//! travels in the request's headers there: a request body is sent only
//! after the connection's task has opened the stream, in a write of its
//! own. HPACK Huffman-codes that header, which costs more than everything
//! else in the call, hence HTTP/1.1 once the runtime is known to take it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use mecha_api::Api;
use mecha_core::ApiError;
use mecha_invoke::InvokeResponse;
use mecha_invoke::body::{self, Body, BoxError};
use mecha_proto::internal::v1::{RequestHead, ResponseHead};
use prost::Message;

use crate::frames;
use crate::server::{answer, error_head, response_head};

/// The path of a small call.
pub const PATH: &str = "/mecha.internal.v1.Invocation/Whole";

const CONTENT_TYPE: &str = "application/x-mecha-whole";

/// The request header that holds a small call's head (base64), when it
/// fits in [`IN_HEADER_MAX`] bytes (HTTP/2 only).
const CALL_HEADER: &str = "x-mecha-call";

/// The answer's header by which a runtime says that its internal port
/// takes small calls over HTTP/1.1 too.
pub const HTTP1: &str = "x-mecha-http1";

/// The largest head sent in [`CALL_HEADER`], encoded (a runtime accepts
/// 16 KiB of request headers on its internal port).
const IN_HEADER_MAX: usize = 12 * 1024;

/// The most a small call's request may hold with its head (its headers
/// are bounded by the caller's API; this bounds what a peer may send).
const REQUEST_MAX: usize = frames::WHOLE_MAX + 16 * 1024 * 1024;

/// A response head, its length first.
fn prefixed(head: &ResponseHead) -> Bytes {
    let len = head.encoded_len();
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_u32(u32::try_from(len).expect("a head is far below 4 GiB"));
    head.encode(&mut buf).expect("the buffer has room");
    buf.freeze()
}

/// The callee side: a small call, answered with its head and, unless the
/// head holds it whole, the app's body behind it.
pub async fn serve(api: Api, request: http::Request<Body>) -> http::Response<Body> {
    let head = if let Some(value) = request.headers().get(CALL_HEADER) {
        match BASE64.decode(value.as_bytes()) {
            Ok(bytes) => RequestHead::decode(bytes.as_slice()),
            Err(err) => return refused(format!("the call's header is not base64: {err}")),
        }
    } else {
        match body::collect(request.into_body(), REQUEST_MAX).await {
            Ok(bytes) => RequestHead::decode(bytes),
            Err(err) => return refused(format!("the call could not be read: {err}")),
        }
    };
    let mut head = match head {
        Ok(head) => head,
        Err(err) => return refused(format!("the call is not a request head: {err}")),
    };
    let request_body = body::full(head.body.take().unwrap_or_default());
    let mut response = match answer(&api, head, request_body).await {
        Ok(response) => response,
        Err(err) => return answered(body::full(prefixed(&error_head(&err)))),
    };
    if !frames::fits_whole(&response.body) {
        let head = prefixed(&response_head(&response, None));
        let rest = std::mem::replace(&mut response.body, body::empty());
        return answered(body::boxed(Prefixed {
            head: Some(head),
            rest,
        }));
    }
    let app_body = std::mem::replace(&mut response.body, body::empty());
    match body::collect(app_body, frames::WHOLE_MAX).await {
        Ok(whole) => answered(body::full(prefixed(&response_head(&response, Some(whole))))),
        // Said in the head: a reset stream would take the head with it,
        // and the caller would take the runtime for unreachable.
        Err(err) => {
            let mut head = response_head(&response, None);
            head.body_error = format!("the app's response body failed: {err}");
            answered(body::full(prefixed(&head)))
        }
    }
}

fn answered(body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(HTTP1, http::HeaderValue::from_static("1"));
    response
}

fn refused(message: String) -> http::Response<Body> {
    let mut response = http::Response::new(body::full(message));
    *response.status_mut() = http::StatusCode::BAD_REQUEST;
    response
}

/// A head, then a body.
struct Prefixed {
    head: Option<Bytes>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(head) = self.head.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(head))));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }
}

/// What became of a small call.
pub enum Sent {
    /// `http1`: the runtime takes small calls over HTTP/1.1.
    Answered {
        response: InvokeResponse,
        http1: bool,
    },
    /// The runtime at the address predates small calls: send it as a
    /// stream instead.
    NotKnown(RequestHead),
    Failed(String),
}

/// How a small call travels.
pub enum Via<'a> {
    /// On the peer's HTTP/2 connection.
    Http2(&'a HyperClient<HttpConnector, Body>),
    /// On the peer's pool of HTTP/1.1 connections.
    Http1(&'a std::sync::Arc<mecha_http1::Pool>),
}

/// The caller side: sends `head` (holding the whole request body) to the
/// runtime at `uri` (its [`PATH`]) `via` HTTP/1.1 or HTTP/2.
pub async fn send(via: Via<'_>, uri: http::Uri, head: RequestHead) -> Result<Sent, ApiError> {
    let http1 = matches!(via, Via::Http1(_));
    let encoded = head.encode_to_vec();
    let mut request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(body::empty())
        .map_err(|err| ApiError::internal(err.to_string()))?;
    if http1 {
        *request.body_mut() = body::full(encoded);
    } else if base64::encoded_len(encoded.len(), true).is_some_and(|len| len <= IN_HEADER_MAX) {
        let mut value = http::HeaderValue::try_from(BASE64.encode(&encoded))
            .map_err(|err| ApiError::internal(err.to_string()))?;
        // Never into the connection's header table: each call's differs.
        value.set_sensitive(true);
        request.headers_mut().insert(CALL_HEADER, value);
    } else {
        *request.body_mut() = body::full(encoded);
    }
    let sent = match via {
        Via::Http2(client) => client
            .request(request)
            .await
            .map(|response| response.map(body::boxed))
            .map_err(|err| mecha_invoke::describe(&err)),
        Via::Http1(pool) => pool
            .send(request)
            .await
            .map_err(|err| mecha_invoke::describe(err.as_ref())),
    };
    let response = match sent {
        Ok(response) => response,
        Err(err) => return Ok(Sent::Failed(err)),
    };
    // An older runtime's gRPC server answers a path it does not serve
    // with a gRPC status.
    if response.headers().contains_key("grpc-status") {
        return Ok(Sent::NotKnown(head));
    }
    if response.status() != http::StatusCode::OK {
        let status = response.status();
        // A refusal's text is short; read no more than that of it.
        let text = body::collect(response.into_body(), 4096)
            .await
            .map(|text| String::from_utf8_lossy(&text).into_owned())
            .unwrap_or_default();
        return Ok(Sent::Failed(format!("status {status}: {text}")));
    }
    let takes_http1 = response.headers().contains_key(HTTP1);
    let mut incoming = response.into_body();
    // The head, and what came with it of the body behind it.
    let mut buf = BytesMut::new();
    let head_len = loop {
        if buf.len() >= 4 {
            let len = (&buf[..4]).get_u32() as usize;
            if len > REQUEST_MAX {
                return Ok(Sent::Failed(format!(
                    "the answer's head is {len} bytes long"
                )));
            }
            if buf.len() >= 4 + len {
                break len;
            }
        }
        match incoming.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(err)) => return Ok(Sent::Failed(mecha_invoke::describe(err.as_ref()))),
            None => return Ok(Sent::Failed("the answer ended before its head".into())),
        }
    };
    buf.advance(4);
    let mut head = match ResponseHead::decode(buf.split_to(head_len).freeze()) {
        Ok(head) => head,
        Err(err) => {
            return Ok(Sent::Failed(format!(
                "the answer's head is unreadable: {err}"
            )));
        }
    };
    if let Some(err) = head.error {
        return Err(crate::client::remote_error(err));
    }
    let failed = std::mem::take(&mut head.body_error);
    let body = match head.body.take() {
        _ if !failed.is_empty() => {
            let failed =
                futures::stream::once(async move { Err::<Frame<Bytes>, BoxError>(failed.into()) });
            body::boxed(http_body_util::StreamBody::new(failed))
        }
        Some(_) if !buf.is_empty() => {
            return Ok(Sent::Failed(
                "the runtime sent more after a whole answer".into(),
            ));
        }
        Some(whole) => {
            // Nothing follows a whole answer but the end of the stream,
            // which came with it: read it, so the stream is closed, not
            // reset.
            match incoming.frame().await {
                None => {}
                Some(Ok(_)) => {
                    return Ok(Sent::Failed(
                        "the runtime sent more after a whole answer".into(),
                    ));
                }
                Some(Err(err)) => return Ok(Sent::Failed(mecha_invoke::describe(err.as_ref()))),
            }
            body::full(whole)
        }
        None => frames::pumped_raw(buf.freeze(), incoming),
    };
    Ok(Sent::Answered {
        response: crate::client::response_of(head, body),
        http1: takes_http1,
    })
}
