//! `scheduler.sqlite` (Mecha's own; daprd's scheduler is a service on
//! etcd): the scheduler store in a SQLite file, the embedded default
//! (`scheduler.db` in the data directory, DESIGN.md §3), shared by the
//! runtimes of one host. Rows are indexed by partition and due time, so a
//! claim reads the earliest due rows and never scans the table. A claim is
//! one immediate transaction (one writer at a time on the file), so two
//! processes never claim one row. Registrations that arrive together are
//! written in one transaction, with the settlements of fires that end
//! together: one commit (and one sync) for the batch.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_scheduler::{JobStore, Row, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{Db, DbError, valid_identifier};

/// The typed configuration of a `scheduler.sqlite` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// A file path, `:memory:` or a `file:` URI.
    pub connection_string: String,
    pub table_name: String,
    /// The longest one operation may take.
    pub timeout: Duration,
    pub busy_timeout: Duration,
}

impl SchedulerConfig {
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            table_name: "jobs".into(),
            timeout: Duration::from_secs(20),
            busy_timeout: Duration::from_secs(5),
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

pub const SCHEDULER_SQLITE: ComponentFactory<dyn JobStore, SchedulerConfig> = ComponentFactory::new(
    "scheduler.sqlite",
    |_, metadata, _| SchedulerConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: SchedulerConfig) -> anyhow::Result<Arc<dyn JobStore>> {
    Ok(SqliteJobStore::open(config).await?)
}

/// Writes made together at most.
const WRITE_BATCH: usize = 512;

/// A write for the next batch: a registration, or the settlement of a
/// fire.
enum Write {
    Put {
        row: Row,
        overwrite: bool,
    },
    Settle {
        key: String,
        version: i64,
        next: Option<(i64, Vec<u8>)>,
    },
}

/// Answered once the write's batch is committed: whether it changed a row.
type Done = oneshot::Sender<Result<bool, StoreError>>;

/// The `scheduler.sqlite` store.
pub struct SqliteJobStore {
    db: Arc<Db>,
    table: Arc<str>,
    writes: mpsc::UnboundedSender<(Write, Done)>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(anyhow::anyhow!("sqlite: {err}"))
}

fn db_error(err: DbError) -> StoreError {
    StoreError::Backend(err.into())
}

const COLUMNS: &str = "key, partition, due, version, body";

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        key: row.get(0)?,
        partition: row.get(1)?,
        due: row.get(2)?,
        version: row.get(3)?,
        body: row.get(4)?,
    })
}

impl SqliteJobStore {
    pub async fn open(config: SchedulerConfig) -> anyhow::Result<Arc<Self>> {
        let table = config.table_name.clone();
        let target = config.connection_string.clone();
        let db = tokio::task::spawn_blocking(move || {
            let db = Db::open(&target, config.busy_timeout, true, config.timeout)
                .map_err(|err| anyhow::anyhow!("cannot open sqlite database '{target}': {err}"))?;
            db.writer_blocking(|conn| {
                conn.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS \"{table}\" (
                        key TEXT NOT NULL PRIMARY KEY,
                        partition TEXT NOT NULL,
                        due INTEGER NOT NULL,
                        version INTEGER NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE INDEX IF NOT EXISTS \"{table}_due\" ON \"{table}\" (partition, due);"
                ))
            })?;
            anyhow::Ok(db)
        })
        .await??;
        let db = Arc::new(db);
        let table: Arc<str> = config.table_name.into();
        let (writes, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(db.clone(), table.clone(), pending));
        Ok(Arc::new(Self { db, table, writes }))
    }

    async fn run<T: Send + 'static>(
        &self,
        write: bool,
        work: impl FnOnce(&mut Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let table = self.table.clone();
        self.db
            .run(write, move |conn| {
                work(conn, &table).map_err(|err| DbError::Failed(err.to_string()))
            })
            .await
            .map_err(db_error)
    }

    /// Queues `write` for the next batch and waits for its commit.
    async fn write(&self, write: Write) -> Result<bool, StoreError> {
        let (done, answer) = oneshot::channel();
        self.writes
            .send((write, done))
            .map_err(|_| backend("the store is closed"))?;
        answer.await.map_err(|_| backend("the store is closed"))?
    }
}

/// Writes registrations and settlements as they come, each batch in one
/// transaction (one commit and one sync for all of them).
async fn write_batches(
    db: Arc<Db>,
    table: Arc<str>,
    mut pending: mpsc::UnboundedReceiver<(Write, Done)>,
) {
    let mut received = Vec::with_capacity(WRITE_BATCH);
    while pending.recv_many(&mut received, WRITE_BATCH).await > 0 {
        let (batch, waiting): (Vec<Write>, Vec<Done>) = received.drain(..).unzip();
        let table = table.clone();
        let written = db
            .run(true, move |conn| {
                write_rows(conn, &table, &batch).map_err(|err| DbError::Failed(err.to_string()))
            })
            .await;
        match written {
            Ok(changed) => {
                for (done, changed) in waiting.into_iter().zip(changed) {
                    let _ = done.send(Ok(changed));
                }
            }
            Err(err) => {
                let message = err.to_string();
                for done in waiting {
                    let _ = done.send(Err(backend(&message)));
                }
            }
        }
    }
}

