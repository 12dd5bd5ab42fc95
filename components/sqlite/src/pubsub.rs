//! `pubsub.sqlite`: Mecha's own durable broker in one SQLite file (Dapr has
//! none). It is the embedded default `pubsub` (DESIGN.md §3): the runtimes
//! of one host share its topics through the data directory, with no
//! external service.
//!
//! - A message is stored when its publish is answered, and kept until every
//!   consumer group of its topic processed it, or for `retention` at most.
//! - A consumer group (`consumerID`, the app id by default) gets every
//!   message of the topic; a new group starts at the oldest message kept.
//!   The subscribers of one group share its messages.
//! - A delivered message is leased to its subscriber for
//!   `processingTimeout` (renewed while the app works on it). Acknowledged,
//!   it is done; refused, it comes back after a back-off; if its subscriber
//!   dies, it comes back when the lease runs out: at-least-once, across
//!   crashes and restarts.
//! - Subscribers in the publishing process hear of new messages at once;
//!   those in other processes look every `pollInterval`.
//!
//! Every write goes through one queue per component, and whatever is
//! waiting is committed in one transaction (group commit), each operation
//! in its own savepoint.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_pubsub::redelivery::Backoff;
use mecha_pubsub::*;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connection::{Db, DbError, is_memory};

const FEATURES: &[Feature] = &[
    Feature::MessageTtl,
    Feature::ConsumerGroups,
    Feature::CompetingConsumers,
    Feature::Durable,
    Feature::Ordered,
];

/// The most operations committed in one transaction.
const MAX_BATCH: usize = 256;

/// The typed configuration of a `pubsub.sqlite` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubConfig {
    /// A file path or a `file:` URI (an in-memory database cannot be shared,
    /// but works within one component).
    pub connection_string: String,
    /// The consumer group.
    pub consumer_id: String,
    /// How long a delivered message is leased to its subscriber before it
    /// is given to another (renewed while the delivery runs).
    pub processing_timeout: Duration,
    /// How often subscribers look for messages published by other
    /// processes.
    pub poll_interval: Duration,
    /// How long a message is kept at most.
    pub retention: Duration,
    /// How often processed and expired messages are deleted.
    pub cleanup_interval: Duration,
    /// Deliveries in flight per subscription.
    pub in_flight: usize,
    /// The back-off of refused messages.
    pub backoff: Backoff,
    pub timeout: Duration,
    pub busy_timeout: Duration,
    pub disable_wal: bool,
}

impl PubSubConfig {
    pub fn new(connection_string: impl Into<String>, consumer_id: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            consumer_id: consumer_id.into(),
            processing_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(7 * 24 * 3600),
            cleanup_interval: Duration::from_secs(10),
            in_flight: 16,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(20),
            busy_timeout: Duration::from_secs(5),
            disable_wal: false,
        }
    }

    /// Reads the metadata keys, recording every problem. Bare numbers are
    /// milliseconds for the durations of delivery, seconds for `timeout`
    /// and `busyTimeout` (as in `state.sqlite`).
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let defaults = Self::new("", "");
        let ms = Duration::from_millis(1);
        let seconds = Duration::from_secs(1);
        let in_flight = match meta.string_or("concurrencyMode", "parallel").as_str() {
            "single" => 1,
            "parallel" => usize::try_from(meta.i64_or("concurrency", defaults.in_flight as i64))
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(defaults.in_flight),
            other => {
                meta.error(format!(
                    "metadata field 'concurrencyMode': '{other}' is neither single nor parallel"
                ));
                1
            }
        };
        let positive = |name: &str, default: Duration, unit: Duration| {
            let value = meta.duration_or(name, default, unit);
            if value.is_zero() {
                meta.error(format!("metadata field '{name}' must be greater than zero"));
                default
            } else {
                value
            }
        };
        Self {
            connection_string: meta.required("connectionString"),
            consumer_id: meta.required("consumerID"),
            processing_timeout: positive("processingTimeout", defaults.processing_timeout, ms),
            poll_interval: positive("pollInterval", defaults.poll_interval, ms),
            retention: positive("retention", defaults.retention, ms),
            cleanup_interval: positive("cleanupInterval", defaults.cleanup_interval, ms),
            in_flight,
            backoff: Backoff {
                initial: positive("backOffInitialInterval", defaults.backoff.initial, ms),
                max: positive("backOffMaxInterval", defaults.backoff.max, ms),
            },
            timeout: positive("timeout", defaults.timeout, seconds),
            busy_timeout: meta.duration_or("busyTimeout", defaults.busy_timeout, seconds),
            disable_wal: meta.bool_or("disableWAL", false),
        }
    }
}

