//! NATS components: `pubsub.jetstream` (durable pull consumers with explicit
//! acknowledgement), with Dapr's metadata keys.

mod pubsub;

pub use pubsub::{JetStream, JetStreamConfig, JetStreamFactory, StartAt};
