//! RabbitMQ components: `pubsub.rabbitmq` (an exchange per topic, a durable
//! queue per consumer group), with Dapr's metadata keys; and `bindings.rabbitmq` (one queue, input
//! and output).

mod binding;
mod connection;
mod pubsub;

pub use binding::{RabbitBinding, RabbitBindingConfig, RabbitBindingFactory};
pub use pubsub::{RabbitMq, RabbitMqConfig, RabbitMqFactory};
