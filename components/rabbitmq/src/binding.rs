//! `bindings.rabbitmq`: one queue, as daprd's binding — `create` publishes
//! to it (the default exchange, the queue's name as routing key), and as an
//! input binding its messages go to the app, one at a time, each
//! acknowledged only once the app took it; one the app refused goes back to
//! the queue after a pause, to come again.
//!
//! Where Mecha differs, so that what the broker took is not lost: the queue
//! is durable unless `durable: false` (daprd: not durable), messages to a
//! durable queue are persistent, and `create` returns once the broker
//! confirmed the message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use mecha_bindings::*;
use mecha_core::{ComponentFactory, MetadataReader};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::connection::Connector;

/// The typed configuration of a `bindings.rabbitmq` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitBindingConfig {
    /// `amqp://user:password@host:port/vhost` (`host`).
    pub url: String,
    pub queue: String,
    pub durable: bool,
    pub delete_when_unused: bool,
    pub exclusive: bool,
    /// Unacknowledged messages held at once; 0 is no limit.
    pub prefetch: u16,
    pub max_priority: Option<u8>,
    /// The queue-wide message TTL.
    pub ttl: Option<Duration>,
    pub content_type: String,
    pub reconnect_wait: Duration,
    /// How long a refused message waits before it goes back to the queue.
    pub requeue_delay: Duration,
}

impl RabbitBindingConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let url = meta.required("host");
        let max_priority = meta.string("maxPriority").and_then(|text| {
            text.parse::<u8>()
                .map_err(|_| {
                    meta.error(format!(
                        "metadata field 'maxPriority': '{text}' is not between 0 and 255"
                    ))
                })
                .ok()
        });
        for key in ["caCert", "clientCert", "clientKey"] {
            if meta.string(key).is_some() {
                meta.error(format!(
                    "{key} is not supported yet; use amqps:// with the system's roots"
                ));
            }
        }
        if meta.bool_or("externalSasl", false) {
            meta.error("externalSasl is not supported yet");
        }
        let positive = |name: &str| Some(meta.i64_or(name, 0)).filter(|n| *n > 0);
        Self {
            url,
            queue: meta.required("queueName"),
            durable: meta.bool_or("durable", true),
            delete_when_unused: meta.bool_or("deleteWhenUnused", false),
            exclusive: meta.bool_or("exclusive", false),
            prefetch: positive("prefetchCount").map_or(0, |n| n.min(u16::MAX as i64) as u16),
            max_priority,
            ttl: positive("ttlInSeconds").map(|s| Duration::from_secs(s as u64)),
            content_type: meta.string_or("contentType", "text/plain"),
            reconnect_wait: Duration::from_secs(
                positive("reconnectWaitInSeconds").unwrap_or(5) as u64
            ),
            requeue_delay: Duration::from_secs(1),
        }
    }
}

pub const BINDINGS_RABBITMQ: ComponentFactory<dyn Binding, RabbitBindingConfig> =
    ComponentFactory::new(
        "bindings.rabbitmq",
        |_, metadata, _| RabbitBindingConfig::from_metadata(metadata),
        |config| Box::pin(connect(config)),
    );

async fn connect(config: RabbitBindingConfig) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(RabbitBinding::connect(config).await?))
}

/// The `bindings.rabbitmq` binding.
pub struct RabbitBinding {
    inner: Arc<Inner>,
}

struct Inner {
    config: RabbitBindingConfig,
    connector: Connector,
    /// The confirming channel `create` publishes on.
    publisher: Mutex<Option<Channel>>,
}

impl Binding for RabbitBinding {
    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        Some(self)
    }

    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

fn backend(what: &str, err: impl std::fmt::Display) -> BindingError {
    BindingError::Backend(anyhow::anyhow!("rabbitmq {what}: {err}"))
}

impl Inner {
    /// A channel with the queue declared on it.
    async fn channel(&self) -> anyhow::Result<Channel> {
        let channel = self.connector.channel().await?;
        let config = &self.config;
        let mut arguments = FieldTable::default();
        if let Some(priority) = config.max_priority {
            arguments.insert(
                ShortString::from("x-max-priority"),
                AMQPValue::ShortShortUInt(priority),
            );
        }
        if let Some(ttl) = config.ttl {
            arguments.insert(
                ShortString::from("x-message-ttl"),
                AMQPValue::LongLongInt(ttl.as_millis() as i64),
            );
        }
        channel
            .queue_declare(
                ShortString::from(config.queue.as_str()),
                QueueDeclareOptions {
                    durable: config.durable,
                    auto_delete: config.delete_when_unused,
                    exclusive: config.exclusive,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .map_err(|err| anyhow::anyhow!("declaring the queue '{}': {err}", config.queue))?;
        Ok(channel)
    }

    async fn publisher(&self) -> anyhow::Result<Channel> {
        let mut slot = self.publisher.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }
}

impl RabbitBinding {
    /// Connects and declares the queue, as daprd's binding does at start.
    pub async fn connect(config: RabbitBindingConfig) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            connector: Connector::new(config.url.clone(), None),
            config,
            publisher: Mutex::new(None),
        });
        inner.publisher().await?;
        Ok(Self { inner })
    }
}

