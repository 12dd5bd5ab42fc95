//! The HTTP adapter: Dapr's HTTP routes (HTTP/1.1 and h2c) on the API layer.
//! Handlers only translate between HTTP and the API layer's types; every
//! rule and error code lives in `mecha-api`.

mod actors;
mod bindings;
mod body;
mod configuration;
mod error;
mod invoke;
mod jobs;
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

/// The request-body parsers of the routes, for the fuzz targets (`fuzz/`
/// at the repository root): each runs the route's own parse of a body.
#[doc(hidden)]
pub mod fuzzing {
    /// A state save body (`POST /v1.0/state/{store}`).
    pub fn state_save(bytes: &[u8]) -> bool {
        crate::state::parse_save("store", bytes).is_ok()
    }

    /// A bulk get body (`POST /v1.0/state/{store}/bulk`).
    pub fn state_bulk_get(bytes: &[u8]) -> bool {
        crate::state::parse_bulk_get("store", bytes).is_ok()
    }

    /// A transaction body (`POST /v1.0/state/{store}/transaction`).
    pub fn state_transaction(bytes: &[u8]) -> bool {
        crate::state::parse_transaction("store", bytes).is_ok()
    }

    /// A job body (`POST /v1.0/jobs/{name}`).
    pub fn job(bytes: &[u8]) -> bool {
        crate::jobs::parse("job", bytes).is_ok()
    }

    /// A bulk publish body (`POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}`).
    pub fn bulk_publish(bytes: &[u8]) -> bool {
        crate::pubsub::parse_bulk("pubsub", "topic", bytes).is_ok()
    }
}
