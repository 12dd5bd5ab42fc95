//! Redis components, with Dapr's metadata keys: `pubsub.redis` (Redis
//! Streams with consumer groups) and `state.redis` (hashes with a version
//! ETag, atomic scripts), `lock.redis`, `configuration.redis` and `bindings.redis`.

mod binding;
mod configuration;
mod lock;
mod pubsub;
mod settings;
mod state;

pub use binding::{RedisBinding, RedisBindingFactory};
pub use configuration::{RedisConfigurationFactory, RedisConfigurationStore};
pub use lock::{RedisLockFactory, RedisLockStore};
pub use pubsub::{RedisPubSub, RedisPubSubConfig, RedisPubSubFactory};
pub use settings::Settings;
pub use state::{RedisStateConfig, RedisStateFactory, RedisStateStore};