pub const PUBSUB_SQLITE: ComponentFactory<dyn PubSub, PubSubConfig> = ComponentFactory::new(
    "pubsub.sqlite",
    |_, metadata, _| PubSubConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: PubSubConfig) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(SqlitePubSub::open(config).await?)
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS pubsub_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        data BLOB NOT NULL,
        metadata TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS pubsub_messages_topic ON pubsub_messages (topic, seq);
    CREATE TABLE IF NOT EXISTS pubsub_groups (
        topic TEXT NOT NULL,
        grp TEXT NOT NULL,
        next_seq INTEGER NOT NULL,
        PRIMARY KEY (topic, grp)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS pubsub_pending (
        topic TEXT NOT NULL,
        grp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        owner TEXT,
        PRIMARY KEY (topic, grp, seq)
    ) WITHOUT ROWID;
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A message handed to a subscriber.
struct Claimed {
    seq: i64,
    attempts: u32,
    data: Vec<u8>,
    metadata: String,
}

/// One write, and where its answer goes.
enum Op {
    Publish {
        topic: String,
        data: Bytes,
        metadata: String,
        expires_at: Option<i64>,
    },
    Claim {
        topic: String,
        group: String,
        owner: String,
        max: usize,
        lease: i64,
    },
    Ack {
        topic: String,
        group: String,
        seq: i64,
    },
    Nack {
        topic: String,
        group: String,
        seq: i64,
        visible_at: i64,
    },
    Renew {
        topic: String,
        group: String,
        owner: String,
        seqs: Vec<i64>,
        until: i64,
    },
}

enum Done {
    Nothing,
    Claimed(Vec<Claimed>),
}

type Reply = oneshot::Sender<Result<Done, String>>;

/// The write queue: operations committed together.
#[derive(Clone)]
struct Writer {
    queue: mpsc::Sender<(Op, Reply)>,
}

impl Writer {
    fn start(db: Arc<Db>) -> Self {
        let (queue, mut rx) = mpsc::channel::<(Op, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
                let outcome = db
                    .run(
                        true,
                        move |conn| -> Result<Vec<Result<Done, String>>, DbError> {
                            let failed = |err: rusqlite::Error| DbError::Failed(err.to_string());
                            let mut tx = conn
                                .transaction_with_behavior(TransactionBehavior::Immediate)
                                .map_err(failed)?;
                            let now = now_ms();
                            let results = ops
                                .into_iter()
                                .map(|op| apply_in_savepoint(&mut tx, op, now))
                                .collect();
                            tx.commit().map_err(failed)?;
                            Ok(results)
                        },
                    )
                    .await;
                match outcome {
                    Ok(results) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(result);
                        }
                    }
                    Err(err) => {
                        let text = err.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(text.clone()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    async fn run(&self, op: Op) -> Result<Done, String> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((op, reply))
            .await
            .map_err(|_| "the pub/sub database is closed".to_owned())?;
        answer
            .await
            .map_err(|_| "the pub/sub database is closed".to_owned())?
    }
}

fn apply_in_savepoint(tx: &mut Transaction<'_>, op: Op, now: i64) -> Result<Done, String> {
    let mut savepoint = tx.savepoint().map_err(|e| e.to_string())?;
    match apply(&savepoint, op, now) {
        Ok(done) => {
            savepoint.commit().map_err(|e| e.to_string())?;
            Ok(done)
        }
        Err(err) => {
            let _ = savepoint.rollback();
            Err(err.to_string())
        }
    }
}

fn apply(conn: &rusqlite::Connection, op: Op, now: i64) -> rusqlite::Result<Done> {
    match op {
        Op::Publish {
            topic,
            data,
            metadata,
            expires_at,
        } => {
            conn.prepare_cached(
                "INSERT INTO pubsub_messages (topic, data, metadata, published_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![topic, &data[..], metadata, now, expires_at])?;
            Ok(Done::Nothing)
        }
        Op::Claim {
            topic,
            group,
            owner,
            max,
            lease,
        } => claim(conn, &topic, &group, &owner, max, now, lease).map(Done::Claimed),
        Op::Ack { topic, group, seq } => {
            conn.prepare_cached(
                "DELETE FROM pubsub_pending WHERE topic = ?1 AND grp = ?2 AND seq = ?3",
            )?
            .execute(params![topic, group, seq])?;
            Ok(Done::Nothing)
        }
        Op::Nack {
            topic,
            group,
            seq,
            visible_at,
        } => {
            conn.prepare_cached(
                "UPDATE pubsub_pending SET visible_at = ?4, owner = NULL
                 WHERE topic = ?1 AND grp = ?2 AND seq = ?3",
            )?
            .execute(params![topic, group, seq, visible_at])?;
            Ok(Done::Nothing)
        }
        Op::Renew {
            topic,
            group,
            owner,
            seqs,
            until,
        } => {
            let mut renew = conn.prepare_cached(
                "UPDATE pubsub_pending SET visible_at = ?5
                 WHERE topic = ?1 AND grp = ?2 AND seq = ?3 AND owner = ?4",
            )?;
            for seq in seqs {
                renew.execute(params![topic, group, seq, owner, until])?;
            }
            Ok(Done::Nothing)
        }
    }
}

/// Leases up to `max` messages to `owner`: first those due for
/// redelivery, then new ones. Expired messages are skipped.
fn claim(
    conn: &rusqlite::Connection,
    topic: &str,
    group: &str,
    owner: &str,
    max: usize,
    now: i64,
    lease: i64,
) -> rusqlite::Result<Vec<Claimed>> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO pubsub_groups (topic, grp, next_seq) VALUES (?1, ?2, 0)",
    )?
    .execute(params![topic, group])?;
    let expired = |expires_at: Option<i64>| expires_at.is_some_and(|at| at <= now);
    let mut claimed = Vec::new();
    let limit = max as i64;
    {
        let mut due = conn.prepare_cached(
            "SELECT p.seq, p.attempts, m.data, m.metadata, m.expires_at
             FROM pubsub_pending p JOIN pubsub_messages m ON m.seq = p.seq
             WHERE p.topic = ?1 AND p.grp = ?2 AND p.visible_at <= ?3
             ORDER BY p.seq LIMIT ?4",
        )?;
        let rows = due
            .query_map(params![topic, group, now, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut take = conn.prepare_cached(
            "UPDATE pubsub_pending SET visible_at = ?4, owner = ?5, attempts = attempts + 1
             WHERE topic = ?1 AND grp = ?2 AND seq = ?3",
        )?;
        let mut forget = conn.prepare_cached(
            "DELETE FROM pubsub_pending WHERE topic = ?1 AND grp = ?2 AND seq = ?3",
        )?;
        for (seq, attempts, data, metadata, expires_at) in rows {
            if expired(expires_at) {
                forget.execute(params![topic, group, seq])?;
                continue;
            }
            take.execute(params![topic, group, seq, now + lease, owner])?;
            claimed.push(Claimed {
                seq,
                attempts: attempts + 1,
                data,
                metadata,
            });
        }
    }
    if claimed.len() < max {
        let next: i64 = conn
            .prepare_cached("SELECT next_seq FROM pubsub_groups WHERE topic = ?1 AND grp = ?2")?
            .query_row(params![topic, group], |row| row.get(0))?;
        let rows = conn
            .prepare_cached(
                "SELECT seq, data, metadata, expires_at FROM pubsub_messages
                 WHERE topic = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![topic, next, (max - claimed.len()) as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut last = None;
        let mut lease_it = conn.prepare_cached(
            "INSERT OR REPLACE INTO pubsub_pending (topic, grp, seq, attempts, visible_at, owner)
             VALUES (?1, ?2, ?3, 1, ?4, ?5)",
        )?;
        for (seq, data, metadata, expires_at) in rows {
            last = Some(seq);
            if expired(expires_at) {
                continue;
            }
            lease_it.execute(params![topic, group, seq, now + lease, owner])?;
            claimed.push(Claimed {
                seq,
                attempts: 1,
                data,
                metadata,
            });
        }
        if let Some(last) = last {
            conn.prepare_cached(
                "UPDATE pubsub_groups SET next_seq = ?3 WHERE topic = ?1 AND grp = ?2",
            )?
            .execute(params![topic, group, last + 1])?;
        }
    }
    Ok(claimed)
}

/// True when the group has a message to take: a new one, or one due for
/// redelivery. A read, so idle subscribers cost no writes.
fn has_work(
    conn: &rusqlite::Connection,
    topic: &str,
    group: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let next: Option<i64> = conn
        .prepare_cached("SELECT next_seq FROM pubsub_groups WHERE topic = ?1 AND grp = ?2")?
        .query_row(params![topic, group], |row| row.get(0))
        .optional()?;
    let new = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM pubsub_messages WHERE topic = ?1 AND seq >= ?2)",
        )?
        .query_row(params![topic, next.unwrap_or(0)], |row| {
            row.get::<_, bool>(0)
        })?;
    if new {
        return Ok(true);
    }
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM pubsub_pending WHERE topic = ?1 AND grp = ?2 AND visible_at <= ?3)",
    )?
    .query_row(params![topic, group, now], |row| row.get::<_, bool>(0))
}

/// Deletes what no group needs any more: messages past their retention or
/// their TTL, and those every group of their topic processed.
/// (Its statements are kept compiled: an idle runtime runs them every
/// `cleanupInterval`, and compiling them again each time is most of the
/// code it would touch.)
fn cleanup(conn: &mut rusqlite::Connection, retention: Duration) -> rusqlite::Result<usize> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = tx
        .prepare_cached("DELETE FROM pubsub_messages WHERE published_at < ?1 OR expires_at <= ?2")?
        .execute(params![now - millis(retention), now])?;
    deleted += tx
        .prepare_cached(
            "DELETE FROM pubsub_messages AS m
             WHERE m.seq < (SELECT MIN(g.next_seq) FROM pubsub_groups g WHERE g.topic = m.topic)
               AND NOT EXISTS \
               (SELECT 1 FROM pubsub_pending p WHERE p.topic = m.topic AND p.seq = m.seq)",
        )?
        .execute([])?;
    tx.prepare_cached(
        "DELETE FROM pubsub_pending AS p
         WHERE NOT EXISTS (SELECT 1 FROM pubsub_messages m WHERE m.seq = p.seq)",
    )?
    .execute([])?;
    tx.commit()?;
    Ok(deleted)
}

/// The `pubsub.sqlite` component.
pub struct SqlitePubSub {
    db: Arc<Db>,
    writer: Writer,
    config: PubSubConfig,
    /// Wakes this component's subscribers when it publishes.
    published: Arc<Notify>,
    cleanup: CancellationToken,
}

impl SqlitePubSub {
    /// Opens (and creates) the database.
    pub async fn open(config: PubSubConfig) -> anyhow::Result<Arc<Self>> {
        let target = config.connection_string.clone();
        let parent = Path::new(&target)
            .parent()
            .filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent
            && !is_memory(&target)
            && !target.starts_with("file:")
        {
            anyhow::ensure!(
                parent.is_dir(),
                "the folder of the database '{target}' does not exist"
            );
        }
        let (busy, wal, timeout) = (config.busy_timeout, !config.disable_wal, config.timeout);
        let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Db> {
            let db = Db::open(&target, busy, wal, timeout)
                .map_err(|err| anyhow::anyhow!("cannot open sqlite database '{target}': {err}"))?;
            db.writer_blocking(|conn| conn.execute_batch(SCHEMA))?;
            Ok(db)
        })
        .await??;
        let db = Arc::new(db);
        let cleanup = CancellationToken::new();
        spawn_cleanup(db.clone(), &config, cleanup.clone());
        Ok(Arc::new(Self {
            writer: Writer::start(db.clone()),
            db,
            config,
            published: Arc::new(Notify::new()),
            cleanup,
        }))
    }

    pub fn config(&self) -> &PubSubConfig {
        &self.config
    }
}

