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

/// Other programs' keys share the database: a value or a key that is not
/// UTF-8 does not fail reading every item.
#[tokio::test]
async fn binary_keys_and_values_do_not_fail_reading_every_item() {
    let Some((store, writer, _)) = RedisConfiguration.component().await else {
        return;
    };
    let mut conn = redis::Client::open(format!("redis://{}", address()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let binary_value = mecha_core::testing::unique("cfg-binary-value");
    let mut binary_key = mecha_core::testing::unique("cfg-binary-key").into_bytes();
    binary_key.push(0xff);
    for key in [binary_value.as_bytes(), &binary_key] {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(&[0u8, 0x9f, 0x92][..])
            .arg("EX")
            .arg(60)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let text = mecha_core::testing::unique("cfg-text");
    writer.set(&text, "plain", "1").await;
    let all = store.get(&[], &Metadata::new()).await.unwrap();
    assert_eq!(all[&text].value, "plain");
    assert!(all.contains_key(&binary_value), "read lossily");
    writer.delete(&text).await;
}
