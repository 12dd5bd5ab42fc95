//! `state.sqlite`: a durable state store in one SQLite file, with ETags,
//! first-write, TTL, transactions and the query API (translated to SQLite's
//! JSON functions; daprd's `state.sqlite` has no query API).
//!
//! The table layout is Dapr's own (`key, value, is_binary, etag,
//! expiration_time, update_time`), so a database written by daprd's
//! `state.sqlite` can be opened by Mecha and the other way round.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_state::query::sql::{self, Dialect, JsonType, SqlParam};
use mecha_state::*;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use crate::connection::{Db, DbError, is_memory, valid_identifier};

const FEATURES: &[Feature] = &[
    Feature::Etag,
    Feature::Transactional,
    Feature::Ttl,
    Feature::QueryApi,
];

/// The typed configuration of a `state.sqlite` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// A file path, `:memory:` or a `file:` URI.
    pub connection_string: String,
    pub table_name: String,
    pub metadata_table_name: String,
    /// The longest one operation may take.
    pub timeout: Duration,
    /// How often expired rows are deleted; `None` disables it.
    pub cleanup_interval: Option<Duration>,
    pub busy_timeout: Duration,
    pub disable_wal: bool,
}

impl StateConfig {
    /// A configuration with Dapr's defaults for the given database.
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            table_name: "state".into(),
            metadata_table_name: "metadata".into(),
            timeout: Duration::from_secs(20),
            cleanup_interval: Some(Duration::from_secs(3600)),
            busy_timeout: Duration::from_secs(2),
            disable_wal: false,
        }
    }

    /// Reads Dapr's `state.sqlite` metadata keys, recording every problem.
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let defaults = Self::new("");
        let seconds = Duration::from_secs(1);
        // `timeoutInSeconds` is the older spelling of `timeout`.
        let legacy_timeout = meta.optional_duration("timeoutInSeconds", seconds);
        let timeout = meta
            .optional_duration("timeout", seconds)
            .or(legacy_timeout)
            .unwrap_or(defaults.timeout);
        // Unlike daprd (which disables it by default), expired rows are
        // cleaned up hourly unless told otherwise; zero or less disables it.
        // `cleanupIntervalInSeconds` is the older spelling.
        let cleanup_key = if meta.string("cleanupInterval").is_some() {
            "cleanupInterval"
        } else {
            "cleanupIntervalInSeconds"
        };
        let cleanup_interval = match meta.string(cleanup_key) {
            None => defaults.cleanup_interval,
            Some(_) => meta
                .optional_duration(cleanup_key, seconds)
                .filter(|d| !d.is_zero()),
        };
        let config = Self {
            connection_string: meta.required("connectionString"),
            table_name: meta.string_or("tableName", &defaults.table_name),
            metadata_table_name: meta.string_or("metadataTableName", &defaults.metadata_table_name),
            timeout: if timeout.is_zero() {
                defaults.timeout
            } else {
                timeout
            },
            cleanup_interval,
            busy_timeout: meta.duration_or("busyTimeout", defaults.busy_timeout, seconds),
            disable_wal: meta.bool_or("disableWAL", false),
        };
        for (key, name) in [
            ("tableName", &config.table_name),
            ("metadataTableName", &config.metadata_table_name),
        ] {
            if !valid_identifier(name) {
                meta.error(format!(
                    "metadata field '{key}': '{name}' is not a valid table name (letters, digits, '_' and '.')"
                ));
            }
        }
        if config.table_name == config.metadata_table_name {
            meta.error("tableName and metadataTableName must differ");
        }
        config
    }
}

pub const STATE_SQLITE: ComponentFactory<dyn StateStore, StateConfig> = ComponentFactory::new(
    "state.sqlite",
    |_, metadata, _| StateConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: StateConfig) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(SqliteStateStore::open(config).await?)
}

/// SQL statements for one table, formatted once.
struct Sql {
    get: String,
    update_with_etag: String,
    insert_first_write: String,
    upsert: String,
    delete_with_etag: String,
    delete: String,
}

