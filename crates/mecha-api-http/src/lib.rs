//! The HTTP adapter: Dapr's HTTP routes (HTTP/1.1 and h2c) on the API layer.
//! Handlers only translate between HTTP and the API layer's types; every
//! rule and error code lives in `mecha-api`.

mod bindings;
mod body;
mod configuration;
mod error;
mod invoke;
mod lock;
mod metadata;
mod pubsub;
mod routes;
mod secrets;
mod state;

use std::net::SocketAddr;

use axum::Router;
use mecha_api::{Api, BodyLimit};
use tokio::net::TcpListener;

pub use error::error_response;

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub api: Api,
    /// `--max-body-size`, for the bodies the handlers read whole.
    pub body_limit: BodyLimit,
}

/// Builds the router of the Dapr HTTP API.
pub fn router(api: Api) -> Router {
    let body_limit = api.body_limit();
    routes::build(Ctx { api, body_limit })
}

/// Serves `router` on `listener` (HTTP/1.1 and h2c) until `shutdown`
/// resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::debug!(?addr, "http api listening");
    // Small answers go out at once instead of waiting on Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
