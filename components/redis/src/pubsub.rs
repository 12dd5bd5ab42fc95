//! `pubsub.redis`: Redis Streams with consumer groups, as Dapr lays them
//! out: one stream per topic (the key is the topic), entries with the
//! fields `data` (the bytes) and `metadata` (JSON), and one consumer group
//! per `consumerID`, created at `0` so a new group reads what the stream
//! holds.
//!
//! A message the app took is acknowledged (`XACK`). One it refused is
//! delivered again by the same consumer after the block's growing delay
//! (100 ms doubling to 10 s), staying pending meanwhile, so a crash in
//! between leaves it to the broker; one refused for longer than
//! `processingTimeout` is left pending. A pending entry (refused that
//! long, or whose consumer died) is claimed again once it has been idle
//! `processingTimeout`, looked for every `redeliverInterval`
//! (`XAUTOCLAIM`). Unlike daprd, the entries a subscriber is still working
//! on (or retrying) are kept from going idle (`XCLAIM ... JUSTID`), so a
//! slow app does not get them twice, a refused message does not wait
//! `processingTimeout` to come again, and `redeliverInterval` also takes a
//! Go duration.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_pubsub::redelivery::{Backoff, deliver_until_taken_within};
use mecha_pubsub::*;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::{Settings, duration};

const FEATURES: &[Feature] = &[
    Feature::ConsumerGroups,
    Feature::CompetingConsumers,
    Feature::Durable,
    Feature::Ordered,
];

/// How long one `XREADGROUP` blocks before the reader looks again.
const BLOCK: Duration = Duration::from_secs(1);

/// The typed configuration of a `pubsub.redis` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisPubSubConfig {
    pub settings: Settings,
    /// The consumer group, and the consumer's name in it (as in daprd).
    pub consumer_id: String,
    /// How long a delivered entry stays pending before another delivery;
    /// zero turns redelivery off.
    pub processing_timeout: Duration,
    /// How often pending entries are looked at; zero turns redelivery off.
    pub redeliver_interval: Duration,
    /// The most entries read at once.
    pub queue_depth: usize,
    /// Deliveries in flight per subscription.
    pub concurrency: usize,
    /// `XADD ... MAXLEN ~ n` when not zero.
    pub max_len_approx: u64,
    /// `XADD ... MINID ~ <now - ttl>` when set (and `maxLenApprox` is not).
    pub stream_ttl: Option<Duration>,
    /// Acknowledge even what the app refused (Dapr's `ackOnError`).
    pub ack_on_error: bool,
    /// The delay of a refused message's redelivery.
    pub redelivery: Backoff,
}

impl RedisPubSubConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let settings = Settings::from_metadata(meta);
        let count = |name: &str, default: usize| {
            let value = meta.i64_or(name, default as i64);
            usize::try_from(value)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| {
                    meta.error(format!("metadata field '{name}' must be greater than zero"));
                    default
                })
        };
        let stream_ttl = meta
            .optional_duration("streamTTL", Duration::from_millis(1))
            .filter(|d| !d.is_zero());
        let max_len_approx = meta.i64_or("maxLenApprox", 0);
        if max_len_approx < 0 {
            meta.error("metadata field 'maxLenApprox' cannot be negative");
        }
        Self {
            settings,
            consumer_id: meta.required("consumerID"),
            processing_timeout: duration(meta, "processingTimeout", Duration::from_secs(60)),
            redeliver_interval: duration(meta, "redeliverInterval", Duration::from_secs(15)),
            queue_depth: count("queueDepth", 100),
            concurrency: count("concurrency", 10),
            max_len_approx: max_len_approx.max(0) as u64,
            stream_ttl,
            ack_on_error: meta.bool_or("ackOnError", false),
            redelivery: Backoff::default(),
        }
    }
}

pub const PUBSUB_REDIS: ComponentFactory<dyn PubSub, RedisPubSubConfig> = ComponentFactory::new(
    "pubsub.redis",
    |_, metadata, _| RedisPubSubConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: RedisPubSubConfig) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(Arc::new(RedisPubSub::connect(config).await?))
}

