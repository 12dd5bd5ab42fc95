//! `state.mysql`, on MySQL and MariaDB: daprd's table (`id`, `value JSON`,
//! `isbinary`, `insertDate`, `updateDate`, `eTag`, `expiredate`, in that
//! order, which daprd's first-write relies on) in the database
//! `schemaName`, created if missing, and daprd's metadata table for the
//! cleanup of expired rows. ETags are UUIDs; transactions run in one SQL
//! transaction.
//!
//! Where Mecha differs: the query API (daprd's `state.mysql` has none),
//! translated to MySQL's JSON functions; keys of tables Mecha creates are
//! compared byte for byte (`utf8mb4_bin`: daprd's default collation
//! makes `A` and `a` one key); a write without a TTL keeps the row's
//! insert date (daprd's `REPLACE` resets it).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_state::codec::{from_json_column, to_json_column};
use mecha_state::query::sql::{self, Dialect, JsonType, SqlParam};
use mecha_state::*;
use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, Row};

use crate::dsn;

const FEATURES: &[Feature] = &[
    Feature::Etag,
    Feature::Transactional,
    Feature::Ttl,
    Feature::QueryApi,
];

/// The typed configuration of a `state.mysql` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MySqlStateConfig {
    pub connection_string: String,
    pub schema_name: String,
    pub table_name: String,
    pub metadata_table_name: String,
    /// A CA certificate for `tls=custom`.
    pub pem_path: Option<String>,
    pub timeout: Duration,
    /// How often expired rows are deleted; `None` disables it.
    pub cleanup_interval: Option<Duration>,
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl MySqlStateConfig {
    /// Reads Dapr's metadata keys, recording every problem.
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let seconds = Duration::from_secs(1);
        let connection_string = meta.required("connectionString");
        let parsed = (!connection_string.is_empty()).then(|| dsn::parse(&connection_string));
        if let Some(Err(err)) = &parsed {
            meta.error(format!("metadata field 'connectionString': {err}"));
        }
        let pem_path = meta.string("pemPath");
        if let Some(Ok(dsn)) = &parsed
            && dsn.custom_tls
            && pem_path.is_none()
        {
            meta.error("connectionString asks for tls=custom, which needs pemPath");
        }
        let config = Self {
            connection_string,
            schema_name: meta.string_or("schemaName", "dapr_state_store"),
            table_name: meta.string_or("tableName", "state"),
            metadata_table_name: meta.string_or("metadataTableName", "dapr_metadata"),
            pem_path,
            timeout: match meta.i64_or("timeoutInSeconds", 20) {
                n if n > 0 => Duration::from_secs(n as u64),
                _ => Duration::from_secs(20),
            },
            cleanup_interval: match meta.optional_duration("cleanupInterval", seconds) {
                None => Some(Duration::from_secs(3600)),
                Some(interval) if interval.is_zero() => None,
                Some(interval) => Some(interval),
            },
        };
        for (key, name) in [
            ("schemaName", &config.schema_name),
            ("tableName", &config.table_name),
            ("metadataTableName", &config.metadata_table_name),
        ] {
            if !valid_identifier(name) {
                meta.error(format!(
                    "metadata field '{key}': '{name}' may hold only letters, digits and '_'"
                ));
            }
        }
        config
    }
}

pub const STATE_MYSQL: ComponentFactory<dyn StateStore, MySqlStateConfig> = ComponentFactory::new(
    "state.mysql",
    |_, metadata, _| MySqlStateConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: MySqlStateConfig) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(MySqlStateStore::open(config).await?)
}

/// Live rows only.
const LIVE: &str = "(expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)";
/// The expiry of a write from a TTL in seconds (NULL: none).
const EXPIRY: &str = "DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ? SECOND)";

struct Sql {
    select: String,
    upsert: String,
    insert: String,
    delete_expired_row: String,
    update_with_etag: String,
    delete: String,
    delete_with_etag: String,
}

