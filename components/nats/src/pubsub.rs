//! `pubsub.jetstream`: NATS JetStream, with Dapr's metadata keys.
//!
//! A topic is a subject; a stream covering it must exist (named by
//! `streamName`, or found by subject), as in Dapr. Publishing waits for the
//! stream's acknowledgement and sets `Nats-Msg-Id` to the topic and the
//! CloudEvent id, so the server drops a publish repeated on the same topic
//! (but not the same event sent on to a dead-letter topic).
//!
//! Subscribers pull from a durable consumer with explicit acknowledgement,
//! asking for no more messages than they have free delivery slots. Unlike
//! daprd, whose consumer is ephemeral unless `durableName` is set, the
//! consumer is durable by default, one per app id and topic
//! (`<consumerID>-<topic>`): the runtimes of one app share its messages,
//! and what is published while they are down waits for them. A refused
//! message is sent back with a delay that grows with its deliveries, and
//! one the app is still working on is kept from redelivery
//! (`+WPI`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use async_trait::async_trait;
use futures::StreamExt;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_pubsub::redelivery::Backoff;
use mecha_pubsub::*;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const FEATURES: &[Feature] = &[
    Feature::BulkPublish,
    Feature::ConsumerGroups,
    Feature::CompetingConsumers,
    Feature::Durable,
    Feature::Ordered,
];

/// How long one pull waits for messages before the subscriber asks again.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// Where a new consumer starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    All,
    Last,
    New,
    Sequence(u64),
    /// Unix seconds.
    Time(i64),
}

/// The typed configuration of a `pubsub.jetstream` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamConfig {
    pub nats_url: String,
    pub name: String,
    /// A token, or a user JWT and its seed.
    pub token: Option<String>,
    pub jwt: Option<(String, String)>,
    pub client_certificate: Option<(String, String)>,
    pub stream_name: Option<String>,
    /// The consumer group; the durable consumer is `<consumerID>-<topic>`.
    pub consumer_id: String,
    /// Dapr's `durableName`: the consumer's exact name, for every topic.
    pub durable_name: Option<String>,
    pub start_at: StartAt,
    pub ack_wait: Option<Duration>,
    pub max_deliver: Option<i64>,
    pub backoff: Vec<Duration>,
    pub max_ack_pending: Option<i64>,
    pub replicas: usize,
    pub memory_storage: bool,
    pub ack_all: bool,
    /// Deliveries in flight per subscription.
    pub in_flight: usize,
    /// The delay of a refused message's redelivery.
    pub redelivery: Backoff,
}

/// Keys Dapr reads for push consumers, which have no meaning for pull
/// consumers: accepted.
const PUSH_ONLY_KEYS: &[&str] = &[
    "queueGroupName",
    "flowControl",
    "heartbeat",
    "hearbeat",
    "rateLimit",
];

impl JetStreamConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        for key in PUSH_ONLY_KEYS {
            let _ = meta.string(key);
        }
        for key in ["domain", "apiPrefix"] {
            if meta.string(key).is_some() {
                meta.error(format!("{key} is not supported yet"));
            }
        }
        let pair = |a: &str, b: &str| match (meta.string(a), meta.string(b)) {
            (Some(x), Some(y)) => Some((x, y)),
            (None, None) => None,
            _ => {
                meta.error(format!("{a} and {b} must be set together"));
                None
            }
        };
        let jwt = pair("jwt", "seedKey");
        let client_certificate = pair("tls_client_cert", "tls_client_key");
        let start_sequence = meta.i64_or("startSequence", 0);
        let start_time = meta.i64_or("startTime", 0);
        let start_at = match meta.string_or("deliverPolicy", "all").as_str() {
            "all" | "" => StartAt::All,
            "last" => StartAt::Last,
            "new" => StartAt::New,
            "sequence" => StartAt::Sequence(start_sequence.max(1) as u64),
            "time" => StartAt::Time(start_time),
            other => {
                meta.error(format!(
                    "metadata field 'deliverPolicy': '{other}' is not one of all, last, new, sequence, time"
                ));
                StartAt::All
            }
        };
        // An explicit start without a policy, as Dapr's startSequence/startTime.
        let start_at = match start_at {
            StartAt::All if start_sequence > 0 => StartAt::Sequence(start_sequence as u64),
            StartAt::All if start_time > 0 => StartAt::Time(start_time),
            other => other,
        };
        let ack_all = match meta.string_or("ackPolicy", "explicit").as_str() {
            "explicit" => false,
            "all" => true,
            "none" => {
                meta.error("ackPolicy 'none' cannot give at-least-once delivery; use explicit");
                false
            }
            other => {
                meta.error(format!(
                    "metadata field 'ackPolicy': '{other}' is not explicit or all"
                ));
                false
            }
        };
        let backoff = match meta.string("backOff") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .filter_map(|item| match mecha_core::units::parse_go_duration(item) {
                    Ok(d) => Some(d),
                    Err(err) => {
                        meta.error(format!("metadata field 'backOff': {err}"));
                        None
                    }
                })
                .collect(),
        };
        // Dapr's own key is `concurrency` (single by default), overridden by
        // the shared `concurrencyMode`.
        let mode = meta
            .string("concurrencyMode")
            .unwrap_or_else(|| meta.string_or("concurrency", "single"));
        let in_flight = match mode.as_str() {
            "single" => 1,
            "parallel" => 32,
            other => {
                meta.error(format!(
                    "metadata field 'concurrency': '{other}' is neither single nor parallel"
                ));
                1
            }
        };
        let positive = |name: &str| meta.i64_or(name, 0).max(0);
        Self {
            nats_url: meta.required("natsURL"),
            name: meta.string_or("name", "dapr.io - pubsub.jetstream"),
            token: meta.string("token"),
            jwt,
            client_certificate,
            stream_name: meta.string("streamName"),
            consumer_id: meta.required("consumerID"),
            durable_name: meta.string("durableName"),
            start_at,
            ack_wait: meta.optional_duration("ackWait", Duration::from_secs(1)),
            max_deliver: Some(positive("maxDeliver")).filter(|n| *n > 0),
            backoff,
            max_ack_pending: Some(positive("maxAckPending")).filter(|n| *n > 0),
            replicas: positive("replicas") as usize,
            memory_storage: meta.bool_or("memoryStorage", false),
            ack_all,
            in_flight,
            redelivery: Backoff::default(),
        }
    }

    /// The durable consumer of `topic`.
    pub fn durable_for(&self, topic: &str) -> String {
        match &self.durable_name {
            Some(name) => name.clone(),
            None => sanitize(&format!("{}-{topic}", self.consumer_id)),
        }
    }
}

