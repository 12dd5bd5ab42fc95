//! MQTT components: `pubsub.mqtt3` (QoS 1 in a persistent session), and `bindings.mqtt3`
//! (one topic, input and output on the same session), with Dapr's metadata
//! keys.

mod binding;
mod pubsub;

pub use binding::{BINDINGS_MQTT3, MqttBinding, MqttBindingConfig};
pub use pubsub::{Mqtt, MqttConfig, PUBSUB_MQTT3};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_MQTT3);
    registry.register::<mecha_pubsub::PubSubBlock>(PUBSUB_MQTT3);
}
