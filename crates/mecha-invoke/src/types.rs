//! Requests, responses and the two seams of invocation.

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};
use mecha_core::ApiError;

use crate::body::Body;

/// Who is calling: set by the caller's runtime, never taken from the app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub app_id: String,
    pub namespace: Option<String>,
}

/// An invocation as it travels: an HTTP-shaped request.
#[derive(Debug)]
pub struct InvokeRequest {
    /// The method path, without the leading slash (may contain `/`).
    pub method: String,
    pub verb: Method,
    /// The raw query string, without `?`.
    pub query: String,
    /// The app's headers, hop-by-hop headers removed.
    pub headers: HeaderMap,
    pub body: Body,
    /// The calling app, when the call crossed runtimes or came from an app.
    pub caller: Option<Caller>,
    /// The type URL of the `Any` a gRPC caller sent (`InvokeService`).
    pub any_type_url: Option<String>,
}

impl InvokeRequest {
    pub fn new(verb: Method, method: impl Into<String>, body: Body) -> Self {
        Self {
            method: method.into(),
            verb,
            query: String::new(),
            headers: HeaderMap::new(),
            body,
            caller: None,
            any_type_url: None,
        }
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

/// The app's answer: status, headers and a streaming body.
#[derive(Debug)]
pub struct InvokeResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
    /// The error status a gRPC app answered with, whole: a gRPC caller
    /// gets it as it is (code, message, details), as daprd passes it on.
    /// `status` is then the HTTP status of its code, for HTTP callers.
    pub grpc_status: Option<GrpcStatus>,
}

/// A gRPC status as an app answered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcStatus {
    pub code: i32,
    pub message: String,
    /// The encoded `google.rpc.Status` of `grpc-status-details-bin` (its
    /// `details` are the app's), empty when the app sent none.
    pub details: bytes::Bytes,
}

/// Why the local app could not be called.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// No `--app-port`: this runtime has no app.
    #[error("app channel is not initialized: this runtime has no --app-port")]
    NoApp,
    /// Health checks found the app unhealthy.
    #[error("app is not in a healthy state")]
    Unhealthy,
    /// `--app-max-concurrency` reached and the waiting line full.
    #[error(
        "the app's --app-max-concurrency of {limit} is reached and {waiting} calls are already waiting"
    )]
    Overloaded { limit: usize, waiting: usize },
    /// The request body passed `--max-body-size`.
    #[error(transparent)]
    TooLarge(#[from] crate::body::TooLarge),
    /// Transparent gRPC proxying needs an app speaking gRPC.
    #[error("the app does not speak gRPC (--app-protocol {0})")]
    NotGrpc(String),
    /// The app could not be reached, or broke off.
    #[error("error invoking app channel: {0}")]
    Unreachable(String),
}

/// The local app, as the runtime reaches it (`--app-protocol`).
#[async_trait]
pub trait AppChannel: Send + Sync {
    /// Calls the app: an HTTP request for HTTP apps, `OnInvoke` for gRPC
    /// apps.
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, ChannelError>;

    /// Forwards a raw gRPC call (HTTP/2 request) to the app's gRPC server,
    /// for transparent proxying.
    async fn forward_grpc(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Body>, ChannelError>;
}

/// Other runtimes, reached on their internal port.
#[async_trait]
pub trait Peers: Send + Sync {
    /// Sends an invocation to the runtime at `address` (`host:port`), which
    /// serves `target`.
    async fn invoke(
        &self,
        address: &str,
        target: &str,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError>;

    /// Forwards a raw gRPC call to the runtime at `address`, which passes it
    /// to its app.
    async fn forward_grpc(
        &self,
        address: &str,
        req: http::Request<Body>,
    ) -> Result<http::Response<Body>, ApiError>;

    /// Sends a call for `actor` to the runtime at `address` (app `target`),
    /// which placement says hosts it; `hops` counts the runtimes it has
    /// already passed.
    async fn call_actor(
        &self,
        address: &str,
        target: &str,
        actor: &ActorRef,
        hops: u32,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError>;
}

/// The actor a call is for: its type and id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorRef {
    pub actor_type: String,
    pub actor_id: String,
}

impl ActorRef {
    pub fn new(actor_type: impl Into<String>, actor_id: impl Into<String>) -> Self {
        Self {
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
        }
    }
}

impl std::fmt::Display for ActorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.actor_type, self.actor_id)
    }
}