/// A name NATS accepts for a consumer: no whitespace, `.`, `*`, `>`, `/`
/// or `\`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

pub const PUBSUB_JETSTREAM: ComponentFactory<dyn PubSub, JetStreamConfig> = ComponentFactory::new(
    "pubsub.jetstream",
    |_, metadata, _| JetStreamConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: JetStreamConfig) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(Arc::new(JetStream::connect(config).await?))
}

/// The `pubsub.jetstream` component.
pub struct JetStream {
    client: async_nats::Client,
    context: jetstream::Context,
    config: JetStreamConfig,
}

/// The CloudEvent id of a message, for `Nats-Msg-Id`.
fn cloudevent_id(data: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(data)
        .ok()
        .map(|e| e.id)
        .filter(|id| !id.is_empty())
}

impl JetStream {
    pub async fn connect(config: JetStreamConfig) -> anyhow::Result<Self> {
        let mut options = match (&config.token, &config.jwt) {
            (Some(token), _) => async_nats::ConnectOptions::with_token(token.clone()),
            (None, Some((jwt, seed))) => async_nats::ConnectOptions::with_credentials(&format!(
                "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
            ))?,
            (None, None) => async_nats::ConnectOptions::new(),
        };
        if let Some((cert, key)) = &config.client_certificate {
            options = options.add_client_certificate(cert.into(), key.into());
        }
        let client = options
            .name(&config.name)
            .connection_timeout(Duration::from_secs(5))
            .connect(config.nats_url.as_str())
            .await
            .map_err(|err| {
                anyhow::anyhow!("cannot connect to NATS at {}: {err}", config.nats_url)
            })?;
        let context = jetstream::new(client.clone());
        Ok(Self {
            client,
            context,
            config,
        })
    }

    /// The stream holding `topic`.
    async fn stream_of(&self, topic: &str) -> anyhow::Result<jetstream::stream::Stream> {
        let name = match &self.config.stream_name {
            Some(name) => name.clone(),
            None => self.context.stream_by_subject(topic).await.map_err(|err| {
                anyhow::anyhow!(
                    "no JetStream stream covers the subject '{topic}' ({err}); create one (nats stream add <name> --subjects '{topic}') or name it with streamName"
                )
            })?,
        };
        self.context
            .get_stream(&name)
            .await
            .map_err(|err| anyhow::anyhow!("cannot use the JetStream stream '{name}': {err}"))
    }

    fn headers(topic: &str, data: &[u8]) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = cloudevent_id(data) {
            headers.insert("Nats-Msg-Id", format!("{topic}/{id}").as_str());
        }
        headers
    }
}

#[async_trait]
impl PubSub for JetStream {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()> {
        let headers = Self::headers(&request.topic, &request.data);
        self.context
            .publish_with_headers(request.topic.clone(), headers, request.data)
            .await
            .map_err(|err| anyhow::anyhow!("publishing to {}: {err}", request.topic))?
            .await
            .map_err(|err| anyhow::anyhow!("publishing to {}: {err}", request.topic))?;
        Ok(())
    }

