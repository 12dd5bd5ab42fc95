//! Redis components, with Dapr's metadata keys: `pubsub.redis` (Redis
//! Streams with consumer groups) and `state.redis` (hashes with a version
//! ETag, atomic scripts), `lock.redis`, `configuration.redis` and `bindings.redis`.

mod binding;
mod configuration;
mod lock;
mod pubsub;
mod settings;
mod state;

pub use binding::{BINDINGS_REDIS, RedisBinding};
pub use configuration::{CONFIGURATION_REDIS, RedisConfigurationStore};
pub use lock::{LOCK_REDIS, RedisLockStore};
pub use pubsub::{PUBSUB_REDIS, RedisPubSub, RedisPubSubConfig};
pub use settings::Settings;
pub use state::{RedisStateConfig, RedisStateStore, STATE_REDIS};

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_REDIS);
    registry.register::<mecha_configuration::ConfigurationBlock>(CONFIGURATION_REDIS);
    registry.register::<mecha_lock::LockBlock>(LOCK_REDIS);
    registry.register::<mecha_pubsub::PubSubBlock>(PUBSUB_REDIS);
    registry.register::<mecha_state::StateBlock>(STATE_REDIS);
}