impl Sql {
    fn new(table: &str) -> Self {
        let columns = "(id, value, eTag, isbinary, expiredate) VALUES (?, ?, ?, ?, ";
        Self {
            select: format!(
                "SELECT id, CAST(value AS CHAR), eTag, isbinary, CAST(UNIX_TIMESTAMP(expiredate) AS SIGNED) FROM {table}"
            ),
            upsert: format!(
                "INSERT INTO {table} {columns}{EXPIRY}) ON DUPLICATE KEY UPDATE value = VALUES(value), \
                 eTag = VALUES(eTag), isbinary = VALUES(isbinary), expiredate = VALUES(expiredate)"
            ),
            insert: format!("INSERT INTO {table} {columns}{EXPIRY})"),
            delete_expired_row: format!(
                "DELETE FROM {table} WHERE id = ? AND expiredate IS NOT NULL AND expiredate <= CURRENT_TIMESTAMP"
            ),
            update_with_etag: format!(
                "UPDATE {table} SET value = ?, eTag = ?, isbinary = ?, expiredate = {EXPIRY} \
                 WHERE id = ? AND eTag = ? AND {LIVE}"
            ),
            delete: format!("DELETE FROM {table} WHERE id = ?"),
            delete_with_etag: format!("DELETE FROM {table} WHERE id = ? AND eTag = ? AND {LIVE}"),
        }
    }
}

/// The `state.mysql` store.
pub struct MySqlStateStore {
    pool: MySqlPool,
    sql: Sql,
    config: MySqlStateConfig,
    /// MySQL proper (not MariaDB): its JSON type re-formats values.
    mysql: std::sync::atomic::AtomicBool,
}

/// The longest key the `id VARCHAR(255)` column holds.
const MAX_KEY_CHARS: usize = 255;
/// The last second a `TIMESTAMP` column holds (2038-01-19 03:14:07 UTC).
const LAST_TIMESTAMP: u64 = i32::MAX as u64;

/// Refuses what the table cannot hold exactly: keys over 255 characters
/// (they would be cut, and collide), and expiry times past 2038.
fn check_fits(req: &SetRequest) -> Result<(), StateError> {
    if req.key.chars().count() > MAX_KEY_CHARS {
        return Err(StateError::KeyTooLong(MAX_KEY_CHARS));
    }
    if let Some(Ttl::Expire(after)) = req.ttl {
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now.saturating_add(after.as_secs()) > LAST_TIMESTAMP {
            return Err(StateError::InvalidTtl(
                "this store keeps expiry times up to 2038-01-19".into(),
            ));
        }
    }
    Ok(())
}

fn backend(err: impl std::fmt::Display) -> StateError {
    StateError::Backend(anyhow::anyhow!("mysql: {err}"))
}

fn is_duplicate_key(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "23000")
}

fn check_etag(etag: &str) -> Result<(), StateError> {
    uuid::Uuid::try_parse(etag)
        .map(|_| ())
        .map_err(|_| StateError::EtagInvalid(format!("'{etag}' is not an etag of this store")))
}

