//! RabbitMQ components: `pubsub.rabbitmq` (an exchange per topic, a durable
//! queue per consumer group), with Dapr's metadata keys; and `bindings.rabbitmq` (one queue, input
//! and output).

mod binding;
mod connection;
mod pubsub;

pub use binding::{BINDINGS_RABBITMQ, RabbitBinding, RabbitBindingConfig};
pub use pubsub::{PUBSUB_RABBITMQ, RabbitMq, RabbitMqConfig};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_RABBITMQ);
    registry.register::<mecha_pubsub::PubSubBlock>(PUBSUB_RABBITMQ);
}
