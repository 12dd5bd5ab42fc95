//! Redis components: `pubsub.redis` (Redis Streams with consumer groups),
//! with Dapr's metadata keys.

mod pubsub;
mod settings;

pub use pubsub::{RedisPubSub, RedisPubSubConfig, RedisPubSubFactory};
pub use settings::Settings;
