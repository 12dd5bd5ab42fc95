//! `pubsub.jetstream` against the pub/sub conformance suite. Each harness
//! creates its own stream, covering the subjects `<prefix>.>`, so that its
//! topics never meet another run's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_component_nats::{JetStream, JetStreamConfig, StartAt};
use mecha_core::testing::{service_available, service_url};
use mecha_core::{MetadataReader, Properties};
use mecha_pubsub::PubSub;
use mecha_pubsub::conformance::Harness;
use mecha_pubsub::redelivery::Backoff;
use tokio::sync::OnceCell;

/// Where a subscriber process finds the stream of its case.
const PREFIX_VARIABLE: &str = "MECHA_TEST_JETSTREAM_PREFIX";
/// Streams of earlier runs are deleted once they are this old.
const STALE: Duration = Duration::from_secs(3600);

pub fn url() -> String {
    service_url("nats", "127.0.0.1:4222")
}

fn config(consumer_id: &str, stream: &str) -> JetStreamConfig {
    let props = Properties::new()
        .with("natsURL", &format!("nats://{}", url()))
        .with("consumerID", consumer_id)
        .with("streamName", stream)
        // Short enough that a message whose subscriber died comes back soon.
        .with("ackWait", "2s")
        .with("concurrency", "parallel");
    let reader = MetadataReader::new(&props);
    let mut config = JetStreamConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config.redelivery = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    config
}

struct Nats {
    prefix: String,
    stream: OnceCell<()>,
}

impl Default for Nats {
    fn default() -> Self {
        let prefix = std::env::var(PREFIX_VARIABLE).unwrap_or_else(|_| {
            format!(
                "mecha-conformance-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            )
        });
        Self {
            prefix,
            stream: OnceCell::new(),
        }
    }
}

/// Streams of earlier runs are swept once per process: harnesses that swept
/// concurrently raced their deletes against each other's stream creation.
static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Deletes the conformance streams of earlier runs that are older than
/// `STALE`.
async fn sweep_stale(context: &async_nats::jetstream::Context) {
    use futures::StreamExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut names = context.stream_names();
    let mut candidates = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        if name.starts_with("mecha-conformance-") {
            candidates.push(name);
        }
    }
    for name in candidates {
        if let Ok(mut stream) = context.get_stream(&name).await
            && let Ok(info) = stream.info().await
            && now - info.created.unix_timestamp() > STALE.as_secs() as i64
        {
            let _ = context.delete_stream(&name).await;
        }
    }
}

impl Nats {
    /// Creates the stream of this harness, after sweeping stale ones.
    async fn ensure_stream(&self) {
        self.stream
            .get_or_init(|| async {
                let client = async_nats::connect(url()).await.unwrap();
                let context = async_nats::jetstream::new(client);
                SWEPT.get_or_init(|| sweep_stale(&context)).await;
                let config = async_nats::jetstream::stream::Config {
                    name: self.prefix.clone(),
                    subjects: vec![format!("{}.>", self.prefix)],
                    max_age: STALE,
                    ..Default::default()
                };
                // The server answers a store it failed to create with a
                // generic 10049 ("error creating store for stream") that
                // can pass, for example while another process's sweep is
                // still tearing streams down; such a failure is retried.
                let mut attempt = 0;
                loop {
                    match context.get_or_create_stream(config.clone()).await {
                        Ok(_) => break,
                        Err(err) if attempt < 10 => {
                            attempt += 1;
                            eprintln!("creating stream {}: {err}; retrying", self.prefix);
                            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                        }
                        Err(err) => panic!("creating stream {}: {err}", self.prefix),
                    }
                }
            })
            .await;
    }
}

#[async_trait]
impl Harness for Nats {
    async fn component(&self, consumer_id: &str) -> Option<Arc<dyn PubSub>> {
        if !service_available("NATS", &url()) {
            return None;
        }
        self.ensure_stream().await;
        Some(Arc::new(
            JetStream::connect(config(consumer_id, &self.prefix))
                .await
                .unwrap(),
        ))
    }

    fn topic(&self, name: &str) -> String {
        format!(
            "{}.{name}-{}",
            self.prefix,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    fn child_env(&self) -> Vec<(String, String)> {
        vec![(PREFIX_VARIABLE.into(), self.prefix.clone())]
    }
}

mecha_pubsub::pubsub_conformance!(Nats);

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with("natsURL", "nats://localhost:4222")
        .with("consumerID", "app")
        .with("durableName", "orders-durable")
        .with("queueGroupName", "ignored")
        .with("deliverPolicy", "sequence")
        .with("startSequence", "42")
        .with("ackWait", "30s")
        .with("maxDeliver", "5")
        .with("backOff", "1s, 5s")
        .with("maxAckPending", "100")
        .with("replicas", "1")
        .with("memoryStorage", "true")
        .with("ackPolicy", "all")
        .with("concurrency", "parallel");
    let reader = MetadataReader::new(&props);
    let config = JetStreamConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!(config.start_at, StartAt::Sequence(42));
    assert_eq!(config.ack_wait, Some(Duration::from_secs(30)));
    assert_eq!(config.max_deliver, Some(5));
    assert_eq!(
        config.backoff,
        vec![Duration::from_secs(1), Duration::from_secs(5)]
    );
    assert!(config.ack_all && config.memory_storage);
    assert_eq!(config.durable_for("any.topic"), "orders-durable");
    assert!(config.in_flight > 1);

    let props = Properties::new()
        .with("natsURL", "nats://localhost:4222")
        .with("consumerID", "my.app")
        .with("deliverPolicy", "sometimes")
        .with("ackPolicy", "none");
    let reader = MetadataReader::new(&props);
    let config = JetStreamConfig::from_metadata(&reader);
    assert_eq!(reader.errors().len(), 2, "{:?}", reader.errors());
    assert_eq!(config.durable_for("orders.eu"), "my_app-orders_eu");
}