/// SQL for "now", in the text format `expiration_time` uses.
const NOT_EXPIRED: &str = "(expiration_time IS NULL OR expiration_time > CURRENT_TIMESTAMP)";
/// The expiry of a write: parameter 5 holds the TTL in seconds, or NULL.
const EXPIRY: &str =
    "CASE WHEN ?5 IS NULL THEN NULL ELSE DATETIME(CURRENT_TIMESTAMP, '+' || ?5 || ' seconds') END";

impl Sql {
    fn new(table: &str) -> Self {
        let insert = format!(
            "INSERT INTO \"{table}\" (key, value, is_binary, etag, expiration_time, update_time) \
             VALUES (?1, ?2, ?3, ?4, {EXPIRY}, CURRENT_TIMESTAMP) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, is_binary = excluded.is_binary, \
             etag = excluded.etag, expiration_time = excluded.expiration_time, \
             update_time = CURRENT_TIMESTAMP"
        );
        Self {
            get: format!(
                "SELECT value, is_binary, etag, expiration_time FROM \"{table}\" \
                 WHERE key = ?1 AND {NOT_EXPIRED}"
            ),
            update_with_etag: format!(
                "UPDATE \"{table}\" SET value = ?2, is_binary = ?3, etag = ?4, \
                 expiration_time = {EXPIRY}, update_time = CURRENT_TIMESTAMP \
                 WHERE key = ?1 AND etag = ?6 AND {NOT_EXPIRED}"
            ),
            // An expired row counts as missing, so first-write may replace it.
            insert_first_write: format!(
                "{insert} WHERE \"{table}\".expiration_time IS NOT NULL \
                 AND \"{table}\".expiration_time <= CURRENT_TIMESTAMP"
            ),
            upsert: insert,
            delete_with_etag: format!(
                "DELETE FROM \"{table}\" WHERE key = ?1 AND etag = ?2 AND {NOT_EXPIRED}"
            ),
            delete: format!("DELETE FROM \"{table}\" WHERE key = ?1"),
        }
    }
}

struct Inner {
    db: Db,
    sql: Sql,
    config: StateConfig,
}

/// The `state.sqlite` store.
pub struct SqliteStateStore {
    inner: Arc<Inner>,
}

fn backend(err: impl std::fmt::Display) -> StateError {
    StateError::Backend(anyhow::anyhow!("sqlite: {err}"))
}

impl From<DbError> for StateError {
    fn from(err: DbError) -> Self {
        StateError::Backend(err.into())
    }
}

impl SqliteStateStore {
    /// Opens (creating if needed) the database and its tables, and starts
    /// the cleanup of expired rows.
    pub async fn open(config: StateConfig) -> anyhow::Result<Arc<Self>> {
        let inner = tokio::task::spawn_blocking(move || open_blocking(config)).await??;
        let store = Arc::new(Self {
            inner: Arc::new(inner),
        });
        if let Some(interval) = store.inner.config.cleanup_interval {
            support::spawn_cleanup(
                Arc::downgrade(&store.inner),
                interval,
                move |inner| async move { cleanup_round(&inner, interval).await.map(|n| n as u64) },
            );
        }
        Ok(store)
    }

    /// Runs `work` with this table's statements, within the time limit.
    async fn run<T, F>(&self, write: bool, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Sql) -> Result<T, StateError> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.inner
            .db
            .run(write, move |conn| work(conn, &inner.sql))
            .await
    }
}

fn open_blocking(config: StateConfig) -> anyhow::Result<Inner> {
    let target = config.connection_string.as_str();
    let parent = Path::new(target)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent
        && !is_memory(target)
        && !target.starts_with("file:")
    {
        anyhow::ensure!(
            parent.is_dir(),
            "the folder of the database '{target}' does not exist"
        );
    }
    let db = Db::open(
        target,
        config.busy_timeout,
        !config.disable_wal,
        config.timeout,
    )
    .map_err(|err| anyhow::anyhow!("cannot open sqlite database '{target}': {err}"))?;
    let table = &config.table_name;
    let meta_table = &config.metadata_table_name;
    let schema = format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (
            key TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL,
            is_binary BOOLEAN NOT NULL,
            etag TEXT NOT NULL,
            expiration_time TIMESTAMP DEFAULT NULL,
            update_time TIMESTAMP DEFAULT NULL
        );
        CREATE INDEX IF NOT EXISTS \"{table}_expiration_time_idx\" ON \"{table}\" (expiration_time);
        CREATE TABLE IF NOT EXISTS \"{meta_table}\" (
            key TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        );"
    );
    db.writer_blocking(|conn| conn.execute_batch(&schema))?;
    Ok(Inner {
        db,
        sql: Sql::new(table),
        config,
    })
}

