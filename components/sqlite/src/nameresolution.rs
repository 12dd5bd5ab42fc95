//! `nameresolution.sqlite`: an address book of runtimes in a SQLite file, for
//! runtimes on one host (Mecha's self-hosted default, in the data
//! directory). Each runtime keeps a row fresh with heartbeats; a lookup
//! returns the runtimes whose row is fresh.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_nameresolution::{NameResolver, Registration};
use rusqlite::params;

use crate::connection::{Db, valid_identifier};

/// The typed configuration of `nameresolution.sqlite` (Dapr's keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameResolutionConfig {
    pub connection_string: String,
    pub table_name: String,
    pub timeout: Duration,
    pub busy_timeout: Duration,
    /// How often a runtime refreshes its row; a row older than this is
    /// dead. Heartbeats go out at half this interval.
    pub update_interval: Duration,
    /// How often rows of dead runtimes are deleted.
    pub cleanup_interval: Duration,
}

impl NameResolutionConfig {
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            table_name: "hosts".into(),
            timeout: Duration::from_secs(1),
            busy_timeout: Duration::from_millis(800),
            update_interval: Duration::from_secs(5),
            cleanup_interval: Duration::from_secs(3600),
        }
    }

    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let defaults = Self::new("");
        let seconds = Duration::from_secs(1);
        let cleanup_key = if meta.string("cleanupInterval").is_some() {
            "cleanupInterval"
        } else {
            "cleanupIntervalInSeconds"
        };
        // daprd's metadata table is accepted; this address book needs none.
        let _ = meta.string("metadataTableName");
        let config = Self {
            connection_string: meta.required("connectionString"),
            table_name: meta.string_or("tableName", &defaults.table_name),
            timeout: meta.duration_or("timeout", defaults.timeout, seconds),
            busy_timeout: meta.duration_or("busyTimeout", defaults.busy_timeout, seconds),
            update_interval: meta.duration_or("updateInterval", defaults.update_interval, seconds),
            cleanup_interval: meta.duration_or(cleanup_key, defaults.cleanup_interval, seconds),
        };
        if !valid_identifier(&config.table_name) {
            meta.error(format!(
                "metadata field 'tableName': '{}' is not a valid table name",
                config.table_name
            ));
        }
        if config.update_interval < Duration::from_millis(200) {
            meta.error("metadata field 'updateInterval' must be at least 200ms");
        }
        config
    }
}

pub const NAMERESOLUTION_SQLITE: ComponentFactory<dyn NameResolver, NameResolutionConfig> =
    ComponentFactory::new(
        "nameresolution.sqlite",
        |_, metadata, _| NameResolutionConfig::from_metadata(metadata),
        |config| Box::pin(connect(config)),
    );

async fn connect(config: NameResolutionConfig) -> anyhow::Result<Arc<dyn NameResolver>> {
    Ok(SqliteNameResolver::open(config).await?)
}

/// This runtime's row, while registered.
struct Registered {
    id: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

pub struct SqliteNameResolver {
    db: Arc<Db>,
    config: NameResolutionConfig,
    registered: Mutex<Option<Registered>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl SqliteNameResolver {
    pub async fn open(config: NameResolutionConfig) -> anyhow::Result<Arc<Self>> {
        let cfg = config.clone();
        let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Db> {
            let db = Db::open(&cfg.connection_string, cfg.busy_timeout, true, cfg.timeout)?;
            let table = &cfg.table_name;
            db.writer_blocking(|conn| {
                conn.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS \"{table}\" (
                        registration_id TEXT NOT NULL PRIMARY KEY,
                        address TEXT NOT NULL,
                        app_id TEXT NOT NULL,
                        namespace TEXT NOT NULL DEFAULT '',
                        last_update INTEGER NOT NULL
                    );
                    CREATE INDEX IF NOT EXISTS \"{table}_app_idx\" ON \"{table}\" (app_id, namespace, last_update);"
                ))
            })?;
            Ok(db)
        })
        .await??;
        Ok(Arc::new(Self {
            db: Arc::new(db),
            config,
            registered: Mutex::new(None),
        }))
    }

    /// Deletes rows of runtimes dead for a while (a minute, or ten update
    /// intervals if longer).
    async fn delete_dead(db: &Db, table: String, interval: Duration) -> anyhow::Result<usize> {
        let cutoff = now_ms() - (interval.as_millis() as i64 * 10).max(60_000);
        db.run(true, move |conn| -> anyhow::Result<usize> {
            Ok(conn.execute(
                &format!("DELETE FROM \"{table}\" WHERE last_update < ?1"),
                [cutoff],
            )?)
        })
        .await
    }
}

