//! `pubsub.mqtt3` against the pub/sub conformance suite. Each harness adds
//! its own suffix to the consumer groups, so that no persistent session of
//! an earlier run is taken over.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_component_mqtt::{Mqtt, MqttConfig};
use mecha_core::testing::{service_available, service_url};
use mecha_core::{MetadataReader, Properties};
use mecha_pubsub::PubSub;
use mecha_pubsub::conformance::Harness;
use mecha_pubsub::redelivery::Backoff;

/// Where a subscriber process finds the suffix of its case.
const SUFFIX_VARIABLE: &str = "MECHA_TEST_MQTT_SUFFIX";

pub fn address() -> String {
    service_url("mqtt", "127.0.0.1:1883")
}

fn config(consumer_id: &str) -> MqttConfig {
    let props = Properties::new()
        .with("url", &format!("tcp://{}", address()))
        .with("consumerID", consumer_id)
        .with("qos", "1");
    let reader = MetadataReader::new(&props);
    let mut config = MqttConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config.redelivery = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    config
}

struct Mosquitto {
    suffix: String,
}

impl Default for Mosquitto {
    fn default() -> Self {
        let suffix = std::env::var(SUFFIX_VARIABLE)
            .unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string()[..10].to_owned());
        Self { suffix }
    }
}

#[async_trait]
impl Harness for Mosquitto {
    async fn component(&self, consumer_id: &str) -> Option<Arc<dyn PubSub>> {
        if !service_available("MQTT", &address()) {
            return None;
        }
        let consumer_id = format!("{consumer_id}-{}", self.suffix);
        Some(Arc::new(Mqtt::connect(config(&consumer_id)).await.unwrap()))
    }

    fn topic(&self, name: &str) -> String {
        format!(
            "mecha-conformance/{name}/{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    }

    fn child_env(&self) -> Vec<(String, String)> {
        vec![(SUFFIX_VARIABLE.into(), self.suffix.clone())]
    }
}

mecha_pubsub::pubsub_conformance!(Mosquitto);

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with("url", "mqtt://user:secret@broker.local:1884")
        .with("consumerID", "app")
        .with("qos", "1")
        .with("retain", "true")
        .with("cleanSession", "false")
        .with("backOffMaxRetries", "3");
    let reader = MetadataReader::new(&props);
    let config = MqttConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!((config.host.as_str(), config.port), ("broker.local", 1884));
    assert_eq!(
        config.credentials,
        Some(("user".to_owned(), "secret".to_owned()))
    );
    assert!(config.retain && !config.clean_session);

    let props = Properties::new()
        .with("url", "ssl://broker.local:8883")
        .with("consumerID", "app")
        .with("qos", "3");
    let reader = MetadataReader::new(&props);
    MqttConfig::from_metadata(&reader);
    assert_eq!(reader.errors().len(), 2, "{:?}", reader.errors());
}
