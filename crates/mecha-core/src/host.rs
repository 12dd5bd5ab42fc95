//! The runtime as a host of ordered services. Each part with a lifecycle
//! (the listeners, the components, name resolution, subscriptions, input
//! bindings; later the placement client, the scheduler, the actor table)
//! is a [`Service`]: the host starts them in order and drains them in the
//! reverse order. A block brings its own services; each is given what it
//! needs when it is made (the runtime only as a [`HostStatus`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::block::ComponentStore;

/// What a service sees of the runtime that hosts it.
#[async_trait]
pub trait HostStatus: Send + Sync + 'static {
    /// The live components.
    fn components(&self) -> Arc<ComponentStore>;

    /// Resolves once the runtime is ready: its components are built, its
    /// API listens, and its app (if any) listens too.
    async fn wait_ready(&self);

    /// Whether the runtime is shutting down.
    fn is_shutting_down(&self) -> bool;
}

/// A part of the runtime with a lifecycle.
#[async_trait]
pub trait Service: Send + Sync {
    /// Its name, for the logs.
    fn name(&self) -> &'static str;

    /// Starts it, and resolves once it serves; work that must wait for the
    /// runtime to be ready waits in a task of its own. An error stops the
    /// runtime: the services started before it are drained.
    async fn start(&self) -> anyhow::Result<()>;

    /// Stops taking work and lets work in flight end, within `grace`.
    async fn drain(&self, grace: Duration) {
        let _ = grace;
    }
}
