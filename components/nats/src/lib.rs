//! NATS components: `pubsub.jetstream` (durable pull consumers with explicit
//! acknowledgement), with Dapr's metadata keys.

mod pubsub;

pub use pubsub::{JetStream, JetStreamConfig, PUBSUB_JETSTREAM, StartAt};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_pubsub::PubSubBlock>(PUBSUB_JETSTREAM);
}