/// The `pubsub.redis` component.
pub struct RedisPubSub {
    client: redis::Client,
    commands: ConnectionManager,
    config: RedisPubSubConfig,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl RedisPubSub {
    pub async fn connect(config: RedisPubSubConfig) -> anyhow::Result<Self> {
        let (client, commands) = config.settings.connect().await?;
        Ok(Self {
            client,
            commands,
            config,
        })
    }

    /// A connection of its own, for blocking reads.
    async fn reader(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.settings.dial_timeout))
            .set_response_timeout(Some(BLOCK + self.config.settings.timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()> {
        let mut command = redis::cmd("XADD");
        command.arg(&request.topic);
        if self.config.max_len_approx > 0 {
            command
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.max_len_approx);
        } else if let Some(ttl) = self.config.stream_ttl {
            let min = now_ms().saturating_sub(ttl.as_millis());
            command.arg("MINID").arg("~").arg(format!("{min}-1"));
        }
        command.arg("*").arg("data").arg(&request.data[..]);
        if !request.metadata.is_empty() {
            command
                .arg("metadata")
                .arg(serde_json::to_string(&request.metadata)?);
        }
        let mut connection = self.commands.clone();
        command
            .query_async::<String>(&mut connection)
            .await
            .map_err(|err| anyhow::anyhow!("XADD {}: {err}", request.topic))?;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription> {
        let consumer = Arc::new(Consumer {
            commands: self.commands.clone(),
            topic: request.topic.clone(),
            group: self.config.consumer_id.clone(),
            slots: Arc::new(Semaphore::new(
                request
                    .max_in_flight
                    .unwrap_or(self.config.concurrency)
                    .clamp(1, self.config.queue_depth.max(1)),
            )),
            held: Mutex::default(),
            config: self.config.clone(),
            handler,
        });
        consumer.create_group().await?;
        let reader = self
            .reader()
            .await
            .map_err(|err| anyhow::anyhow!("cannot open the reading connection to Redis: {err}"))?;
        Ok(Subscription::spawn(move |stop| consumer.run(reader, stop)))
    }
}

/// One subscription's consumer: a reader, a reclaimer and a keeper of the
/// entries in flight, sharing the slots of `max_in_flight`.
struct Consumer {
    commands: ConnectionManager,
    topic: String,
    group: String,
    slots: Arc<Semaphore>,
    /// Entries being delivered.
    held: Mutex<HashSet<String>>,
    config: RedisPubSubConfig,
    handler: Arc<dyn Handler>,
}

fn is_error(err: &redis::RedisError, code: &str) -> bool {
    err.code() == Some(code) || err.to_string().contains(code)
}

impl Consumer {
    /// `XGROUP CREATE <topic> <group> 0 MKSTREAM`; an existing group is fine.
    async fn create_group(&self) -> anyhow::Result<()> {
        let mut connection = self.commands.clone();
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.topic)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut connection)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(err) if is_error(&err, "BUSYGROUP") => Ok(()),
            Err(err) => Err(anyhow::anyhow!(
                "creating consumer group {} on stream {}: {err}",
                self.group,
                self.topic
            )),
        }
    }

    /// Up to `max` free delivery slots, waiting for the first.
    async fn slots(&self, max: usize, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        let mut permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok()?,
            () = stop.cancelled() => return None,
        };
        let more = self.slots.available_permits().min(max.saturating_sub(1));
        if more > 0
            && let Ok(extra) = self.slots.clone().try_acquire_many_owned(more as u32)
        {
            permit.merge(extra);
        }
        Some(permit)
    }

    /// Starts delivering entries, each holding one slot.
    fn deliver_all(
        self: &Arc<Self>,
        entries: Vec<StreamId>,
        mut permit: OwnedSemaphorePermit,
        tasks: &mut JoinSet<()>,
        stop: &CancellationToken,
    ) {
        for entry in entries {
            let Some(slot) = permit.split(1) else { break };
            {
                let mut held = self.held.lock().expect("lock");
                if !held.insert(entry.id.clone()) {
                    // Already being delivered here.
                    continue;
                }
            }
            let consumer = self.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                consumer.deliver(entry, &stop).await;
                drop(slot);
            });
        }
    }

    /// Delivers one entry until the app takes it (or the subscription
    /// stops, leaving it pending), then acknowledges it.
    async fn deliver(&self, entry: StreamId, stop: &CancellationToken) {
        let field = |name: &str| entry.map.get(name).cloned();
        let data: Vec<u8> = field("data")
            .and_then(|v| redis::from_redis_value::<Vec<u8>>(v).ok())
            .unwrap_or_default();
        let metadata: Metadata = field("metadata")
            .and_then(|v| redis::from_redis_value::<String>(v).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let message = Message {
            topic: self.topic.clone(),
            data: Bytes::from(data),
            metadata,
        };
        let acknowledge = if self.config.ack_on_error {
            // Refused or not, it is acknowledged.
            let _ = self.handler.handle(message).await;
            true
        } else {
            // Retried here for up to processingTimeout; a message refused
            // longer goes back to the stream's pending list (claimed again
            // once idle), so refused messages never hold the slots forever.
            deliver_until_taken_within(
                self.handler.as_ref(),
                message,
                self.config.redelivery,
                stop,
                Some(self.config.processing_timeout).filter(|t| !t.is_zero()),
            )
            .await
        };
        if acknowledge {
            let mut connection = self.commands.clone();
            if let Err(err) = redis::cmd("XACK")
                .arg(&self.topic)
                .arg(&self.group)
                .arg(&entry.id)
                .query_async::<i64>(&mut connection)
                .await
            {
                // It stays pending and comes again: at least once.
                tracing::warn!(topic = %self.topic, id = %entry.id, "XACK failed: {err}");
            }
        }
        self.held.lock().expect("lock").remove(&entry.id);
    }

    /// Reads new entries while slots are free.
    async fn read_loop(
        self: Arc<Self>,
        mut reader: MultiplexedConnection,
        stop: CancellationToken,
    ) {
        let mut tasks = JoinSet::new();
        while let Some(permit) = self.slots(self.config.queue_depth, &stop).await {
            let count = permit.num_permits();
            // Not raced against `stop`: entries read are ours until
            // acknowledged, so the answer must not be thrown away.
            let read = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.group)
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.topic)
                .arg(">")
                .query_async::<Option<StreamReadReply>>(&mut reader)
                .await;
            match read {
                Ok(reply) => {
                    let entries = reply
                        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                        .unwrap_or_default();
                    self.deliver_all(entries, permit, &mut tasks, &stop);
                }
                Err(err) => {
                    drop(permit);
                    if is_error(&err, "NOGROUP") {
                        tracing::warn!(topic = %self.topic, "the consumer group is gone; creating it again");
                        if let Err(err) = self.create_group().await {
                            tracing::warn!("{err:#}");
                        }
                    } else {
                        tracing::warn!(topic = %self.topic, "XREADGROUP failed: {err}");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Claims entries pending longer than `processingTimeout`, every
    /// `redeliverInterval`.
    async fn reclaim_loop(self: Arc<Self>, stop: CancellationToken) {
        let (timeout, interval) = (
            self.config.processing_timeout,
            self.config.redeliver_interval,
        );
        if timeout.is_zero() || interval.is_zero() {
            return;
        }
        let mut tasks = JoinSet::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let mut start = "0-0".to_owned();
            // Claim in rounds while there is room and something to claim.
            loop {
                let Some(permit) = self.slots(self.config.queue_depth, &stop).await else {
                    break;
                };
                let mut connection = self.commands.clone();
                let claimed = redis::cmd("XAUTOCLAIM")
                    .arg(&self.topic)
                    .arg(&self.group)
                    .arg(&self.group)
                    .arg(timeout.as_millis() as u64)
                    .arg(&start)
                    .arg("COUNT")
                    .arg(permit.num_permits())
                    .query_async::<StreamAutoClaimReply>(&mut connection)
                    .await;
                match claimed {
                    Ok(reply) => {
                        let done = reply.next_stream_id == "0-0" || reply.claimed.is_empty();
                        start = reply.next_stream_id;
                        if !reply.claimed.is_empty() {
                            tracing::debug!(topic = %self.topic, count = reply.claimed.len(), "redelivering pending entries");
                        }
                        self.deliver_all(reply.claimed, permit, &mut tasks, &stop);
                        if done {
                            break;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(topic = %self.topic, "XAUTOCLAIM failed: {err}");
                        break;
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Keeps the entries in flight from going idle, so they are not
    /// claimed again while the app works on them.
    async fn keep_alive_loop(self: Arc<Self>, stop: CancellationToken) {
        if self.config.processing_timeout.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(self.config.processing_timeout / 3);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let ids: Vec<String> = self.held.lock().expect("lock").iter().cloned().collect();
            if ids.is_empty() {
                continue;
            }
            let mut connection = self.commands.clone();
            let renewed = redis::cmd("XCLAIM")
                .arg(&self.topic)
                .arg(&self.group)
                .arg(&self.group)
                .arg(0)
                .arg(&ids)
                .arg("JUSTID")
                .query_async::<Value>(&mut connection)
                .await;
            if let Err(err) = renewed {
                tracing::debug!(topic = %self.topic, "renewing entries in flight failed: {err}");
            }
        }
    }

    async fn run(self: Arc<Self>, reader: MultiplexedConnection, stop: CancellationToken) {
        let mut loops = JoinSet::new();
        loops.spawn(self.clone().read_loop(reader, stop.clone()));
        loops.spawn(self.clone().reclaim_loop(stop.clone()));
        loops.spawn(self.keep_alive_loop(stop));
        while loops.join_next().await.is_some() {}
    }
}