/// A request's per-message `ttlInSeconds`, as the AMQP expiration (ms).
fn expiration(req: &InvokeRequest) -> Result<Option<String>, BindingError> {
    match req.meta("ttlInSeconds").map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<u64>().ok().and_then(|s| s.checked_mul(1000)) {
            Some(ms) => Ok(Some(ms.to_string())),
            None => Err(BindingError::Invalid(format!(
                "metadata ttlInSeconds '{text}' is not a whole number of seconds"
            ))),
        },
    }
}

#[async_trait]
impl OutputBinding for RabbitBinding {
    fn operations(&self) -> &[&'static str] {
        &["create"]
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError> {
        self.check_operation(&req.operation)?;
        let config = &self.inner.config;
        let content_type = req.meta("contentType").unwrap_or(&config.content_type);
        let mut properties =
            BasicProperties::default().with_content_type(ShortString::from(content_type));
        if config.durable {
            properties = properties.with_delivery_mode(2);
        }
        if let Some(ms) = expiration(req)? {
            properties = properties.with_expiration(ShortString::from(ms));
        }
        if let Some(priority) = req.meta("priority") {
            let priority = priority.parse::<u8>().map_err(|_| {
                BindingError::Invalid(format!(
                    "metadata priority '{priority}' is not between 0 and 255"
                ))
            })?;
            properties = properties.with_priority(priority);
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let channel = self
                .inner
                .publisher()
                .await
                .map_err(|err| backend("channel", err))?;
            let sent = channel
                .basic_publish(
                    ShortString::from(""),
                    ShortString::from(config.queue.as_str()),
                    BasicPublishOptions::default(),
                    &req.data,
                    properties.clone(),
                )
                .await;
            let confirmation = match sent {
                Ok(confirm) => confirm.await,
                Err(err) => Err(err),
            };
            match confirmation {
                Ok(confirmation) if confirmation.is_nack() => {
                    return Err(backend("publish", "the broker refused the message"));
                }
                Ok(_) => return Ok(None),
                // The channel closed under the publish: once more on a new one.
                Err(err) if attempts < 2 => {
                    tracing::debug!(queue = %config.queue, "publish failed, retrying: {err}");
                }
                Err(err) => return Err(backend("publish", err)),
            }
        }
    }
}

#[async_trait]
impl InputBinding for RabbitBinding {
    async fn read(
        &self,
        handler: Arc<dyn InputHandler>,
        stop: CancellationToken,
    ) -> Result<(), BindingError> {
        let inner = self.inner.clone();
        // A first attempt that fails is retried in the background, as after
        // a lost connection: the binding keeps trying to read.
        let first = match consume(&inner).await {
            Ok(consuming) => Some(consuming),
            Err(err) => {
                tracing::warn!(queue = %inner.config.queue, "consuming failed, retrying: {err}");
                None
            }
        };
        tokio::spawn(run(inner, handler, first, stop));
        Ok(())
    }
}

async fn consume(inner: &Inner) -> anyhow::Result<(Channel, lapin::Consumer)> {
    let channel = inner.channel().await?;
    channel
        .basic_qos(inner.config.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            ShortString::from(inner.config.queue.as_str()),
            ShortString::from(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}

/// Delivers the queue's messages one at a time until `stop`, consuming
/// again after the connection is lost.
async fn run(
    inner: Arc<Inner>,
    handler: Arc<dyn InputHandler>,
    first: Option<(Channel, lapin::Consumer)>,
    stop: CancellationToken,
) {
    let queue = inner.config.queue.clone();
    let mut current = first;
    while !stop.is_cancelled() {
        let (channel, mut consumer) = match current.take() {
            Some(consuming) => consuming,
            None => match consume(&inner).await {
                Ok(consuming) => consuming,
                Err(err) => {
                    tracing::warn!(%queue, "consuming again failed: {err}");
                    tokio::select! {
                        () = tokio::time::sleep(inner.config.reconnect_wait) => {}
                        () = stop.cancelled() => {}
                    }
                    continue;
                }
            },
        };
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                () = stop.cancelled() => break,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => {
                    tracing::warn!(%queue, "consuming failed: {err}");
                    break;
                }
                None => {
                    tracing::warn!(%queue, "the broker ended the consumer");
                    break;
                }
            };
            let event = InputEvent {
                data: bytes::Bytes::from(delivery.data.clone()),
                metadata: Metadata::new(),
            };
            let answer = match handler.handle(event).await {
                Ok(_) => delivery.ack(BasicAckOptions::default()).await,
                Err(refused) => {
                    tracing::debug!(%queue, "the app refused a message, requeueing it: {refused}");
                    tokio::select! {
                        () = tokio::time::sleep(inner.config.requeue_delay) => {}
                        () = stop.cancelled() => {}
                    }
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await
                }
            };
            if let Err(err) = answer {
                // Unanswered, the broker hands the message back when the
                // channel closes.
                tracing::warn!(%queue, "acknowledging a message failed: {err}");
            }
        }
        if stop.is_cancelled() {
            let _ = channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await;
            let _ = channel.close(200, ShortString::from("stopped")).await;
        } else {
            tokio::select! {
                () = tokio::time::sleep(inner.config.reconnect_wait) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}