impl Drop for SqlitePubSub {
    fn drop(&mut self) {
        self.cleanup.cancel();
    }
}

fn spawn_cleanup(db: Arc<Db>, config: &PubSubConfig, stop: CancellationToken) {
    let (interval, retention) = (config.cleanup_interval, config.retention);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let outcome = db
                .run(true, move |conn| {
                    cleanup(conn, retention).map_err(|e| DbError::Failed(e.to_string()))
                })
                .await;
            match outcome {
                Ok(deleted) if deleted > 0 => {
                    tracing::debug!(deleted, "deleted processed messages")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "pub/sub cleanup failed"),
            }
        }
    });
}

/// The `ttlInSeconds` of a publish, if any.
fn ttl_of(metadata: &Metadata) -> anyhow::Result<Option<Duration>> {
    let Some((_, value)) = metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("ttlInSeconds"))
    else {
        return Ok(None);
    };
    match value.trim().parse::<i64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(Duration::from_secs(seconds as u64))),
        Ok(_) => Ok(None),
        Err(_) => anyhow::bail!("ttlInSeconds '{value}' is not a whole number of seconds"),
    }
}

#[async_trait]
impl PubSub for SqlitePubSub {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()> {
        let expires_at = ttl_of(&request.metadata)?.map(|ttl| now_ms() + millis(ttl));
        let metadata = serde_json::to_string(&request.metadata)?;
        self.writer
            .run(Op::Publish {
                topic: request.topic,
                data: request.data,
                metadata,
                expires_at,
            })
            .await
            .map_err(|err| anyhow::anyhow!(err))?;
        self.published.notify_waiters();
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription> {
        let consumer = Consumer {
            db: self.db.clone(),
            writer: self.writer.clone(),
            published: self.published.clone(),
            topic: request.topic,
            group: self.config.consumer_id.clone(),
            owner: uuid::Uuid::new_v4().to_string(),
            in_flight: request
                .max_in_flight
                .unwrap_or(self.config.in_flight)
                .max(1),
            lease: self.config.processing_timeout,
            poll: self.config.poll_interval,
            backoff: self.config.backoff,
            handler,
        };
        // The group exists from now on: what is published next is kept
        // for it even before its first delivery.
        consumer
            .writer
            .run(Op::Claim {
                topic: consumer.topic.clone(),
                group: consumer.group.clone(),
                owner: consumer.owner.clone(),
                max: 0,
                lease: 0,
            })
            .await
            .map_err(|err| anyhow::anyhow!("creating the consumer group: {err}"))?;
        Ok(Subscription::spawn(move |stop| {
            Arc::new(consumer).run(stop)
        }))
    }
}

/// One subscription's consumer.
struct Consumer {
    db: Arc<Db>,
    writer: Writer,
    published: Arc<Notify>,
    topic: String,
    group: String,
    owner: String,
    in_flight: usize,
    lease: Duration,
    poll: Duration,
    backoff: Backoff,
    handler: Arc<dyn Handler>,
}

impl Consumer {
    async fn claim(&self, max: usize) -> Vec<Claimed> {
        let op = Op::Claim {
            topic: self.topic.clone(),
            group: self.group.clone(),
            owner: self.owner.clone(),
            max,
            lease: millis(self.lease),
        };
        match self.writer.run(op).await {
            Ok(Done::Claimed(claimed)) => claimed,
            Ok(Done::Nothing) => Vec::new(),
            Err(err) => {
                tracing::warn!(topic = %self.topic, error = %err, "taking messages failed; trying again");
                Vec::new()
            }
        }
    }

