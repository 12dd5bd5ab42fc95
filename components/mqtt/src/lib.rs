//! MQTT components: `pubsub.mqtt3` (QoS 1 in a persistent session), with
//! Dapr's metadata keys.

mod pubsub;

pub use pubsub::{Mqtt, MqttConfig, MqttFactory};
