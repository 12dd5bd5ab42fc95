//! `pubsub.rabbitmq`: RabbitMQ, with Dapr's metadata keys.
//!
//! As in Dapr, a topic is an exchange (`fanout` unless `exchangeKind` says
//! otherwise) and each consumer group reads its own queue bound to it,
//! named `<consumerID>-<topic>`; the runtimes of one app share that queue.
//!
//! Where Mecha's defaults differ from daprd's, it is so that a message the
//! broker took is not lost:
//! - queues are durable and kept when unused (`durable: true`,
//!   `deletedWhenUnused: false`; daprd's are neither), so what is published
//!   while an app is down waits for it;
//! - messages are persistent (`deliveryMode: 2`; daprd's default is 0) and a
//!   publish returns once the broker confirmed it (`publisherConfirm:
//!   true`);
//! - a message the app asked to retry is redelivered with a growing delay,
//!   kept unacknowledged meanwhile, so a crash hands it back to the queue
//!   (daprd rejects it, which drops it unless `enableDeadLetter` is set).
//!   With `requeueInFailure: true` it is put back in the queue instead,
//!   after the same delay, for any runtime of the app to take.
//!
//! `enableDeadLetter` declares, per queue, the exchange `dlx-<queue>` and
//! the queue `dlq-<queue>` that receive what the broker discards (expired,
//! or over `maxLen`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_pubsub::redelivery::{Backoff, deliver_until_taken};
use mecha_pubsub::*;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connection::Connector;

/// The typed configuration of a `pubsub.rabbitmq` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitMqConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    pub consumer_id: String,
    pub client_name: Option<String>,
    pub durable: bool,
    pub deleted_when_unused: bool,
    /// 2 is persistent.
    pub delivery_mode: u8,
    pub publisher_confirm: bool,
    pub requeue_in_failure: bool,
    pub enable_dead_letter: bool,
    pub exchange_kind: String,
    /// Unacknowledged messages a subscription holds (the prefetch window),
    /// also its deliveries in flight.
    pub in_flight: u16,
    pub max_len: Option<i64>,
    pub max_len_bytes: Option<i64>,
    /// The queue-wide message TTL (`ttlInSeconds`).
    pub queue_ttl: Option<Duration>,
    pub single_active_consumer: bool,
    pub reconnect_wait: Duration,
    pub redelivery: Backoff,
}

impl RabbitMqConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let url = match meta
            .string("connectionString")
            .or_else(|| meta.string("host"))
        {
            Some(url) => {
                for key in ["protocol", "hostname", "username", "password"] {
                    if meta.string(key).is_some() {
                        meta.error(format!("{key} cannot be combined with connectionString"));
                    }
                }
                url
            }
            None => match meta.string("hostname") {
                Some(host) => {
                    let protocol = meta.string_or("protocol", "amqp");
                    let credentials = match (meta.string("username"), meta.string("password")) {
                        (Some(user), Some(password)) => format!("{user}:{password}@"),
                        (Some(user), None) => format!("{user}@"),
                        _ => String::new(),
                    };
                    format!("{protocol}://{credentials}{host}")
                }
                None => {
                    meta.error("connectionString (or hostname) is required");
                    String::new()
                }
            },
        };
        let url = match meta.optional_duration("heartBeat", Duration::from_secs(1)) {
            Some(beat) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}heartbeat={}", beat.as_secs().max(1))
            }
            None => url,
        };
        if meta.bool_or("autoAck", false) {
            meta.error("autoAck cannot give at-least-once delivery; leave it false");
        }
        if meta.bool_or("saslExternal", false) {
            meta.error("saslExternal is not supported yet");
        }
        for key in ["caCert", "clientCert", "clientKey"] {
            if meta.string(key).is_some() {
                meta.error(format!(
                    "{key} is not supported yet; use amqps:// with the system's roots"
                ));
            }
        }
        let delivery_mode = match meta.i64_or("deliveryMode", 2) {
            mode @ 0..=2 => mode as u8,
            other => {
                meta.error(format!(
                    "metadata field 'deliveryMode': {other} is not 0, 1 or 2"
                ));
                2
            }
        };
        let exchange_kind = meta.string_or("exchangeKind", "fanout");
        if !matches!(
            exchange_kind.as_str(),
            "fanout" | "topic" | "direct" | "headers"
        ) {
            meta.error(format!(
                "metadata field 'exchangeKind': '{exchange_kind}' is not fanout, topic, direct or headers"
            ));
        }
        let single = match meta.string_or("concurrencyMode", "parallel").as_str() {
            "single" => true,
            "parallel" => false,
            other => {
                meta.error(format!(
                    "metadata field 'concurrencyMode': '{other}' is neither single nor parallel"
                ));
                false
            }
        };
        let prefetch = meta.i64_or("prefetchCount", 0);
        let in_flight = match (single, prefetch) {
            (true, _) => 1,
            (false, n) if n > 0 => n.min(u16::MAX as i64) as u16,
            (false, _) => 64,
        };
        let positive = |name: &str| Some(meta.i64_or(name, 0)).filter(|n| *n > 0);
        Self {
            url,
            consumer_id: meta.required("consumerID"),
            client_name: meta.string("clientName"),
            durable: meta.bool_or("durable", true),
            deleted_when_unused: meta.bool_or("deletedWhenUnused", false),
            delivery_mode,
            publisher_confirm: meta.bool_or("publisherConfirm", true),
            requeue_in_failure: meta.bool_or("requeueInFailure", false),
            enable_dead_letter: meta.bool_or("enableDeadLetter", false),
            exchange_kind,
            in_flight,
            max_len: positive("maxLen"),
            max_len_bytes: positive("maxLenBytes"),
            queue_ttl: positive("ttlInSeconds").map(|s| Duration::from_secs(s as u64)),
            single_active_consumer: meta.bool_or("singleActiveConsumer", false),
            reconnect_wait: meta.duration_or(
                "reconnectWait",
                Duration::from_secs(3),
                Duration::from_secs(1),
            ),
            redelivery: Backoff::default(),
        }
    }

    /// The queue of `topic` for this consumer group.
    pub fn queue_for(&self, topic: &str) -> String {
        format!("{}-{topic}", self.consumer_id)
    }

    fn features(&self) -> Vec<Feature> {
        let mut features = vec![
            Feature::MessageTtl,
            Feature::ConsumerGroups,
            Feature::CompetingConsumers,
        ];
        if self.durable && !self.deleted_when_unused && self.delivery_mode == 2 {
            features.push(Feature::Durable);
        }
        if self.in_flight == 1 {
            features.push(Feature::Ordered);
        }
        features
    }

    fn exchange_kind(&self) -> ExchangeKind {
        match self.exchange_kind.as_str() {
            "topic" => ExchangeKind::Topic,
            "direct" => ExchangeKind::Direct,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Fanout,
        }
    }
}

