//! `pubsub.redis` against the pub/sub conformance suite. Dapr's slow
//! `processingTimeout` is shortened only to 10 s (the reclaiming of a dead
//! consumer's entries, which the kill -9 case waits for): a refused message
//! must come again promptly without it.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_redis::{RedisPubSub, RedisPubSubConfig};
use mecha_core::testing::{service_available, service_url};
use mecha_core::{MetadataReader, Properties};
use mecha_pubsub::PubSub;
use mecha_pubsub::conformance::Harness;

pub fn address() -> String {
    service_url("redis", "127.0.0.1:6379")
}

pub fn config(consumer_id: &str) -> RedisPubSubConfig {
    let props = Properties::new()
        .with("redisHost", &address())
        .with("consumerID", consumer_id)
        .with("processingTimeout", "10s")
        .with("redeliverInterval", "250ms");
    let reader = MetadataReader::new(&props);
    let config = RedisPubSubConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config
}

#[derive(Default)]
struct Redis;

#[async_trait]
impl Harness for Redis {
    async fn component(&self, consumer_id: &str) -> Option<Arc<dyn PubSub>> {
        if !service_available("Redis", &address()) {
            return None;
        }
        Some(Arc::new(
            RedisPubSub::connect(config(consumer_id)).await.unwrap(),
        ))
    }
}

mecha_pubsub::pubsub_conformance!(Redis);

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with("redisHost", "localhost:6379")
        .with("consumerID", "app")
        .with("processingTimeout", "30000")
        .with("redeliverInterval", "10s")
        .with("maxLenApprox", "1000")
        .with("queueDepth", "50")
        .with("concurrency", "5")
        .with("poolSize", "20");
    let reader = MetadataReader::new(&props);
    let config = RedisPubSubConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!(
        config.processing_timeout,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        config.redeliver_interval,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(config.max_len_approx, 1000);
    assert_eq!((config.queue_depth, config.concurrency), (50, 5));
}
