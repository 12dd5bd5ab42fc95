//! `pubsub.sqlite` against the pub/sub conformance suite, plus what is
//! particular to it: messages kept across a reopen, and its metadata keys.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mecha_component_sqlite::{PUBSUB_SQLITE, PubSubConfig, SqlitePubSub};
use mecha_core::{ComponentContext, Factory, MetadataReader, Properties};
use mecha_pubsub::conformance::Harness;
use mecha_pubsub::redelivery::Backoff;
use mecha_pubsub::*;

/// Where a subscriber process finds the database of its case.
const DIR_VARIABLE: &str = "MECHA_TEST_SQLITE_PUBSUB_DIR";

/// Each case gets its own database file, which every component of the case
/// (and the subscriber process of `kill_nine_no_loss`) shares.
struct Sqlite {
    dir: PathBuf,
}

impl Default for Sqlite {
    fn default() -> Self {
        let dir = std::env::var(DIR_VARIABLE)
            .map(PathBuf::from)
            .unwrap_or_else(|_| tempfile::tempdir().unwrap().keep());
        Self { dir }
    }
}

fn config(dir: &std::path::Path, consumer_id: &str) -> PubSubConfig {
    let mut config = PubSubConfig::new(dir.join("pubsub.db").to_string_lossy(), consumer_id);
    // Short enough that no case waits long for a redelivery.
    config.processing_timeout = Duration::from_secs(2);
    config.poll_interval = Duration::from_millis(50);
    config.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    config
}

#[async_trait]
impl Harness for Sqlite {
    async fn component(&self, consumer_id: &str) -> Option<Arc<dyn PubSub>> {
        Some(
            SqlitePubSub::open(config(&self.dir, consumer_id))
                .await
                .unwrap(),
        )
    }

    fn child_env(&self) -> Vec<(String, String)> {
        vec![(DIR_VARIABLE.into(), self.dir.to_string_lossy().into_owned())]
    }
}

mecha_pubsub::pubsub_conformance!(Sqlite);

#[tokio::test]
async fn messages_wait_for_their_group_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = SqlitePubSub::open(config(dir.path(), "publisher"))
        .await
        .unwrap();
    // The group exists once it subscribed; what comes after waits for it.
    let group = SqlitePubSub::open(config(dir.path(), "group"))
        .await
        .unwrap();
    struct Refuse;
    #[async_trait]
    impl Handler for Refuse {
        async fn handle(&self, _: Message) -> Result<(), Redeliver> {
            Err(Redeliver("not now".into()))
        }
    }
    let subscription = group
        .subscribe(
            SubscribeRequest {
                topic: "t".into(),
                ..SubscribeRequest::default()
            },
            Arc::new(Refuse),
        )
        .await
        .unwrap();
    subscription.close(Duration::from_secs(1)).await;
    drop(group);
    for n in 0..3 {
        publisher
            .publish(PublishRequest {
                topic: "t".into(),
                data: Bytes::from(format!("m{n}")),
                ..PublishRequest::default()
            })
            .await
            .unwrap();
    }
    drop(publisher);
    // Reopened, as after a restart: the messages are there for the group.
    let group = SqlitePubSub::open(config(dir.path(), "group"))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    struct Forward(tokio::sync::mpsc::UnboundedSender<Bytes>);
    #[async_trait]
    impl Handler for Forward {
        async fn handle(&self, message: Message) -> Result<(), Redeliver> {
            let _ = self.0.send(message.data);
            Ok(())
        }
    }
    let subscription = group
        .subscribe(
            SubscribeRequest {
                topic: "t".into(),
                max_in_flight: Some(1),
                ..SubscribeRequest::default()
            },
            Arc::new(Forward(tx)),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let data = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a message")
            .unwrap();
        got.push(data);
    }
    assert_eq!(got, ["m0", "m1", "m2"]);
    subscription.close(Duration::from_secs(1)).await;
}

#[test]
fn metadata_keys() {
    let props = Properties::new()
        .with("connectionString", "/tmp/x.db")
        .with("consumerID", "app1")
        .with("processingTimeout", "5s")
        .with("pollInterval", "250")
        .with("concurrencyMode", "single");
    let reader = MetadataReader::new(&props);
    let config = PubSubConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert_eq!(config.processing_timeout, Duration::from_secs(5));
    assert_eq!(config.poll_interval, Duration::from_millis(250));
    assert_eq!(config.in_flight, 1);
    assert_eq!(config.consumer_id, "app1");

    let bad = Properties::new()
        .with("connectionString", "/tmp/x.db")
        .with("consumerID", "app1")
        .with("concurrencyMode", "sometimes")
        .with("processingTimeout", "0");
    let reader = MetadataReader::new(&bad);
    let _ = PUBSUB_SQLITE.configure("v1", &reader, &ComponentContext::default());
    let errors = reader.errors().join("\n");
    assert!(errors.contains("concurrencyMode"), "{errors}");
    assert!(errors.contains("processingTimeout"), "{errors}");
}