fn write_rows(conn: &mut Connection, table: &str, batch: &[Write]) -> rusqlite::Result<Vec<bool>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO \"{table}\" ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO NOTHING"
        ))?;
        let mut replace = tx.prepare_cached(&format!(
            "INSERT INTO \"{table}\" ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, due = excluded.due, \
             version = excluded.version, body = excluded.body"
        ))?;
        let mut reschedule = tx.prepare_cached(&format!(
            "UPDATE \"{table}\" SET due = ?1, body = ?2, version = version + 1 \
             WHERE key = ?3 AND version = ?4"
        ))?;
        let mut end = tx.prepare_cached(&format!(
            "DELETE FROM \"{table}\" WHERE key = ?1 AND version = ?2"
        ))?;
        for write in batch {
            let changed = match write {
                Write::Put { row, overwrite } => {
                    let statement = if *overwrite {
                        &mut replace
                    } else {
                        &mut insert
                    };
                    statement.execute(params![
                        row.key,
                        row.partition,
                        row.due,
                        row.version,
                        row.body
                    ])?
                }
                Write::Settle {
                    key,
                    version,
                    next: Some((due, body)),
                } => reschedule.execute(params![due, body, key, version])?,
                Write::Settle {
                    key,
                    version,
                    next: None,
                } => end.execute(params![key, version])?,
            };
            outcome.push(changed == 1);
        }
    }
    tx.commit()?;
    Ok(outcome)
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn put(&self, row: &Row, overwrite: bool) -> Result<bool, StoreError> {
        let row = row.clone();
        self.write(Write::Put { row, overwrite }).await
    }

    async fn get(&self, key: &str) -> Result<Option<Row>, StoreError> {
        let key = key.to_owned();
        self.run(false, move |conn, table| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM \"{table}\" WHERE key = ?1"))?
                .query_row([key], read_row)
                .optional()
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(true, move |conn, table| {
            let deleted = conn
                .prepare_cached(&format!("DELETE FROM \"{table}\" WHERE key = ?1"))?
                .execute([key])?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn list(&self, partition: &str) -> Result<Vec<Row>, StoreError> {
        let partition = partition.to_owned();
        self.run(false, move |conn, table| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM \"{table}\" WHERE partition = ?1 ORDER BY key"
            ))?
            .query_map([partition], read_row)?
            .collect()
        })
        .await
    }

    async fn delete_prefix(&self, partition: &str, key_prefix: &str) -> Result<u64, StoreError> {
        let (partition, prefix) = (partition.to_owned(), key_prefix.to_owned());
        self.run(true, move |conn, table| {
            let deleted = conn
                .prepare_cached(&format!(
                    "DELETE FROM \"{table}\" WHERE partition = ?1 AND substr(key, 1, length(?2)) = ?2"
                ))?
                .execute(params![partition, prefix])?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn claim(
        &self,
        partition: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let partition = partition.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(true, move |conn, table| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut claimed: Vec<Row> = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM \"{table}\" WHERE partition = ?1 AND due <= ?2 \
                     ORDER BY due LIMIT ?3"
                ))?
                .query_map(params![partition, now, limit], read_row)?
                .collect::<rusqlite::Result<_>>()?;
            {
                let mut update = tx.prepare_cached(&format!(
                    "UPDATE \"{table}\" SET due = ?1, version = ?2 WHERE key = ?3"
                ))?;
                for row in &mut claimed {
                    row.due = lease_until;
                    row.version = row.version.wrapping_add(1);
                    update.execute(params![row.due, row.version, row.key])?;
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn extend(&self, claims: &[(String, i64)], until: i64) -> Result<(), StoreError> {
        let claims = claims.to_vec();
        self.run(true, move |conn, table| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut update = tx.prepare_cached(&format!(
                    "UPDATE \"{table}\" SET due = ?1 WHERE key = ?2 AND version = ?3"
                ))?;
                for (key, version) in &claims {
                    update.execute(params![until, key, version])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn settle(
        &self,
        key: &str,
        version: i64,
        next: Option<(i64, &[u8])>,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let next = next.map(|(due, body)| (due, body.to_vec()));
        self.write(Write::Settle { key, version, next }).await
    }

    async fn next_due(&self, partition: &str) -> Result<Option<i64>, StoreError> {
        let partition = partition.to_owned();
        self.run(false, move |conn, table| {
            conn.prepare_cached(&format!(
                "SELECT due FROM \"{table}\" WHERE partition = ?1 ORDER BY due LIMIT 1"
            ))?
            .query_row([partition], |row| row.get(0))
            .optional()
        })
        .await
    }
}
