//! In-process components. They keep nothing across restarts and are not
//! shared between processes; they exist for tests and quick starts.

mod pubsub;
mod scheduler;
mod state;

pub use pubsub::{MemoryPubSub, PUBSUB_IN_MEMORY};
pub use scheduler::{MemoryJobStore, SCHEDULER_IN_MEMORY};
pub use state::{MemoryStateStore, STATE_IN_MEMORY};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_pubsub::PubSubBlock>(PUBSUB_IN_MEMORY);
    registry.register::<mecha_scheduler::SchedulerBlock>(SCHEDULER_IN_MEMORY);
    registry.register::<mecha_state::StateBlock>(STATE_IN_MEMORY);
}
