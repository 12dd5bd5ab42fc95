//! The API layer: every operation of every building block, implemented once.
//!
//! The HTTP and gRPC adapters translate wire types into the types here and
//! render [`ApiError`] back; they hold no rules. A behaviour difference
//! between the two transports is a bug in an adapter.

pub mod actors;
pub mod bindings;
pub mod budget;
pub mod call;
pub mod configuration;
mod health;
pub mod invoke;
pub mod jobs;
pub mod lock;
mod metadata;
pub mod pubsub;
pub mod secrets;
pub mod state;
mod topic_stream;

use std::sync::Arc;

pub use budget::{MemoryBudget, OverBudget};
pub use mecha_core::ApiError;
use mecha_invoke::{AppChannel, Peers};
use mecha_nameresolution::Resolver;
use mecha_pubsub::Subscriptions;
use mecha_runtime::Runtime;

pub use call::{
    Admission, BodyLimit, Call, Instrumented, Overflow, Refused, Seam, Transport, token_exempt,
};
pub use metadata::{AppConnectionInfo, MetadataSnapshot};

/// What the operations reach beyond the runtime's components, given when
/// the API is made.
#[derive(Clone, Default)]
pub struct Handles {
    /// The runtime's app; `None` without one (`--app-port`).
    pub app_channel: Option<Arc<dyn AppChannel>>,
    /// Name resolution, with its cache; `None` when this build has none.
    pub resolver: Option<Arc<Resolver>>,
    /// The client of other runtimes.
    pub peers: Option<Arc<dyn Peers>>,
    /// The running subscriptions (the app's and streaming ones).
    pub subscriptions: Arc<Subscriptions>,
    /// The actor runtime; `None` in a build without one (tests).
    pub actors: Option<mecha_actors::Actors>,
}

/// The operations, over one runtime.
#[derive(Clone)]
pub struct Api {
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
}

/// What every clone of an [`Api`] shares.
struct Shared {
    handles: Handles,
    budget: MemoryBudget,
}

impl Api {
    pub fn new(runtime: Arc<Runtime>, handles: Handles) -> Self {
        let info = &runtime.info;
        let budget = MemoryBudget::new(
            info.request_memory_budget,
            info.max_body_size,
            info.request_memory_wait,
        );
        Self {
            runtime,
            shared: Arc::new(Shared { handles, budget }),
        }
    }

    /// `--request-memory-budget`: what the transports charge bodies to.
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.shared.budget
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn app_channel(&self) -> Option<&Arc<dyn AppChannel>> {
        self.shared.handles.app_channel.as_ref()
    }

    fn resolver(&self) -> Option<&Arc<Resolver>> {
        self.shared.handles.resolver.as_ref()
    }

    fn peers(&self) -> Option<&Arc<dyn Peers>> {
        self.shared.handles.peers.as_ref()
    }

    fn subscriptions(&self) -> &Subscriptions {
        &self.shared.handles.subscriptions
    }

    /// `POST /v1.0/shutdown`, gRPC `Shutdown`: stop taking work and drain.
    pub fn shutdown(&self) {
        tracing::info!("shutdown requested through the API");
        self.runtime.request_shutdown();
    }
}

#[cfg(test)]
mod tests;