#[async_trait]
impl NameResolver for SqliteNameResolver {
    /// Every runtime it finds shares this host's data directory.
    fn host_local(&self) -> bool {
        true
    }

    async fn register(&self, registration: &Registration) -> anyhow::Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        let host = registration
            .host
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into());
        let address = format!("{host}:{}", registration.port);
        let app_id = registration.app_id.clone();
        let namespace = registration.namespace.clone().unwrap_or_default();
        let table = self.config.table_name.clone();
        let upsert = format!(
            "INSERT INTO \"{table}\" (registration_id, address, app_id, namespace, last_update) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (registration_id) DO UPDATE SET last_update = excluded.last_update"
        );
        let row = (id.clone(), address, app_id, namespace);
        // The statement is kept compiled: the heartbeat runs it every few
        // seconds of an idle runtime's life.
        let write = move |conn: &mut rusqlite::Connection| -> anyhow::Result<usize> {
            let mut statement = conn.prepare_cached(&upsert)?;
            Ok(statement.execute(params![row.0, row.1, row.2, row.3, now_ms()])?)
        };
        self.db.run(true, write.clone()).await?;
        let _ = Self::delete_dead(&self.db, table.clone(), self.config.update_interval).await;

        // Heartbeats; a row lost (deleted by hand, or by a cleanup after a
        // long pause) is written again rather than left missing.
        let db = self.db.clone();
        let every = self.config.update_interval / 2;
        let cleanup_every = self.config.cleanup_interval;
        let interval = self.config.update_interval;
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut last_cleanup = tokio::time::Instant::now();
            tick.tick().await;
            loop {
                tick.tick().await;
                let beat = db.run(true, write.clone()).await;
                if let Err(err) = beat {
                    tracing::warn!(error = %err, "name resolution heartbeat failed");
                }
                if last_cleanup.elapsed() >= cleanup_every {
                    last_cleanup = tokio::time::Instant::now();
                    let _ = Self::delete_dead(&db, table.clone(), interval).await;
                }
            }
        });
        let previous = self
            .registered
            .lock()
            .expect("lock")
            .replace(Registered { id, heartbeat });
        if let Some(previous) = previous {
            previous.heartbeat.abort();
        }
        Ok(())
    }

    async fn resolve(&self, app_id: &str, namespace: Option<&str>) -> anyhow::Result<Vec<String>> {
        let fresh_after = now_ms() - self.config.update_interval.as_millis() as i64;
        let (app_id, namespace) = (app_id.to_owned(), namespace.unwrap_or_default().to_owned());
        let query = format!(
            "SELECT address FROM \"{}\" WHERE app_id = ?1 AND namespace = ?2 AND last_update > ?3 ORDER BY address",
            self.config.table_name
        );
        self.db
            .run(false, move |conn| -> anyhow::Result<Vec<String>> {
                let mut stmt = conn.prepare_cached(&query)?;
                let rows =
                    stmt.query_map(params![app_id, namespace, fresh_after], |row| row.get(0))?;
                Ok(rows.collect::<Result<Vec<String>, _>>()?)
            })
            .await
    }

    async fn close(&self) -> anyhow::Result<()> {
        let registered = self.registered.lock().expect("lock").take();
        if let Some(Registered { id, heartbeat }) = registered {
            heartbeat.abort();
            let query = format!(
                "DELETE FROM \"{}\" WHERE registration_id = ?1",
                self.config.table_name
            );
            self.db
                .run(true, move |conn| -> anyhow::Result<usize> {
                    Ok(conn.execute(&query, [id])?)
                })
                .await?;
        }
        Ok(())
    }
}

impl Drop for SqliteNameResolver {
    fn drop(&mut self) {
        if let Some(registered) = self.registered.lock().expect("lock").take() {
            registered.heartbeat.abort();
        }
    }
}