/// Rows deleted per statement by the cleanup, so that other writers (in
/// this process and in others sharing the file) are never held up long.
const CLEANUP_BATCH: usize = 1000;

/// One round of deleting expired rows, at most once per interval across
/// every process sharing the database, daprd included: the round is claimed
/// through the `last-cleanup` row of the metadata table, as daprd claims
/// it, then rows are deleted in batches, each its own statement.
async fn cleanup_round(inner: &Arc<Inner>, interval: Duration) -> anyhow::Result<usize> {
    let config = inner.config.clone();
    let claimed = inner
        .db
        .run(true, move |conn| -> anyhow::Result<bool> {
            Ok(claim_cleanup(conn, &config, interval)?)
        })
        .await?;
    if !claimed {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let table = inner.config.table_name.clone();
        let deleted = inner
            .db
            .run(true, move |conn| -> anyhow::Result<usize> {
                Ok(delete_expired(conn, &table)?)
            })
            .await?;
        total += deleted;
        if deleted < CLEANUP_BATCH {
            return Ok(total);
        }
    }
}

/// Claims this round unless any process cleaned up within the interval (one
/// second of slack absorbs timer jitter).
fn claim_cleanup(
    conn: &Connection,
    config: &StateConfig,
    interval: Duration,
) -> rusqlite::Result<bool> {
    let claimed = conn.execute(
        &format!(
            "INSERT INTO \"{meta}\" (key, value) VALUES ('last-cleanup', CURRENT_TIMESTAMP) \
             ON CONFLICT (key) DO UPDATE SET value = CURRENT_TIMESTAMP \
             WHERE unixepoch(CURRENT_TIMESTAMP) - unixepoch(\"{meta}\".value) >= ?1",
            meta = config.metadata_table_name
        ),
        params![interval.as_secs().saturating_sub(1) as i64],
    )?;
    Ok(claimed > 0)
}

fn delete_expired(conn: &Connection, table: &str) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "DELETE FROM \"{table}\" WHERE rowid IN (SELECT rowid FROM \"{table}\" \
             WHERE expiration_time IS NOT NULL AND expiration_time <= CURRENT_TIMESTAMP LIMIT {CLEANUP_BATCH})"
        ),
        [],
    )
}

/// Stores UTF-8 as text and anything else as base64, as daprd does.
fn encode(value: &Bytes) -> (String, bool) {
    match std::str::from_utf8(value) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (BASE64.encode(value), true),
    }
}

fn check_etag(etag: &str) -> Result<(), StateError> {
    uuid::Uuid::try_parse(etag)
        .map(|_| ())
        .map_err(|_| StateError::EtagInvalid(format!("'{etag}' is not an etag of this store")))
}

fn get_one(conn: &Connection, sql: &Sql, key: &str) -> Result<Option<GetResponse>, StateError> {
    let mut stmt = conn.prepare_cached(&sql.get).map_err(backend)?;
    let row = stmt
        .query_row([key], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })
        .optional()
        .map_err(backend)?;
    let Some((value, is_binary, etag, expires)) = row else {
        return Ok(None);
    };
    let data = if is_binary {
        Bytes::from(BASE64.decode(value.as_bytes()).map_err(backend)?)
    } else {
        Bytes::from(value.into_bytes())
    };
    let mut metadata = Metadata::new();
    if let Some(expires) = expires {
        // SQLite's "YYYY-MM-DD HH:MM:SS" (UTC) as RFC 3339.
        metadata.insert(
            TTL_EXPIRE_TIME_KEY.to_owned(),
            expires.replacen(' ', "T", 1) + "Z",
        );
    }
    Ok(Some(GetResponse {
        data,
        etag: Some(etag),
        metadata,
    }))
}

