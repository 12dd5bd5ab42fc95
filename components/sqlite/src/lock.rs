//! `lock.sqlite` (Mecha's own; Dapr has no equivalent): locks in a SQLite
//! file, the embedded default `lockstore` (DESIGN.md §3). The runtimes of
//! one host share it through the data directory: every try-lock is one
//! atomic statement, so two processes racing for a lock get one winner.
//! Expiry is wall-clock time in milliseconds, the same for every process on
//! the host.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_lock::*;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::connection::{Db, DbError, valid_identifier};

/// The typed configuration of a `lock.sqlite` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockConfig {
    /// A file path, `:memory:` or a `file:` URI.
    pub connection_string: String,
    pub table_name: String,
    /// The longest one operation may take.
    pub timeout: Duration,
    pub busy_timeout: Duration,
    /// How often rows of expired locks are deleted.
    pub cleanup_interval: Option<Duration>,
}

impl LockConfig {
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            table_name: "locks".into(),
            timeout: Duration::from_secs(20),
            busy_timeout: Duration::from_secs(2),
            cleanup_interval: Some(Duration::from_secs(3600)),
        }
    }

    /// Reads the metadata keys (those of `state.sqlite` where they apply),
    /// recording every problem.
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let defaults = Self::new("");
        let seconds = Duration::from_secs(1);
        let config = Self {
            connection_string: meta.required("connectionString"),
            table_name: meta.string_or("tableName", &defaults.table_name),
            timeout: meta.duration_or("timeout", defaults.timeout, seconds),
            busy_timeout: meta.duration_or("busyTimeout", defaults.busy_timeout, seconds),
            cleanup_interval: match meta.optional_duration("cleanupInterval", seconds) {
                None => defaults.cleanup_interval,
                Some(interval) if interval.is_zero() => None,
                Some(interval) => Some(interval),
            },
        };
        if !valid_identifier(&config.table_name) {
            meta.error(format!(
                "metadata field 'tableName': '{}' is not a valid table name",
                config.table_name
            ));
        }
        config
    }
}

pub const LOCK_SQLITE: ComponentFactory<dyn LockStore, LockConfig> = ComponentFactory::new(
    "lock.sqlite",
    |_, metadata, _| LockConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: LockConfig) -> anyhow::Result<Arc<dyn LockStore>> {
    Ok(SqliteLockStore::open(config).await?)
}

struct Inner {
    db: Db,
    table: String,
}

/// The `lock.sqlite` store.
pub struct SqliteLockStore {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn backend(err: impl std::fmt::Display) -> LockError {
    LockError::Backend(anyhow::anyhow!("sqlite: {err}"))
}

impl From<DbError> for LockError {
    fn from(err: DbError) -> Self {
        LockError::Backend(err.into())
    }
}

impl SqliteLockStore {
    pub async fn open(config: LockConfig) -> anyhow::Result<Arc<Self>> {
        let table = config.table_name.clone();
        let target = config.connection_string.clone();
        let db = tokio::task::spawn_blocking(move || {
            let db = Db::open(&target, config.busy_timeout, true, config.timeout)
                .map_err(|err| anyhow::anyhow!("cannot open sqlite database '{target}': {err}"))?;
            db.writer_blocking(|conn| {
                conn.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS \"{table}\" (
                        key TEXT NOT NULL PRIMARY KEY,
                        owner TEXT NOT NULL,
                        expires_at INTEGER NOT NULL
                    );"
                ))
            })?;
            anyhow::Ok(db)
        })
        .await??;
        let store = Arc::new(Self {
            inner: Arc::new(Inner {
                db,
                table: config.table_name.clone(),
            }),
        });
        if let Some(interval) = config.cleanup_interval {
            spawn_cleanup(Arc::downgrade(&store.inner), interval);
        }
        Ok(store)
    }
}

#[async_trait]
impl LockStore for SqliteLockStore {
    async fn try_lock(&self, req: &TryLockRequest) -> Result<bool, LockError> {
        let inner = self.inner.clone();
        let req = req.clone();
        self.inner
            .db
            .run(true, move |conn| {
                let now = now_ms();
                let until = now.saturating_add(req.expiry.as_millis() as i64);
                // One statement: a free or expired lock is taken, a held one
                // is left alone.
                let changed = conn
                    .prepare_cached(&format!(
                        "INSERT INTO \"{table}\" (key, owner, expires_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
                         WHERE \"{table}\".expires_at <= ?4",
                        table = inner.table
                    ))
                    .and_then(|mut stmt| stmt.execute(params![req.key, req.owner, until, now]))
                    .map_err(backend)?;
                Ok(changed == 1)
            })
            .await
    }

    async fn unlock(&self, req: &UnlockRequest) -> Result<UnlockStatus, LockError> {
        let inner = self.inner.clone();
        let req = req.clone();
        self.inner
            .db
            .run(true, move |conn| {
                let table = &inner.table;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?;
                let held: Option<(String, i64)> = tx
                    .query_row(
                        &format!("SELECT owner, expires_at FROM \"{table}\" WHERE key = ?1"),
                        [&req.key],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .map_err(backend)?;
                let status = match held {
                    Some((_, expires_at)) if expires_at <= now_ms() => {
                        UnlockStatus::LockDoesNotExist
                    }
                    None => UnlockStatus::LockDoesNotExist,
                    Some((owner, _)) if owner != req.owner => UnlockStatus::LockBelongsToOthers,
                    Some(_) => {
                        tx.execute(
                            &format!("DELETE FROM \"{table}\" WHERE key = ?1"),
                            [&req.key],
                        )
                        .map_err(backend)?;
                        UnlockStatus::Success
                    }
                };
                tx.commit().map_err(backend)?;
                Ok(status)
            })
            .await
    }
}

/// Deletes the rows of locks that expired (a lock taken again reuses its
/// row; this keeps rows of resources never locked again from piling up).
fn spawn_cleanup(inner: Weak<Inner>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            let table = inner.table.clone();
            let deleted = inner
                .db
                .run(true, move |conn| {
                    conn.execute(
                        &format!("DELETE FROM \"{table}\" WHERE expires_at <= ?1"),
                        [now_ms()],
                    )
                    .map_err(backend)
                })
                .await;
            if let Err(err) = deleted {
                tracing::warn!(error = %err, "lock cleanup failed");
            }
        }
    });
}
