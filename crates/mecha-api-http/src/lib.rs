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

/// The Dapr HTTP API: its call pipeline around its router.
pub type HttpApi = routes::Pipeline<Router>;

/// Builds the Dapr HTTP API.
pub fn router(api: Api) -> HttpApi {
    let body_limit = api.body_limit();
    routes::build(Ctx { api, body_limit })
}

/// Serves `service` (the API, or another HTTP port of the runtime) on
/// `listener` (HTTP/1.1 and h2c) until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    use axum::serve::ListenerExt;
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::debug!(?addr, "http api listening");
    // Small answers go out at once instead of waiting on Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, axum::ServiceExt::into_make_service(service))
        .with_graceful_shutdown(shutdown)
        .await
}