    async fn has_work(&self) -> bool {
        let (topic, group) = (self.topic.clone(), self.group.clone());
        self.db
            .run(false, move |conn| {
                has_work(conn, &topic, &group, now_ms()).map_err(|e| DbError::Failed(e.to_string()))
            })
            .await
            .unwrap_or(true)
    }

    async fn deliver(self: Arc<Self>, claimed: Claimed) -> i64 {
        let metadata: Metadata = serde_json::from_str(&claimed.metadata).unwrap_or_default();
        let message = Message {
            topic: self.topic.clone(),
            data: Bytes::from(claimed.data),
            metadata,
        };
        let seq = claimed.seq;
        let op = match self.handler.handle(message).await {
            Ok(()) => Op::Ack {
                topic: self.topic.clone(),
                group: self.group.clone(),
                seq,
            },
            Err(_) => Op::Nack {
                topic: self.topic.clone(),
                group: self.group.clone(),
                seq,
                visible_at: now_ms() + millis(self.backoff.delay(claimed.attempts)),
            },
        };
        if let Err(err) = self.writer.run(op).await {
            // The lease runs out and the message comes again.
            tracing::warn!(topic = %self.topic, seq, error = %err, "settling a message failed");
        }
        seq
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut running = JoinSet::new();
        let mut leased: HashSet<i64> = HashSet::new();
        let mut poll = tokio::time::interval(self.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renew = tokio::time::interval(self.lease / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether a claim may find something: at start, after a full claim,
        // a local publish, or a poll that saw work.
        let mut look = true;
        loop {
            let free = self.in_flight - running.len();
            if look && free > 0 && !stop.is_cancelled() {
                let claimed = self.claim(free).await;
                look = claimed.len() == free;
                for message in claimed {
                    leased.insert(message.seq);
                    running.spawn(self.clone().deliver(message));
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok(seq) = done {
                        leased.remove(&seq);
                    }
                }
                () = self.published.notified() => look = true,
                _ = poll.tick() => {
                    if !look && running.len() < self.in_flight {
                        look = self.has_work().await;
                    }
                }
                _ = renew.tick(), if !leased.is_empty() => {
                    let op = Op::Renew {
                        topic: self.topic.clone(),
                        group: self.group.clone(),
                        owner: self.owner.clone(),
                        seqs: leased.iter().copied().collect(),
                        until: now_ms() + millis(self.lease),
                    };
                    if let Err(err) = self.writer.run(op).await {
                        tracing::warn!(topic = %self.topic, error = %err, "renewing leases failed");
                    }
                }
            }
        }
        // Let the deliveries in flight finish and settle.
        while running.join_next().await.is_some() {}
    }
}
