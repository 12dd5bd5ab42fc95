//! The API layer: every operation of every building block, implemented once.
//!
//! The HTTP and gRPC adapters translate wire types into the types here and
//! render [`ApiError`] back; they hold no rules. A behaviour difference
//! between the two transports is a bug in an adapter.

pub mod bindings;
pub mod call;
pub mod configuration;
mod health;
pub mod invoke;
pub mod lock;
mod metadata;
pub mod pubsub;
pub mod secrets;
pub mod state;
mod topic_stream;

use std::sync::Arc;

pub use mecha_core::ApiError;
use mecha_runtime::Runtime;

pub use call::{Admission, BodyLimit, Call, Overflow, Refused, Transport, token_exempt};
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

    /// `POST /v1.0/shutdown`, gRPC `Shutdown`: stop taking work and drain.
    pub fn shutdown(&self) {
        tracing::info!("shutdown requested through the API");
        self.runtime.request_shutdown();
    }
}

#[cfg(test)]
mod tests;
