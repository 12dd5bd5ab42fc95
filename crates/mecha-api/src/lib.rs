//! The API layer: every operation of every building block, implemented once.
//!
//! The HTTP and gRPC adapters translate wire types into the types here and
//! render [`ApiError`] back; they hold no rules. A behaviour difference
//! between the two transports is a bug in an adapter.

pub mod bindings;
pub mod configuration;
mod health;
pub mod invoke;
pub mod lock;
mod metadata;
pub mod pubsub;
pub mod secrets;
pub mod state;

use std::sync::Arc;

pub use mecha_core::ApiError;
use mecha_runtime::Runtime;

pub use metadata::{AppConnectionInfo, MetadataSnapshot};

/// The operations, over one runtime.
#[derive(Clone)]
pub struct Api {
    runtime: Arc<Runtime>,
}

impl Api {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Whether a call presenting `token` (the `dapr-api-token` header or
    /// metadata) may use the API. Always true when no token is configured.
    pub fn authorized(&self, token: Option<&[u8]>) -> bool {
        self.token_refusal(token).is_none()
    }

    /// Why `token` may not use the API, in daprd's words (the detail of its
    /// gRPC `Unauthenticated` error); `None` when it may.
    pub fn token_refusal(&self, token: Option<&[u8]>) -> Option<&'static str> {
        let expected = self.runtime.info.api_token.as_ref()?;
        match token {
            None => Some("missing api token in request metadata"),
            Some(given) if constant_time_eq(given, expected.as_bytes()) => None,
            Some(_) => Some("authentication error: api token mismatch"),
        }
    }

    /// `POST /v1.0/shutdown`, gRPC `Shutdown`: stop taking work and drain.
    pub fn shutdown(&self) {
        tracing::info!("shutdown requested through the API");
        self.runtime.request_shutdown();
    }
}

/// Whether an HTTP call is open without `dapr-api-token`: a GET of a
/// health check (`/v1.0/healthz`, `/v1.0/healthz/outbound`), which
/// orchestrators and SDKs probe before they know the token; nothing else,
/// as in daprd. The paths are matched exactly as the router serves them:
/// any other spelling (`/v1.0/healthz/`) would fall through to service
/// invocation, which must never be open. On gRPC the health service
/// (`grpc.health.v1`) is open likewise.
pub fn token_exempt(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET && matches!(path, "/v1.0/healthz" | "/v1.0/healthz/outbound")
}

/// The plain-text body daprd answers an HTTP call without the right token
/// (Go's `http.Error` ends it with a line break).
pub const INVALID_TOKEN_MESSAGE: &str = "invalid api token\n";

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