impl MySqlStateStore {
    /// Creates the database and tables if needed, then opens the pool on
    /// the database and starts the cleanup.
    pub async fn open(config: MySqlStateConfig) -> anyhow::Result<Arc<Self>> {
        let dsn = dsn::parse(&config.connection_string).map_err(anyhow::Error::msg)?;
        let mut options = dsn.options.clone();
        if dsn.custom_tls
            && let Some(pem) = &config.pem_path
        {
            options = options.ssl_ca(pem);
        }
        let connect_timeout = dsn.connect_timeout.unwrap_or(config.timeout);
        let schema = &config.schema_name;
        tokio::time::timeout(connect_timeout, async {
            let mut conn = MySqlConnection::connect_with(&options).await?;
            conn.execute(AssertSqlSafe(format!(
                "CREATE DATABASE IF NOT EXISTS {schema}"
            )))
            .await?;
            conn.close().await
        })
        .await
        .map_err(|_| anyhow::anyhow!("mysql: no answer within {connect_timeout:?}"))?
        .map_err(|err| anyhow::anyhow!("mysql: cannot create the database {schema}: {err}"))?;
        let variables = Arc::new(dsn.system_variables.clone());
        let pool = MySqlPoolOptions::new()
            .max_connections(
                std::thread::available_parallelism()
                    .map_or(4, |n| n.get() as u32)
                    .max(4),
            )
            .acquire_timeout(config.timeout)
            .after_connect(move |conn, _| {
                let variables = variables.clone();
                Box::pin(async move {
                    for (name, value) in variables.iter() {
                        conn.execute(AssertSqlSafe(format!("SET {name} = {value}")))
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options.database(schema));
        let store = Arc::new(Self {
            sql: Sql::new(&config.table_name),
            pool,
            config,
            mysql: Default::default(),
        });
        tokio::time::timeout(connect_timeout, store.create_tables())
            .await
            .map_err(|_| anyhow::anyhow!("mysql: no answer within {connect_timeout:?}"))??;
        if let Some(interval) = store.config.cleanup_interval {
            support::spawn_cleanup(Arc::downgrade(&store), interval, move |store| async move {
                cleanup_round(&store, interval).await
            });
        }
        Ok(store)
    }

    async fn create_tables(&self) -> anyhow::Result<()> {
        let (table, meta) = (&self.config.table_name, &self.config.metadata_table_name);
        let mut conn = self.pool.acquire().await?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut *conn)
            .await?;
        self.mysql.store(
            !version.contains("MariaDB"),
            std::sync::atomic::Ordering::Relaxed,
        );
        // Keys compared byte for byte, trailing spaces included: a NO PAD
        // binary collation where the server has one.
        let mut collation = "utf8mb4_bin".to_owned();
        for candidate in ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"] {
            let found: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.COLLATIONS WHERE COLLATION_NAME = ?",
            )
            .bind(candidate)
            .fetch_one(&mut *conn)
            .await?;
            if found > 0 {
                collation = candidate.to_owned();
                break;
            }
        }
        conn.execute(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL PRIMARY KEY, \
             value JSON NOT NULL, isbinary BOOLEAN NOT NULL, \
             insertDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             updateDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, \
             eTag VARCHAR(36) NOT NULL, expiredate TIMESTAMP NULL, INDEX expiredate_idx(expiredate))"
        )))
        .await?;
        // Tables from before daprd 1.11 have no expiry column.
        let has_expiry: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = ? AND column_name = 'expiredate'",
        )
        .bind(table)
        .fetch_one(&mut *conn)
        .await?;
        if has_expiry == 0 {
            conn.execute(AssertSqlSafe(format!(
                "ALTER TABLE {table} ADD COLUMN expiredate TIMESTAMP NULL, ADD INDEX expiredate_idx(expiredate)"
            )))
            .await?;
        }
        conn.execute(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {meta} (id VARCHAR(255) NOT NULL PRIMARY KEY, value TEXT NOT NULL)"
        )))
        .await?;
        Ok(())
    }

    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        support::within("mysql", self.config.timeout, work).await
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::MySql>, StateError> {
        self.pool.acquire().await.map_err(backend)
    }

    async fn set_one(
        &self,
        conn: &mut MySqlConnection,
        req: &SetRequest,
    ) -> Result<(), StateError> {
        check_fits(req)?;
        let (value, binary) = to_json_column(&req.value);
        let etag = uuid::Uuid::new_v4().to_string();
        let ttl = support::ttl_seconds(req.ttl);
        let changed = match (&req.etag, req.concurrency) {
            (Some(expected), _) => {
                check_etag(expected)?;
                sqlx::query(AssertSqlSafe(self.sql.update_with_etag.as_str()))
                    .bind(value)
                    .bind(etag)
                    .bind(binary)
                    .bind(ttl)
                    .bind(&req.key)
                    .bind(expected.to_ascii_lowercase())
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?
                    .rows_affected()
            }
            (None, Concurrency::FirstWrite) => {
                // An expired row counts as missing.
                sqlx::query(AssertSqlSafe(self.sql.delete_expired_row.as_str()))
                    .bind(&req.key)
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
                let inserted = sqlx::query(AssertSqlSafe(self.sql.insert.as_str()))
                    .bind(&req.key)
                    .bind(value)
                    .bind(etag)
                    .bind(binary)
                    .bind(ttl)
                    .execute(&mut *conn)
                    .await;
                match inserted {
                    Ok(done) => done.rows_affected(),
                    Err(err) if is_duplicate_key(&err) => 0,
                    Err(err) => return Err(backend(err)),
                }
            }
            (None, Concurrency::LastWrite) => sqlx::query(AssertSqlSafe(self.sql.upsert.as_str()))
                .bind(&req.key)
                .bind(value)
                .bind(etag)
                .bind(binary)
                .bind(ttl)
                .execute(&mut *conn)
                .await
                .map_err(backend)?
                .rows_affected(),
        };
        if changed == 0 {
            return Err(StateError::EtagMismatch);
        }
        Ok(())
    }

    async fn delete_one(
        &self,
        conn: &mut MySqlConnection,
        req: &DeleteRequest,
    ) -> Result<(), StateError> {
        match &req.etag {
            Some(etag) => {
                check_etag(etag)?;
                let changed = sqlx::query(AssertSqlSafe(self.sql.delete_with_etag.as_str()))
                    .bind(&req.key)
                    .bind(etag.to_ascii_lowercase())
                    .execute(conn)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                if changed == 0 {
                    return Err(StateError::EtagMismatch);
                }
            }
            None => {
                sqlx::query(AssertSqlSafe(self.sql.delete.as_str()))
                    .bind(&req.key)
                    .execute(conn)
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    /// The pool, for tests that look at the database directly.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    pub fn config(&self) -> &MySqlStateConfig {
        &self.config
    }
}

/// A row of the select: id, value, eTag, isbinary, expiry (epoch seconds).
fn read_row(row: &MySqlRow) -> Result<(String, GetResponse), StateError> {
    let key: String = row.try_get(0).map_err(backend)?;
    let text: String = row.try_get(1).map_err(backend)?;
    let binary: bool = row.try_get(3).map_err(backend)?;
    let expires: Option<i64> = row.try_get(4).map_err(backend)?;
    let mut metadata = Metadata::new();
    if let Some(epoch) = expires.filter(|e| *e > 0) {
        let at = UNIX_EPOCH + Duration::from_secs(epoch as u64);
        metadata.insert(
            TTL_EXPIRE_TIME_KEY.to_owned(),
            mecha_core::units::format_rfc3339(at),
        );
    }
    Ok((
        key,
        GetResponse {
            data: from_json_column(&text, binary).map_err(backend)?,
            etag: Some(row.try_get(2).map_err(backend)?),
            metadata,
        },
    ))
}

#[async_trait]
impl StateStore for MySqlStateStore {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    fn reformats_json(&self) -> bool {
        self.mysql.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        self.timed(async {
            let statement = format!("{} WHERE id = ? AND {LIVE}", self.sql.select);
            let row = sqlx::query(AssertSqlSafe(statement))
                .bind(&req.key)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
            row.map(|row| read_row(&row).map(|(_, item)| item))
                .transpose()
        })
        .await
    }

    /// One statement reads every key.
    async fn bulk_get(
        &self,
        reqs: &[GetRequest],
        _parallelism: usize,
    ) -> Vec<Result<Option<GetResponse>, StateError>> {
        let keys: Vec<&str> = reqs.iter().map(|req| req.key.as_str()).collect();
        let result = self
            .timed(async {
                let marks = vec!["?"; keys.len()].join(", ");
                let statement = format!("{} WHERE id IN ({marks}) AND {LIVE}", self.sql.select);
                let mut query = sqlx::query(AssertSqlSafe(statement));
                for key in &keys {
                    query = query.bind(*key);
                }
                let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
                rows.iter()
                    .map(read_row)
                    .collect::<Result<std::collections::HashMap<_, _>, _>>()
            })
            .await;
        match result {
            Ok(found) => keys
                .iter()
                .map(|key| Ok(found.get(*key).cloned()))
                .collect(),
            Err(err) => bulk_failure(keys.len(), &err),
        }
    }

    async fn set(&self, req: &SetRequest) -> Result<(), StateError> {
        self.timed(async {
            let mut conn = self.connection().await?;
            self.set_one(&mut conn, req).await
        })
        .await
    }

    async fn delete(&self, req: &DeleteRequest) -> Result<(), StateError> {
        self.timed(async {
            let mut conn = self.connection().await?;
            self.delete_one(&mut conn, req).await
        })
        .await
    }

    async fn transact(&self, ops: &[Operation], _metadata: &Metadata) -> Result<(), StateError> {
        self.timed(async {
            let mut conn = self.connection().await?;
            let mut tx = conn.begin().await.map_err(backend)?;
            for op in ops {
                match op {
                    Operation::Upsert(req) => self.set_one(&mut tx, req).await?,
                    Operation::Delete(req) => self.delete_one(&mut tx, req).await?,
                }
            }
            tx.commit().await.map_err(backend)
        })
        .await
    }

    async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, StateError> {
        self.timed(async {
            let scope = if req.key_prefix.is_some() {
                " AND LEFT(CAST(id AS BINARY), ?) = CAST(? AS BINARY)"
            } else {
                ""
            };
            let translated = sql::translate(&req.query, &MySql, "id", 1);
            let statement = format!(
                "SELECT id, CAST(value AS CHAR), eTag FROM {} WHERE isbinary = 0 AND {LIVE}{scope} AND {} ORDER BY {}{}",
                self.config.table_name,
                translated.condition,
                translated.order_by,
                sql::limit_offset(&req.query, "18446744073709551615"),
            );
            let mut query = sqlx::query(AssertSqlSafe(statement));
            if let Some(prefix) = &req.key_prefix {
                query = query.bind(prefix.len() as i64).bind(prefix);
            }
            for param in translated.params {
                query = match param {
                    SqlParam::Text(text) => query.bind(text),
                    SqlParam::Float(n) => query.bind(n),
                };
            }
            let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
            let items = rows
                .iter()
                .map(|row| {
                    Ok(QueryItem {
                        key: row.try_get(0).map_err(backend)?,
                        data: Bytes::from(row.try_get::<String, _>(1).map_err(backend)?),
                        etag: Some(row.try_get(2).map_err(backend)?),
                    })
                })
                .collect::<Result<Vec<_>, StateError>>()?;
            Ok(QueryResponse::page(&req.query, items))
        })
        .await
    }
}

/// MySQL's and MariaDB's JSON functions (MariaDB's `JSON` is text with a
/// check, so values are read through `JSON_EXTRACT` either way), with text
/// compared as bytes whatever the collation.
struct MySql;

fn extract(path: &str) -> String {
    format!("JSON_EXTRACT(value, {path})")
}

impl Dialect for MySql {
    fn placeholder(&self, _index: usize) -> String {
        "?".into()
    }
    fn path(&self, segments: &[String]) -> String {
        let quoted: Vec<String> = segments.iter().map(|s| format!(".\"{s}\"")).collect();
        format!("'${}'", quoted.concat())
    }
    fn number(&self, path: &str) -> String {
        let x = extract(path);
        format!(
            "(CASE WHEN JSON_TYPE({x}) IN ('INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER') \
             THEN CAST(JSON_UNQUOTE({x}) AS DOUBLE) END)"
        )
    }
    fn string(&self, path: &str) -> String {
        let x = extract(path);
        format!("(CASE WHEN JSON_TYPE({x}) = 'STRING' THEN CAST(JSON_UNQUOTE({x}) AS BINARY) END)")
    }
    fn string_param(&self, placeholder: &str) -> String {
        format!("CAST({placeholder} AS BINARY)")
    }
    fn is(&self, path: &str, json_type: JsonType) -> String {
        let x = extract(path);
        match json_type {
            JsonType::True => {
                format!("(JSON_TYPE({x}) = 'BOOLEAN' AND JSON_UNQUOTE({x}) = 'true')")
            }
            JsonType::False => {
                format!("(JSON_TYPE({x}) = 'BOOLEAN' AND JSON_UNQUOTE({x}) = 'false')")
            }
            JsonType::Null => format!("(JSON_TYPE({x}) = 'NULL')"),
        }
    }
    fn present(&self, path: &str) -> String {
        format!("({} IS NOT NULL)", extract(path))
    }
    fn rank(&self, path: &str) -> String {
        format!(
            "(CASE JSON_TYPE({}) WHEN 'INTEGER' THEN 0 WHEN 'DOUBLE' THEN 0 WHEN 'DECIMAL' THEN 0 \
             WHEN 'UNSIGNED INTEGER' THEN 0 WHEN 'STRING' THEN 1 WHEN 'BOOLEAN' THEN 2 WHEN 'NULL' THEN 3 \
             WHEN 'OBJECT' THEN 4 WHEN 'ARRAY' THEN 4 ELSE 5 END)",
            extract(path)
        )
    }
    fn sort_text(&self, path: &str) -> String {
        let x = extract(path);
        format!(
            "(CASE WHEN JSON_TYPE({x}) IN ('STRING', 'BOOLEAN') THEN CAST(JSON_UNQUOTE({x}) AS BINARY) END)"
        )
    }
    fn key_order(&self, column: &str) -> String {
        format!("CAST({column} AS BINARY)")
    }
}

/// Deletes expired rows once per interval across every process sharing
/// the database, daprd included, claiming the round through daprd's
/// `last-cleanup` row.
/// One cleanup round; the number of rows deleted.
pub async fn cleanup_round(store: &MySqlStateStore, interval: Duration) -> anyhow::Result<u64> {
    let meta = &store.config.metadata_table_name;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {meta} (id, value) VALUES ('last-cleanup', '1970-01-01 00:00:01') \
         ON DUPLICATE KEY UPDATE id = id"
    )))
    .execute(&store.pool)
    .await?;
    let claimed = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {meta} SET value = CURRENT_TIMESTAMP WHERE id = 'last-cleanup' \
         AND CURRENT_TIMESTAMP > DATE_ADD(value, INTERVAL ? MICROSECOND)"
    )))
    .bind((interval.as_micros() as i64 - 100_000).max(0))
    .execute(&store.pool)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(0);
    }
    let deleted = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE expiredate IS NOT NULL AND expiredate <= CURRENT_TIMESTAMP",
        store.config.table_name
    )))
    .execute(&store.pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