pub const PUBSUB_RABBITMQ: ComponentFactory<dyn PubSub, RabbitMqConfig> = ComponentFactory::new(
    "pubsub.rabbitmq",
    |_, metadata, _| RabbitMqConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: RabbitMqConfig) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(Arc::new(RabbitMq::connect(config).await?))
}

/// A connection, re-established when it broke.
struct Link {
    config: RabbitMqConfig,
    connector: Connector,
}

impl Link {
    async fn channel(&self) -> anyhow::Result<Channel> {
        self.connector.channel().await
    }

    async fn declare_exchange(&self, channel: &Channel, topic: &str) -> anyhow::Result<()> {
        channel
            .exchange_declare(
                ShortString::from(topic),
                self.config.exchange_kind(),
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|err| anyhow::anyhow!("declaring the exchange '{topic}': {err}"))
    }
}

/// The `pubsub.rabbitmq` component.
pub struct RabbitMq {
    link: Arc<Link>,
    features: Vec<Feature>,
    /// The confirming channel publishes go through, and the exchanges it
    /// declared.
    publisher: Mutex<Option<(Channel, HashSet<String>)>>,
}

impl RabbitMq {
    pub async fn connect(config: RabbitMqConfig) -> anyhow::Result<Self> {
        let features = config.features();
        let link = Arc::new(Link {
            connector: Connector::new(config.url.clone(), config.client_name.clone()),
            config,
        });
        link.connector.get().await?;
        Ok(Self {
            link,
            features,
            publisher: Mutex::new(None),
        })
    }

    /// The publishing channel, with `topic`'s exchange declared.
    async fn publisher(&self, topic: &str) -> anyhow::Result<Channel> {
        let mut slot = self.publisher.lock().await;
        if slot
            .as_ref()
            .is_none_or(|(channel, _)| !channel.status().connected())
        {
            let channel = self.link.channel().await?;
            if self.link.config.publisher_confirm {
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
            }
            *slot = Some((channel, HashSet::new()));
        }
        let (channel, declared) = slot.as_mut().expect("set above");
        if !declared.contains(topic) {
            self.link.declare_exchange(channel, topic).await?;
            declared.insert(topic.to_owned());
        }
        Ok(channel.clone())
    }
}

