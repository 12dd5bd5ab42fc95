//! RabbitMQ components: `pubsub.rabbitmq` (an exchange per topic, a durable
//! queue per consumer group), with Dapr's metadata keys.

mod pubsub;

pub use pubsub::{RabbitMq, RabbitMqConfig, RabbitMqFactory};
