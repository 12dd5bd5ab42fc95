//! `lock.redis` against the lock conformance suite.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_redis::{RedisLockStore, Settings};
use mecha_core::testing::service_available;
use mecha_core::{MetadataReader, Properties};
use mecha_lock::LockStore;
use mecha_lock::conformance::Harness;

use crate::pubsub::address;

async fn store() -> Option<Arc<dyn LockStore>> {
    if !service_available("Redis", &address()) {
        return None;
    }
    let props = Properties::new().with("redisHost", &address());
    let reader = MetadataReader::new(&props);
    let settings = Settings::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    Some(Arc::new(RedisLockStore::connect(settings).await.unwrap()))
}

#[derive(Default)]
struct RedisLocks;

#[async_trait]
impl Harness for RedisLocks {
    async fn component(&self) -> Option<Arc<dyn LockStore>> {
        store().await
    }

    async fn pair(&self) -> Option<(Arc<dyn LockStore>, Arc<dyn LockStore>)> {
        Some((store().await?, store().await?))
    }
}

mecha_lock::lock_conformance!(RedisLocks);