fn set_one(conn: &Connection, sql: &Sql, req: &SetRequest) -> Result<(), StateError> {
    let (value, is_binary) = encode(&req.value);
    let new_etag = uuid::Uuid::new_v4().to_string();
    let ttl = support::ttl_seconds(req.ttl);
    let changed = match (&req.etag, req.concurrency) {
        (Some(etag), _) => {
            check_etag(etag)?;
            let mut stmt = conn
                .prepare_cached(&sql.update_with_etag)
                .map_err(backend)?;
            stmt.execute(params![req.key, value, is_binary, new_etag, ttl, etag])
        }
        (None, Concurrency::FirstWrite) => {
            let mut stmt = conn
                .prepare_cached(&sql.insert_first_write)
                .map_err(backend)?;
            stmt.execute(params![req.key, value, is_binary, new_etag, ttl])
        }
        (None, Concurrency::LastWrite) => {
            let mut stmt = conn.prepare_cached(&sql.upsert).map_err(backend)?;
            stmt.execute(params![req.key, value, is_binary, new_etag, ttl])
        }
    }
    .map_err(backend)?;
    if changed == 0 {
        return Err(StateError::EtagMismatch);
    }
    Ok(())
}

fn delete_one(conn: &Connection, sql: &Sql, req: &DeleteRequest) -> Result<(), StateError> {
    match &req.etag {
        Some(etag) => {
            check_etag(etag)?;
            let mut stmt = conn
                .prepare_cached(&sql.delete_with_etag)
                .map_err(backend)?;
            if stmt.execute(params![req.key, etag]).map_err(backend)? == 0 {
                return Err(StateError::EtagMismatch);
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(&sql.delete).map_err(backend)?;
            stmt.execute([&req.key]).map_err(backend)?;
        }
    }
    Ok(())
}

#[async_trait]
impl StateStore for SqliteStateStore {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        let key = req.key.clone();
        self.run(false, move |conn, sql| get_one(conn, sql, &key))
            .await
    }

    async fn bulk_get(
        &self,
        reqs: &[GetRequest],
        _parallelism: usize,
    ) -> Vec<Result<Option<GetResponse>, StateError>> {
        // One trip to the blocking pool reads every key.
        let keys: Vec<String> = reqs.iter().map(|req| req.key.clone()).collect();
        let count = keys.len();
        let result = self
            .run(false, move |conn, sql| {
                Ok(keys.iter().map(|key| get_one(conn, sql, key)).collect())
            })
            .await;
        match result {
            Ok(results) => results,
            Err(err) => bulk_failure(count, &err),
        }
    }

    async fn set(&self, req: &SetRequest) -> Result<(), StateError> {
        let req = req.clone();
        self.run(true, move |conn, sql| set_one(conn, sql, &req))
            .await
    }

    async fn delete(&self, req: &DeleteRequest) -> Result<(), StateError> {
        let req = req.clone();
        self.run(true, move |conn, sql| delete_one(conn, sql, &req))
            .await
    }

    async fn bulk_set(&self, reqs: &[SetRequest]) -> Result<(), StateError> {
        let reqs = reqs.to_vec();
        self.run(true, move |conn, sql| {
            combine_bulk_errors(
                reqs.iter()
                    .filter_map(|req| set_one(conn, sql, req).err())
                    .collect(),
            )
        })
        .await
    }

    async fn bulk_delete(&self, reqs: &[DeleteRequest]) -> Result<(), StateError> {
        let reqs = reqs.to_vec();
        self.run(true, move |conn, sql| {
            combine_bulk_errors(
                reqs.iter()
                    .filter_map(|req| delete_one(conn, sql, req).err())
                    .collect(),
            )
        })
        .await
    }

    async fn transact(&self, ops: &[Operation], _metadata: &Metadata) -> Result<(), StateError> {
        let ops = ops.to_vec();
        self.run(true, move |conn, sql| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            for op in &ops {
                match op {
                    Operation::Upsert(req) => set_one(&tx, sql, req)?,
                    Operation::Delete(req) => delete_one(&tx, sql, req)?,
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, StateError> {
        // The statement and its parameters are made here, so that the
        // blocking thread needs no copy of the request (an `IN` list of
        // 10,000 values is megabytes).
        let (statement, params) = query_statement(&self.inner.config.table_name, req);
        let rows = self
            .run(false, move |conn, _| query_rows(conn, &statement, params))
            .await?;
        Ok(QueryResponse::page(&req.query, rows))
    }
}

/// SQLite's JSON functions. A text value that is not JSON makes them fail,
/// so each reads the document only when it is valid (SQLite does not
/// promise to evaluate `AND` in order).
struct Sqlite;

const DOC: &str = "(CASE WHEN json_valid(value) THEN value END)";

impl Dialect for Sqlite {
    fn placeholder(&self, index: usize) -> String {
        format!("?{index}")
    }
    fn path(&self, segments: &[String]) -> String {
        let quoted: Vec<String> = segments.iter().map(|s| format!(".\"{s}\"")).collect();
        format!("'${}'", quoted.concat())
    }
    fn number(&self, path: &str) -> String {
        format!(
            "(CASE WHEN json_type({DOC}, {path}) IN ('integer', 'real') THEN json_extract({DOC}, {path}) END)"
        )
    }
    fn string(&self, path: &str) -> String {
        format!(
            "(CASE WHEN json_type({DOC}, {path}) = 'text' THEN json_extract({DOC}, {path}) END)"
        )
    }
    fn is(&self, path: &str, json_type: JsonType) -> String {
        let name = match json_type {
            JsonType::True => "true",
            JsonType::False => "false",
            JsonType::Null => "null",
        };
        format!("(json_type({DOC}, {path}) = '{name}')")
    }
    fn present(&self, path: &str) -> String {
        format!("(json_type({DOC}, {path}) IS NOT NULL)")
    }
    fn rank(&self, path: &str) -> String {
        format!(
            "(CASE json_type({DOC}, {path}) WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 \
             WHEN 'true' THEN 2 WHEN 'false' THEN 2 WHEN 'null' THEN 3 WHEN 'object' THEN 4 \
             WHEN 'array' THEN 4 ELSE 5 END)"
        )
    }
    fn sort_text(&self, path: &str) -> String {
        format!(
            "(CASE json_type({DOC}, {path}) WHEN 'text' THEN json_extract({DOC}, {path}) \
             WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)"
        )
    }
    fn key_order(&self, column: &str) -> String {
        column.to_owned()
    }
}

/// The `SELECT` for `req` and its parameters.
fn query_statement(table: &str, req: &QueryRequest) -> (String, Vec<rusqlite::types::Value>) {
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    let mut scope = String::new();
    if let Some(prefix) = &req.key_prefix {
        // A range on the primary key: every key starting with the prefix.
        scope = " AND key >= ?1 AND key < ?2".into();
        params.push(prefix.clone().into());
        params.push(sql::prefix_end(prefix).into());
    }
    let translated = sql::translate(&req.query, &Sqlite, "key", params.len() + 1);
    params.extend(translated.params.into_iter().map(|param| match param {
        SqlParam::Text(text) => rusqlite::types::Value::Text(text),
        SqlParam::Float(n) => rusqlite::types::Value::Real(n),
    }));
    let statement = format!(
        "SELECT key, value, etag FROM \"{table}\" WHERE is_binary = 0 AND {NOT_EXPIRED}{scope} \
         AND json_valid(value) AND {} ORDER BY {}{}",
        translated.condition,
        translated.order_by,
        sql::limit_offset(&req.query, "-1"),
    );
    (statement, params)
}

fn query_rows(
    conn: &Connection,
    statement: &str,
    params: Vec<rusqlite::types::Value>,
) -> Result<Vec<QueryItem>, StateError> {
    let mut stmt = conn.prepare(statement).map_err(backend)?;
    stmt.query_map(params_from_iter(params), |row| {
        Ok(QueryItem {
            key: row.get(0)?,
            data: Bytes::from(row.get::<_, String>(1)?.into_bytes()),
            etag: Some(row.get(2)?),
        })
    })
    .map_err(backend)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(backend)
}
