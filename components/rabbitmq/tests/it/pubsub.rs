//! `pubsub.rabbitmq` against the pub/sub conformance suite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_component_rabbitmq::{RabbitMq, RabbitMqConfig};
use mecha_core::testing::{service_available, service_url};
use mecha_core::{MetadataReader, Properties};
use mecha_pubsub::PubSub;
use mecha_pubsub::conformance::Harness;
use mecha_pubsub::redelivery::Backoff;

pub fn url() -> String {
    service_url("rabbitmq", "amqp://guest:guest@127.0.0.1:5672")
}

pub fn address() -> String {
    let url = url();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let host = rest.rsplit('@').next().unwrap_or(rest);
    host.split('/').next().unwrap_or(host).to_owned()
}

fn config(consumer_id: &str) -> RabbitMqConfig {
    let props = Properties::new()
        .with("connectionString", &url())
        .with("consumerID", consumer_id)
        .with("reconnectWait", "200ms");
    let reader = MetadataReader::new(&props);
    let mut config = RabbitMqConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config.redelivery = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    config
}

#[derive(Default)]
struct Rabbit;

#[async_trait]
impl Harness for Rabbit {
    async fn component(&self, consumer_id: &str) -> Option<Arc<dyn PubSub>> {
        if !service_available("RabbitMQ", &address()) {
            return None;
        }
        Some(Arc::new(
            RabbitMq::connect(config(consumer_id)).await.unwrap(),
        ))
    }
}

mecha_pubsub::pubsub_conformance!(Rabbit);

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with("hostname", "localhost:5672")
        .with("username", "guest")
        .with("password", "guest")
        .with("consumerID", "app")
        .with("durable", "false")
        .with("deletedWhenUnused", "true")
        .with("deliveryMode", "0")
        .with("requeueInFailure", "true")
        .with("prefetchCount", "10")
        .with("concurrencyMode", "parallel")
        .with("publisherConfirm", "false")
        .with("enableDeadLetter", "true")
        .with("maxLen", "3000")
        .with("maxLenBytes", "10485760")
        .with("exchangeKind", "topic")
        .with("ttlInSeconds", "60")
        .with("clientName", "mecha")
        .with("heartBeat", "10s")
        .with("reconnectWait", "5");
    let reader = MetadataReader::new(&props);
    let config = RabbitMqConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!(config.url, "amqp://guest:guest@localhost:5672?heartbeat=10");
    assert!(!config.durable && config.deleted_when_unused && config.requeue_in_failure);
    assert_eq!((config.delivery_mode, config.in_flight), (0, 10));
    assert_eq!(
        (config.max_len, config.max_len_bytes),
        (Some(3000), Some(10485760))
    );
    assert_eq!(config.queue_ttl, Some(Duration::from_secs(60)));
    assert_eq!(config.reconnect_wait, Duration::from_secs(5));
    assert_eq!(config.queue_for("orders"), "app-orders");

    // Mecha's defaults keep what the broker took.
    let props = Properties::new()
        .with("connectionString", "amqp://localhost")
        .with("consumerID", "app");
    let reader = MetadataReader::new(&props);
    let config = RabbitMqConfig::from_metadata(&reader);
    assert!(config.durable && !config.deleted_when_unused && config.publisher_confirm);
    assert_eq!(config.delivery_mode, 2);

    let props = Properties::new()
        .with("connectionString", "amqp://localhost")
        .with("hostname", "other")
        .with("consumerID", "app")
        .with("autoAck", "true")
        .with("exchangeKind", "broadcast");
    let reader = MetadataReader::new(&props);
    RabbitMqConfig::from_metadata(&reader);
    assert_eq!(reader.errors().len(), 3, "{:?}", reader.errors());
}
