//! The runtime-to-runtime server (`mecha.internal.v1.Invocation`, on
//! `--dapr-internal-grpc-port`): invocations from other runtimes to this
//! runtime's app.

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use mecha_api::Api;
use mecha_core::ApiError;
use mecha_invoke::body::Body;
use mecha_invoke::{ActorRef, Caller, InvokeRequest, InvokeResponse};
use mecha_proto::internal::v1::invocation_server::Invocation;
use mecha_proto::internal::v1::{
    AppGrpcStatus, Header, InvokeFrame, RequestHead, ResponseHead, RuntimeError,
    invoke_frame::Frame,
};
use tonic::{Request, Response, Status, Streaming};

use crate::frames;

pub struct InternalService {
    api: Api,
}

impl InternalService {
    pub fn new(api: Api) -> Self {
        Self { api }
    }
}

pub(crate) fn headers_from(list: Vec<Header>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(list.len());
    for header in list {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(header.name),
            HeaderValue::from_bytes(&header.value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

pub(crate) fn headers_to(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: value.as_bytes().to_vec().into(),
        })
        .collect()
}

pub(crate) fn runtime_error(err: &ApiError) -> RuntimeError {
    RuntimeError {
        code: err.code.to_owned(),
        message: err.message.clone(),
        http_status: u32::from(err.http_status),
        grpc_code: err.grpc_code as i32,
    }
}

/// The head of a runtime's error.
pub(crate) fn error_head(err: &ApiError) -> ResponseHead {
    ResponseHead {
        error: Some(runtime_error(err)),
        ..ResponseHead::default()
    }
}

/// The head of the app's answer; with `body` when the answer is whole in it.
pub(crate) fn response_head(response: &InvokeResponse, body: Option<Bytes>) -> ResponseHead {
    ResponseHead {
        status: u32::from(response.status.as_u16()),
        headers: headers_to(&response.headers),
        error: None,
        grpc_status: response.grpc_status.clone().map(|s| AppGrpcStatus {
            code: s.code,
            message: s.message,
            details: s.details,
        }),
        body,
        body_error: String::new(),
    }
}

fn head_frame(head: ResponseHead) -> InvokeFrame {
    InvokeFrame {
        frame: Some(Frame::Response(head)),
    }
}

/// The app's answer as frames: its head, then its body in chunks and `end`.
fn streamed(response: InvokeResponse) -> Frames {
    let head = head_frame(response_head(&response, None));
    let body = frames::frames(response.body).map(|frame| {
        frame.map_err(|err| Status::internal(format!("the app's response body failed: {err}")))
    });
    Box::pin(futures::stream::once(async { Ok(head) }).chain(body))
}

type Frames = Pin<Box<dyn Stream<Item = Result<InvokeFrame, Status>> + Send>>;

/// How long an answer waits, after its body, for the caller to close its
/// request stream.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The call `head` (its body apart) made to this runtime's app.
pub(crate) async fn answer(
    api: &Api,
    head: RequestHead,
    body: Body,
) -> Result<InvokeResponse, ApiError> {
    let own = &api.runtime().info.app_id;
    if head.target_app_id != *own {
        // A stale registration pointed the caller here.
        return Err(mecha_api::invoke::channel_error(
            &head.target_app_id,
            mecha_invoke::ChannelError::Unreachable(format!(
                "this runtime serves {own}, not {}",
                head.target_app_id
            )),
        ));
    }
    let verb = Method::from_bytes(head.verb.as_bytes()).unwrap_or(Method::POST);
    let actor = head.actor;
    let req = InvokeRequest {
        method: head.method,
        verb,
        query: head.query,
        headers: headers_from(head.headers),
        body,
        caller: Some(Caller {
            app_id: head.caller_app_id,
            namespace: Some(head.caller_namespace).filter(|ns| !ns.is_empty()),
        }),
        any_type_url: Some(head.any_type_url).filter(|t| !t.is_empty()),
    };
    match actor {
        Some(actor) => {
            let target = ActorRef::new(actor.actor_type, actor.actor_id);
            api.invoke_actor_from_peer(&target, actor.hops, req).await
        }
        None => api.invoke_local(req).await,
    }
}

#[tonic::async_trait]
impl Invocation for InternalService {
    async fn invoke(
        &self,
        request: Request<Streaming<InvokeFrame>>,
    ) -> Result<Response<Frames>, Status> {
        let mut stream = request.into_inner();
        let head: RequestHead = match stream.message().await? {
            Some(InvokeFrame {
                frame: Some(Frame::Request(head)),
            }) => head,
            _ => {
                return Err(Status::invalid_argument(
                    "the first frame must be a request head",
                ));
            }
        };
        let (body, request_closed) = frames::pumped_body(stream);
        // The answer ends only once the caller's request stream is closed,
        // so HTTP/2 never has to reset it.
        let closed = futures::stream::once(async move {
            let _ = tokio::time::timeout(CLOSE_WAIT, request_closed).await;
        })
        .filter_map(|()| futures::future::ready(None));
        let out: Frames = match answer(&self.api, head, body).await {
            Ok(response) => Box::pin(streamed(response).chain(closed)),
            Err(err) => {
                Box::pin(futures::stream::iter([Ok(head_frame(error_head(&err)))]).chain(closed))
            }
        };
        Ok(Response::new(out))
    }
}
