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

use axum::Router;
use mecha_api::{Api, BodyLimit};

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
