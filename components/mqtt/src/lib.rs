//! MQTT components: `pubsub.mqtt3` (QoS 1 in a persistent session), and `bindings.mqtt3`
//! (one topic, input and output on the same session), with Dapr's metadata
//! keys.

mod binding;
mod pubsub;

pub use binding::{MqttBinding, MqttBindingConfig, MqttBindingFactory};
pub use pubsub::{Mqtt, MqttConfig, MqttFactory};
