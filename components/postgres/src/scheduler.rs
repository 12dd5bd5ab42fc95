//! `scheduler.postgresql` (Mecha's own; daprd's scheduler is a service on
//! etcd): the scheduler store for clusters, shared by the runtimes of every
//! host. Claims take due rows with `FOR UPDATE SKIP LOCKED`, so runtimes
//! claiming at once each get other rows, and no leader is elected. Rows
//! are indexed by partition and due time. The table name is checked when
//! the component is read, so the statements that name it are safe.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_scheduler::{JobStore, Row, StoreError};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row as _};

use crate::conninfo;
use crate::state::valid_table_name;

/// The typed configuration of a `scheduler.postgresql` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgSchedulerConfig {
    pub connection_string: String,
    pub table: String,
    pub timeout: Duration,
}

impl PgSchedulerConfig {
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            table: "mecha_jobs".into(),
            timeout: Duration::from_secs(20),
        }
    }

    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let defaults = Self::new("");
        let config = Self {
            connection_string: conninfo::from_metadata(meta),
            table: meta.string_or("tableName", &defaults.table),
            timeout: meta.duration_or("timeout", defaults.timeout, Duration::from_secs(1)),
        };
        if !valid_table_name(&config.table) {
            meta.error(format!(
                "metadata field 'tableName': '{}' is not a valid table name",
                config.table
            ));
        }
        config
    }
}

pub const SCHEDULER_POSTGRESQL: ComponentFactory<dyn JobStore, PgSchedulerConfig> =
    ComponentFactory::new(
        "scheduler.postgresql",
        |_, metadata, _| PgSchedulerConfig::from_metadata(metadata),
        |config| Box::pin(connect(config)),
    );

async fn connect(config: PgSchedulerConfig) -> anyhow::Result<Arc<dyn JobStore>> {
    Ok(PgJobStore::open(config).await?)
}

/// The `scheduler.postgresql` store.
pub struct PgJobStore {
    pool: PgPool,
    table: String,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(anyhow::anyhow!("postgresql: {err}"))
}

const COLUMNS: &str = "key, partition, due, version, body";

fn read_row(row: &PgRow) -> Result<Row, sqlx::Error> {
    Ok(Row {
        key: row.try_get(0)?,
        partition: row.try_get(1)?,
        due: row.try_get(2)?,
        version: row.try_get(3)?,
        body: row.try_get(4)?,
    })
}

impl PgJobStore {
    /// Connects and creates the table if needed (under an advisory lock, so
    /// runtimes starting together do not race).
    pub async fn open(config: PgSchedulerConfig) -> anyhow::Result<Arc<Self>> {
        let info = conninfo::parse(&config.connection_string).map_err(anyhow::Error::msg)?;
        let pool = PgPoolOptions::new()
            .max_connections(info.pool.max_connections.unwrap_or(4))
            .min_connections(info.pool.min_connections.unwrap_or(0))
            .acquire_timeout(config.timeout)
            .connect_lazy_with(info.options);
        let store = Arc::new(Self {
            pool,
            table: config.table,
        });
        let connect_timeout = info.pool.connect_timeout.unwrap_or(config.timeout);
        tokio::time::timeout(connect_timeout, store.migrate())
            .await
            .map_err(|_| anyhow::anyhow!("postgresql: no answer within {connect_timeout:?}"))??;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let table = &self.table;
        let bare = table.rsplit('.').next().unwrap_or(table);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mecha-scheduler-migrations'))")
            .execute(&mut *tx)
            .await?;
        for statement in [
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, \
                 partition text NOT NULL, due bigint NOT NULL, version bigint NOT NULL, \
                 body bytea NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {bare}_due ON {table} (partition, due)"),
        ] {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl JobStore for PgJobStore {
    async fn put(&self, row: &Row, overwrite: bool) -> Result<bool, StoreError> {
        let table = &self.table;
        let conflict = if overwrite {
            "DO UPDATE SET partition = excluded.partition, due = excluded.due, \
             version = excluded.version, body = excluded.body"
        } else {
            "DO NOTHING"
        };
        let done = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) {conflict}"
        )))
        .bind(&row.key)
        .bind(&row.partition)
        .bind(row.due)
        .bind(row.version)
        .bind(&row.body)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get(&self, key: &str) -> Result<Option<Row>, StoreError> {
        let table = &self.table;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {table} WHERE key = $1"
        )))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(read_row).transpose().map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let table = &self.table;
        let done = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE key = $1")))
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list(&self, partition: &str) -> Result<Vec<Row>, StoreError> {
        let table = &self.table;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {table} WHERE partition = $1 ORDER BY key COLLATE \"C\""
        )))
        .bind(partition)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(read_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn delete_prefix(&self, partition: &str, key_prefix: &str) -> Result<u64, StoreError> {
        let table = &self.table;
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE partition = $1 AND starts_with(key, $2)"
        )))
        .bind(partition)
        .bind(key_prefix)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn claim(
        &self,
        partition: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let table = &self.table;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "WITH due AS (SELECT key, due AS was FROM {table} WHERE partition = $1 AND due <= $2 \
               ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE {table} t SET due = $4, version = t.version + 1 FROM due \
               WHERE t.key = due.key RETURNING t.key, t.partition, t.due, t.version, t.body, due.was) \
             SELECT {COLUMNS} FROM claimed ORDER BY was"
        )))
        .bind(partition)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(lease_until)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(read_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn extend(&self, claims: &[(String, i64)], until: i64) -> Result<(), StoreError> {
        let table = &self.table;
        let (keys, versions): (Vec<&str>, Vec<i64>) = claims
            .iter()
            .map(|(key, version)| (key.as_str(), *version))
            .unzip();
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} t SET due = $1 FROM unnest($2::text[], $3::bigint[]) AS c(key, version) \
             WHERE t.key = c.key AND t.version = c.version"
        )))
        .bind(until)
        .bind(&keys)
        .bind(&versions)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn settle(
        &self,
        key: &str,
        version: i64,
        next: Option<(i64, &[u8])>,
    ) -> Result<bool, StoreError> {
        let table = &self.table;
        let done = match next {
            Some((due, body)) => {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {table} SET due = $1, body = $2, version = version + 1 \
                 WHERE key = $3 AND version = $4"
                )))
                .bind(due)
                .bind(body)
                .bind(key)
                .bind(version)
                .execute(&self.pool)
                .await
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE key = $1 AND version = $2"
                )))
                .bind(key)
                .bind(version)
                .execute(&self.pool)
                .await
            }
        }
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_due(&self, partition: &str) -> Result<Option<i64>, StoreError> {
        let table = &self.table;
        let due: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT due FROM {table} WHERE partition = $1 ORDER BY due LIMIT 1"
        )))
        .bind(partition)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(due)
    }
}
