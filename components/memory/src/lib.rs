//! In-process components. They keep nothing across restarts and are not
//! shared between processes; they exist for tests and quick starts.

mod pubsub;
mod state;

pub use pubsub::{MemoryPubSub, MemoryPubSubFactory};
pub use state::{MemoryStateFactory, MemoryStateStore};