    /// Sends every message, then waits for their acknowledgements.
    async fn bulk_publish(&self, requests: Vec<PublishRequest>) -> Vec<anyhow::Result<()>> {
        let mut pending = Vec::with_capacity(requests.len());
        for request in requests {
            let headers = Self::headers(&request.topic, &request.data);
            pending.push(
                self.context
                    .publish_with_headers(request.topic.clone(), headers, request.data)
                    .await
                    .map_err(|err| anyhow::anyhow!("publishing to {}: {err}", request.topic)),
            );
        }
        futures::future::join_all(pending.into_iter().map(|sent| async move {
            sent?
                .await
                .map(|_| ())
                .map_err(|err| anyhow::anyhow!("publishing: {err}"))
        }))
        .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription> {
        let stream = self.stream_of(&request.topic).await?;
        let config = &self.config;
        let durable = config.durable_for(&request.topic);
        let deliver_policy = match config.start_at {
            StartAt::All => consumer::DeliverPolicy::All,
            StartAt::Last => consumer::DeliverPolicy::Last,
            StartAt::New => consumer::DeliverPolicy::New,
            StartAt::Sequence(start_sequence) => {
                consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            StartAt::Time(seconds) => consumer::DeliverPolicy::ByStartTime {
                start_time: time_from_unix(seconds)?,
            },
        };
        let consumer_config = consumer::pull::Config {
            durable_name: Some(durable.clone()),
            deliver_policy,
            ack_policy: if config.ack_all {
                consumer::AckPolicy::All
            } else {
                consumer::AckPolicy::Explicit
            },
            ack_wait: config.ack_wait.unwrap_or_default(),
            max_deliver: config.max_deliver.unwrap_or_default(),
            filter_subject: request.topic.clone(),
            max_ack_pending: config.max_ack_pending.unwrap_or_default(),
            num_replicas: config.replicas,
            memory_storage: config.memory_storage,
            backoff: config.backoff.clone(),
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer::<consumer::pull::Config>(&durable, consumer_config)
            .await
            .map_err(|err| anyhow::anyhow!("creating the consumer '{durable}': {err}"))?;
        let ack_wait = consumer.cached_info().config.ack_wait;
        let subscriber = Arc::new(Subscriber {
            consumer,
            topic: request.topic,
            slots: Arc::new(Semaphore::new(
                request.max_in_flight.unwrap_or(config.in_flight).max(1),
            )),
            progress: if ack_wait.is_zero() {
                Duration::from_secs(10)
            } else {
                ack_wait / 3
            },
            redelivery: config.redelivery,
            handler,
        });
        Ok(Subscription::spawn(move |stop| subscriber.run(stop)))
    }

    async fn close(&self) {
        let _ = self.client.drain().await;
    }
}

fn time_from_unix(seconds: i64) -> anyhow::Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|err| anyhow::anyhow!("startTime {seconds}: {err}"))
}

struct Subscriber {
    consumer: consumer::PullConsumer,
    topic: String,
    slots: Arc<Semaphore>,
    /// How often a message in flight is reported as still being worked on.
    progress: Duration,
    redelivery: Backoff,
    handler: Arc<dyn Handler>,
}

impl Subscriber {
    async fn deliver(&self, message: jetstream::Message) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1) as u32;
        let mut metadata = Metadata::new();
        metadata.insert("Topic".into(), message.subject.to_string());
        let handled = self.handler.handle(Message {
            topic: self.topic.clone(),
            data: message.payload.clone(),
            metadata,
        });
        tokio::pin!(handled);
        let mut tick = tokio::time::interval(self.progress);
        tick.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut handled => break outcome,
                _ = tick.tick() => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        };
        let answer = match outcome {
            Ok(()) => message.ack().await,
            Err(_) => {
                message
                    .ack_with(AckKind::Nak(Some(self.redelivery.delay(delivered))))
                    .await
            }
        };
        if let Err(err) = answer {
            // Without an answer the server redelivers after ackWait.
            tracing::warn!(topic = %self.topic, "acknowledging a message failed: {err}");
        }
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tasks = JoinSet::new();
        loop {
            let first = tokio::select! {
                permit = self.slots.clone().acquire_owned() => permit.expect("never closed"),
                () = stop.cancelled() => break,
            };
            let mut permit = first;
            let more = self.slots.available_permits();
            if more > 0
                && let Ok(extra) = self.slots.clone().try_acquire_many_owned(more as u32)
            {
                permit.merge(extra);
            }
            let wanted = permit.num_permits();
            let batch = self
                .consumer
                .batch()
                .max_messages(wanted)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    drop(permit);
                    tracing::warn!(topic = %self.topic, "pulling messages failed: {err}");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stop.cancelled() => break,
                    }
                    continue;
                }
            };
            // The batch is not raced against `stop`: messages pulled are
            // this subscriber's until acknowledged or their ackWait ends.
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => {
                        let Some(slot) = permit.split(1) else { break };
                        let subscriber = self.clone();
                        tasks.spawn(async move {
                            subscriber.deliver(message).await;
                            drop(slot);
                        });
                    }
                    Err(err) => {
                        tracing::debug!(topic = %self.topic, "pull ended: {err}");
                        break;
                    }
                }
            }
            drop(permit);
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names() {
        assert_eq!(sanitize("my app.orders/v1 >"), "my_app_orders_v1__");
        assert_eq!(
            cloudevent_id(br#"{"id":"abc","data":1}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(cloudevent_id(b"raw"), None);
    }
}
