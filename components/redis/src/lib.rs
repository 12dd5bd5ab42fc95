//! Redis components, with Dapr's metadata keys: `pubsub.redis` (Redis
//! Streams with consumer groups) and `state.redis` (hashes with a version
//! ETag, atomic scripts).

mod pubsub;
mod settings;
mod state;

pub use pubsub::{RedisPubSub, RedisPubSubConfig, RedisPubSubFactory};
pub use settings::Settings;
pub use state::{RedisStateConfig, RedisStateFactory, RedisStateStore};