fn find<'a>(metadata: &'a Metadata, key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// The `ttlInSeconds` of a publish, as an AMQP expiration in milliseconds.
fn expiration(metadata: &Metadata) -> anyhow::Result<Option<String>> {
    let Some(value) = find(metadata, "ttlInSeconds") else {
        return Ok(None);
    };
    match value.trim().parse::<i64>() {
        Ok(seconds) if seconds > 0 => Ok(Some((seconds * 1000).to_string())),
        Ok(_) => Ok(None),
        Err(_) => anyhow::bail!("ttlInSeconds '{value}' is not a whole number of seconds"),
    }
}

#[async_trait]
impl PubSub for RabbitMq {
    fn features(&self) -> &[Feature] {
        &self.features
    }

    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()> {
        let config = &self.link.config;
        let mut properties = BasicProperties::default().with_delivery_mode(config.delivery_mode);
        if let Some(content_type) = &request.content_type {
            properties = properties.with_content_type(ShortString::from(content_type.as_str()));
        }
        if let Some(ms) = expiration(&request.metadata)? {
            properties = properties.with_expiration(ShortString::from(ms));
        }
        if let Some(priority) = find(&request.metadata, "priority")
            && let Ok(priority) = priority.parse::<u8>()
        {
            properties = properties.with_priority(priority);
        }
        let routing_key = find(&request.metadata, "routingKey").unwrap_or_default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let channel = self.publisher(&request.topic).await?;
            let sent = channel
                .basic_publish(
                    ShortString::from(request.topic.as_str()),
                    ShortString::from(routing_key),
                    BasicPublishOptions::default(),
                    &request.data,
                    properties.clone(),
                )
                .await;
            let confirmation = match sent {
                Ok(confirm) => confirm.await,
                Err(err) => Err(err),
            };
            match confirmation {
                Ok(confirmation) if confirmation.is_nack() => {
                    anyhow::bail!("RabbitMQ refused the message on '{}'", request.topic)
                }
                Ok(_) => return Ok(()),
                // A channel closed under the publish (the connection broke):
                // once more on a fresh one.
                Err(err) if attempts < 2 => {
                    tracing::debug!(topic = %request.topic, "publish failed, retrying: {err}");
                }
                Err(err) => anyhow::bail!("publishing to '{}': {err}", request.topic),
            }
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription> {
        let config = &self.link.config;
        let in_flight = request
            .max_in_flight
            .map(|n| n.clamp(1, u16::MAX as usize) as u16)
            .unwrap_or(config.in_flight);
        let queue = find(&request.metadata, "queueName")
            .map(str::to_owned)
            .unwrap_or_else(|| config.queue_for(&request.topic));
        let routing_keys: Vec<String> = find(&request.metadata, "routingKey")
            .unwrap_or_default()
            .split(',')
            .map(|key| key.trim().to_owned())
            .collect();
        let subscriber = Arc::new(Subscriber {
            link: self.link.clone(),
            topic: request.topic,
            queue,
            routing_keys,
            in_flight,
            handler,
        });
        // The first setup runs here, so that a subscription that cannot be
        // made is reported to the caller.
        let consumer = subscriber.consume().await?;
        Ok(Subscription::spawn(move |stop| {
            subscriber.run(consumer, stop)
        }))
    }

    async fn close(&self) {
        if let Some((channel, _)) = self.publisher.lock().await.take() {
            let _ = channel.close(200, ShortString::from("closing")).await;
        }
        self.link.connector.close().await;
    }
}

struct Subscriber {
    link: Arc<Link>,
    topic: String,
    queue: String,
    routing_keys: Vec<String>,
    in_flight: u16,
    handler: Arc<dyn Handler>,
}

/// A consuming channel and its consumer.
struct Consuming {
    channel: Channel,
    consumer: lapin::Consumer,
}

impl Subscriber {
    /// Declares the exchange, the queue (and its dead-letter pair) and the
    /// bindings, then starts consuming.
    async fn consume(&self) -> anyhow::Result<Consuming> {
        let config = &self.link.config;
        let channel = self.link.channel().await?;
        self.link.declare_exchange(&channel, &self.topic).await?;
        let mut arguments = FieldTable::default();
        if config.enable_dead_letter {
            let exchange = format!("dlx-{}", self.queue);
            let queue = format!("dlq-{}", self.queue);
            channel
                .exchange_declare(
                    ShortString::from(exchange.as_str()),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_declare(
                    ShortString::from(queue.as_str()),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_bind(
                    ShortString::from(queue.as_str()),
                    ShortString::from(exchange.as_str()),
                    ShortString::from(""),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            arguments.insert(
                ShortString::from("x-dead-letter-exchange"),
                AMQPValue::LongString(LongString::from(exchange.as_str())),
            );
        }
        if let Some(n) = config.max_len {
            arguments.insert(ShortString::from("x-max-length"), AMQPValue::LongLongInt(n));
        }
        if let Some(n) = config.max_len_bytes {
            arguments.insert(
                ShortString::from("x-max-length-bytes"),
                AMQPValue::LongLongInt(n),
            );
        }
        if let Some(ttl) = config.queue_ttl {
            arguments.insert(
                ShortString::from("x-message-ttl"),
                AMQPValue::LongLongInt(ttl.as_millis() as i64),
            );
        }
        if config.single_active_consumer {
            arguments.insert(
                ShortString::from("x-single-active-consumer"),
                AMQPValue::Boolean(true),
            );
        }
        channel
            .queue_declare(
                ShortString::from(self.queue.as_str()),
                QueueDeclareOptions {
                    durable: config.durable,
                    auto_delete: config.deleted_when_unused,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .map_err(|err| anyhow::anyhow!("declaring the queue '{}': {err}", self.queue))?;
        for key in &self.routing_keys {
            channel
                .queue_bind(
                    ShortString::from(self.queue.as_str()),
                    ShortString::from(self.topic.as_str()),
                    ShortString::from(key.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .basic_qos(self.in_flight, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                ShortString::from(self.queue.as_str()),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|err| anyhow::anyhow!("consuming the queue '{}': {err}", self.queue))?;
        Ok(Consuming { channel, consumer })
    }

    async fn deliver(&self, delivery: lapin::message::Delivery, stop: &CancellationToken) {
        let config = &self.link.config;
        let mut metadata = Metadata::new();
        if !delivery.routing_key.as_str().is_empty() {
            metadata.insert("routingKey".into(), delivery.routing_key.to_string());
        }
        let message = Message {
            topic: self.topic.clone(),
            data: bytes::Bytes::from(delivery.data.clone()),
            metadata,
        };
        let answer = if config.requeue_in_failure {
            match self.handler.handle(message).await {
                Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                Err(_) => {
                    // Back to the queue after a pause, for any runtime.
                    let delay = config
                        .redelivery
                        .delay(if delivery.redelivered { 4 } else { 1 });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => {}
                    }
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await
                }
            }
        } else if deliver_until_taken(&*self.handler, message, config.redelivery, stop).await {
            delivery.ack(BasicAckOptions::default()).await
        } else {
            // Stopped before the app took it: back to the queue now.
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
        };
        if let Err(err) = answer {
            // Without an answer the broker hands the message back when the
            // channel closes.
            tracing::warn!(topic = %self.topic, "acknowledging a message failed: {err}");
        }
    }

    async fn run(self: Arc<Self>, first: Consuming, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.in_flight as usize));
        let mut tasks = JoinSet::new();
        let mut current = Some(first);
        while !stop.is_cancelled() {
            let Consuming {
                channel,
                mut consumer,
            } = match current.take() {
                Some(consuming) => consuming,
                None => match self.consume().await {
                    Ok(consuming) => consuming,
                    Err(err) => {
                        tracing::warn!(topic = %self.topic, "subscribing again failed: {err}");
                        tokio::select! {
                            () = tokio::time::sleep(self.link.config.reconnect_wait) => {}
                            () = stop.cancelled() => {}
                        }
                        continue;
                    }
                },
            };
            loop {
                let permit = tokio::select! {
                    permit = slots.clone().acquire_owned() => permit.expect("never closed"),
                    () = stop.cancelled() => break,
                };
                let next = tokio::select! {
                    next = consumer.next() => next,
                    () = stop.cancelled() => break,
                };
                match next {
                    Some(Ok(delivery)) => {
                        let subscriber = self.clone();
                        let stop = stop.clone();
                        tasks.spawn(async move {
                            subscriber.deliver(delivery, &stop).await;
                            drop(permit);
                        });
                    }
                    Some(Err(err)) => {
                        tracing::warn!(topic = %self.topic, "consuming failed: {err}");
                        break;
                    }
                    None => {
                        tracing::warn!(topic = %self.topic, "the broker ended the consumer");
                        break;
                    }
                }
                while tasks.try_join_next().is_some() {}
            }
            if stop.is_cancelled() {
                // No new deliveries; those in flight finish (or are handed
                // back), then the channel closes.
                let _ = channel
                    .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                    .await;
                while tasks.join_next().await.is_some() {}
                let _ = channel.close(200, ShortString::from("unsubscribed")).await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(self.link.config.reconnect_wait) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_from_ttl() {
        let mut metadata = Metadata::new();
        assert_eq!(expiration(&metadata).unwrap(), None);
        metadata.insert("ttlInSeconds".into(), "3".into());
        assert_eq!(expiration(&metadata).unwrap().as_deref(), Some("3000"));
        metadata.insert("ttlInSeconds".into(), "soon".into());
        assert!(expiration(&metadata).is_err());
    }
}
