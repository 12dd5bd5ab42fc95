//! `configuration.redis` against the configuration conformance suite,
//! writing items as an operator would (`SET key value||version`).

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_redis::{RedisConfigurationStore, Settings};
use mecha_configuration::conformance::{Harness, Writer};
use mecha_configuration::{ConfigurationStore, Metadata};
use mecha_core::testing::service_available;
use mecha_core::{MetadataReader, Properties};

use crate::pubsub::address;

struct RedisWriter(redis::aio::MultiplexedConnection);

#[async_trait]
impl Writer for RedisWriter {
    async fn set(&self, key: &str, value: &str, version: &str) {
        let text = if version.is_empty() {
            value.to_owned()
        } else {
            format!("{value}||{version}")
        };
        let () = redis::cmd("SET")
            .arg(key)
            .arg(text)
            .query_async(&mut self.0.clone())
            .await
            .unwrap();
    }

    async fn delete(&self, key: &str) {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.0.clone())
            .await
            .unwrap();
    }
}

#[derive(Default)]
struct RedisConfiguration;

#[async_trait]
impl Harness for RedisConfiguration {
    async fn component(&self) -> Option<(Arc<dyn ConfigurationStore>, Arc<dyn Writer>, Metadata)> {
        if !service_available("Redis", &address()) {
            return None;
        }
        let props = Properties::new().with("redisHost", &address());
        let settings = Settings::from_metadata(&MetadataReader::new(&props));
        let store = RedisConfigurationStore::connect(settings).await.unwrap();
        let writer = redis::Client::open(format!("redis://{}", address()))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Some((
            Arc::new(store),
            Arc::new(RedisWriter(writer)),
            Metadata::new(),
        ))
    }
}

mecha_configuration::configuration_conformance!(RedisConfiguration);
