//! SQLite components: `state.sqlite`, `pubsub.sqlite`, `lock.sqlite`,
//! `scheduler.sqlite` and `nameresolution.sqlite`. SQLite is the embedded default backend
//! (DESIGN.md §3): durable, shared by the runtimes of one host through the
//! data directory, and needing no external service.

mod connection;
mod lock;
mod nameresolution;
mod pubsub;
mod scheduler;
mod state;

pub use lock::{LOCK_SQLITE, LockConfig, SqliteLockStore};
pub use nameresolution::{NAMERESOLUTION_SQLITE, NameResolutionConfig, SqliteNameResolver};
pub use pubsub::{PUBSUB_SQLITE, PubSubConfig, SqlitePubSub};
pub use scheduler::{SCHEDULER_SQLITE, SchedulerConfig, SqliteJobStore};
pub use state::{STATE_SQLITE, SqliteStateStore, StateConfig};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_lock::LockBlock>(LOCK_SQLITE);
    registry.register::<mecha_nameresolution::NameResolutionBlock>(NAMERESOLUTION_SQLITE);
    registry.register::<mecha_pubsub::PubSubBlock>(PUBSUB_SQLITE);
    registry.register::<mecha_scheduler::SchedulerBlock>(SCHEDULER_SQLITE);
    registry.register::<mecha_state::StateBlock>(STATE_SQLITE);
}
