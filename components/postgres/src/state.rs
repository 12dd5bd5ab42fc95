//! `state.postgresql`, both of daprd's versions, chosen by `spec.version`:
//!
//! - **v1** (the default): Dapr's `state` table (`key`, `value jsonb`,
//!   `isbinary`, `insertdate`, `updatedate`, `expiredate`), the row's
//!   `xmin` as ETag, and the query API translated to `jsonb` operators;
//! - **v2**: `{tablePrefix}state` (`key`, `value bytea`, `etag uuid`,
//!   `created_at`, `updated_at`, `expires_at`), no query API.
//!
//! Both keep daprd's tables and its `dapr_metadata` rows (migration level,
//! last cleanup), so a database written by daprd opens in Mecha and back.
//! TTL, first-write and transactions (in one SQL transaction) on both.
//! Where Mecha differs: first-write over an existing row is an ETag
//! mismatch (daprd: a plain error); an ETag on a missing row is a mismatch;
//! a malformed v2 ETag is reported as such; queries see only the app's own
//! keys and never an expired row, and compare JSON values by type (daprd
//! compares their text).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::{ComponentContext, ComponentFactory, MetadataReader};
use mecha_state::codec::{from_json_column, to_json_column};
use mecha_state::query::sql::{self, Dialect, JsonType, SqlParam};
use mecha_state::*;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection as _, Row};

use crate::conninfo;

/// The table layout, from `spec.version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    V1,
    V2,
}

/// The longest stored key (with its app prefix) the `key text PRIMARY KEY`
/// column takes: PostgreSQL's btree holds entries of at most 2704 bytes (a
/// third of a page, less its headers) and refuses longer keys unless they
/// compress, so a key's fate would depend on its letters. Refused the same
/// way before the database sees it.
const MAX_KEY_BYTES: usize = 2600;

/// The typed configuration of a `state.postgresql` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStateConfig {
    pub layout: Layout,
    pub connection_string: String,
    /// The state table (v1 `tableName`; v2 `tablePrefix` + `state`).
    pub table: String,
    /// v2's `tablePrefix` (it names v2's rows in the metadata table).
    pub table_prefix: String,
    pub metadata_table: String,
    /// The longest one operation may take.
    pub timeout: Duration,
    /// How often expired rows are deleted; `None` disables it.
    pub cleanup_interval: Option<Duration>,
    pub max_connections: Option<u32>,
    pub idle_timeout: Option<Duration>,
}

/// `name` or `schema.name`, letters, digits and `_`: written into SQL
/// unquoted, as daprd does, so PostgreSQL folds it to lower case the same.
pub(crate) fn valid_table_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl PgStateConfig {
    /// Reads Dapr's metadata keys for the version, recording every problem.
    pub fn from_metadata(layout: Layout, meta: &MetadataReader<'_>) -> Self {
        let seconds = Duration::from_secs(1);
        let connection_string = conninfo::from_metadata(meta);
        let (table, table_prefix) = match layout {
            Layout::V1 => (meta.string_or("tableName", "state"), String::new()),
            Layout::V2 => {
                let prefix = meta.string_or("tablePrefix", "");
                (format!("{prefix}state"), prefix)
            }
        };
        let metadata_table = meta.string_or("metadataTableName", "dapr_metadata");
        for (key, name) in [("table", &table), ("metadataTableName", &metadata_table)] {
            if !valid_table_name(name) {
                meta.error(format!(
                    "metadata field '{key}': '{name}' is not a valid table name (letters, digits and '_', with an optional 'schema.')"
                ));
            }
        }
        let timeout = meta
            .optional_duration("timeout", seconds)
            .or_else(|| meta.optional_duration("timeoutInSeconds", seconds))
            .unwrap_or(Duration::from_secs(20));
        if timeout < seconds {
            meta.error("metadata field 'timeout': must be at least 1s");
        }
        let cleanup_key = if meta.string("cleanupInterval").is_some() {
            "cleanupInterval"
        } else {
            "cleanupIntervalInSeconds"
        };
        let cleanup_interval = match meta.optional_duration(cleanup_key, seconds) {
            None => Some(Duration::from_secs(3600)),
            Some(interval) if interval.is_zero() => None,
            Some(interval) => Some(interval),
        };
        let max_connections = match meta.i64_or("maxConns", 0) {
            n if n > 1 => Some(n.min(u32::MAX as i64) as u32),
            _ => None,
        };
        let idle_timeout = meta
            .optional_duration("connectionMaxIdleTime", seconds)
            .filter(|d| !d.is_zero());
        if let Some(mode) = meta.string("queryExecMode")
            && !matches!(
                mode.as_str(),
                "cache_statement" | "cache_describe" | "describe_exec" | "exec" | "simple_protocol"
            )
        {
            meta.error(format!(
                "metadata field 'queryExecMode': '{mode}' is not a pgx query mode"
            ));
        }
        for unsupported in ["useAzureAD", "useAWSIAM"] {
            if meta.bool_or(unsupported, false) {
                meta.error(format!("{unsupported} is not supported yet"));
            }
        }
        Self {
            layout,
            connection_string,
            table,
            table_prefix,
            metadata_table,
            timeout,
            cleanup_interval,
            max_connections,
            idle_timeout,
        }
    }
}

pub const STATE_POSTGRESQL: ComponentFactory<dyn StateStore, PgStateConfig> =
    ComponentFactory::new("state.postgresql", configure, |config| {
        Box::pin(connect(config))
    })
    .with_versions(&["v1", "v2"]);

fn configure(
    version: &str,
    metadata: &MetadataReader<'_>,
    _ctx: &ComponentContext,
) -> PgStateConfig {
    let layout = if version == "v2" {
        Layout::V2
    } else {
        Layout::V1
    };
    PgStateConfig::from_metadata(layout, metadata)
}

async fn connect(config: PgStateConfig) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(PgStateStore::open(config).await?)
}

/// The statements of one table, formatted once.
struct Sql {
    get: String,
    bulk_get: String,
    upsert: String,
    first_write: String,
    update_with_etag: String,
    delete: String,
    delete_with_etag: String,
}

impl Sql {
    fn new(layout: Layout, table: &str) -> Self {
        match layout {
            // $1 key, $2 value (text), $3 isbinary, $4 TTL seconds, $5 etag.
            Layout::V1 => {
                let live = "(expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)";
                let expiry = "CASE WHEN $4::bigint IS NULL THEN NULL ELSE CURRENT_TIMESTAMP + $4::bigint * interval '1 second' END";
                let select = format!(
                    "SELECT key, value::text, isbinary, xmin::text, EXTRACT(EPOCH FROM expiredate)::float8 FROM {table}"
                );
                let upsert = format!(
                    "INSERT INTO {table} AS t (key, value, isbinary, expiredate) VALUES ($1, $2::jsonb, $3, {expiry}) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, isbinary = excluded.isbinary, \
                     updatedate = CURRENT_TIMESTAMP, expiredate = excluded.expiredate"
                );
                Self {
                    get: format!("{select} WHERE key = $1 AND {live}"),
                    bulk_get: format!("{select} WHERE key = ANY($1) AND {live}"),
                    first_write: format!(
                        "{upsert} WHERE t.expiredate IS NOT NULL AND t.expiredate <= CURRENT_TIMESTAMP"
                    ),
                    upsert,
                    update_with_etag: format!(
                        "UPDATE {table} SET value = $2::jsonb, isbinary = $3, updatedate = CURRENT_TIMESTAMP, \
                         expiredate = {expiry} WHERE key = $1 AND xmin::text = $5 AND {live}"
                    ),
                    delete: format!("DELETE FROM {table} WHERE key = $1"),
                    delete_with_etag: format!(
                        "DELETE FROM {table} WHERE key = $1 AND xmin::text = $2 AND {live}"
                    ),
                }
            }
            // $1 key, $2 value (bytea), $3 new etag, $4 TTL seconds, $5 etag.
            Layout::V2 => {
                let live = "(expires_at IS NULL OR expires_at > now())";
                let expiry = "CASE WHEN $4::bigint IS NULL THEN NULL ELSE now() + $4::bigint * interval '1 second' END";
                let select = format!(
                    "SELECT key, value, false, etag::text, EXTRACT(EPOCH FROM expires_at)::float8 FROM {table}"
                );
                let upsert = format!(
                    "INSERT INTO {table} AS t (key, value, etag, expires_at) VALUES ($1, $2, $3::uuid, {expiry}) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, \
                     updated_at = now(), expires_at = excluded.expires_at"
                );
                Self {
                    get: format!("{select} WHERE key = $1 AND {live}"),
                    bulk_get: format!("{select} WHERE key = ANY($1) AND {live}"),
                    first_write: format!(
                        "{upsert} WHERE t.expires_at IS NOT NULL AND t.expires_at <= now()"
                    ),
                    upsert,
                    update_with_etag: format!(
                        "UPDATE {table} SET value = $2, etag = $3::uuid, updated_at = now(), \
                         expires_at = {expiry} WHERE key = $1 AND etag = $5::uuid AND {live}"
                    ),
                    delete: format!("DELETE FROM {table} WHERE key = $1"),
                    delete_with_etag: format!(
                        "DELETE FROM {table} WHERE key = $1 AND etag = $2::uuid AND {live}"
                    ),
                }
            }
        }
    }
}

/// The `state.postgresql` store.
pub struct PgStateStore {
    pool: PgPool,
    sql: Sql,
    config: PgStateConfig,
}

fn backend(err: impl std::fmt::Display) -> StateError {
    StateError::Backend(anyhow::anyhow!("postgresql: {err}"))
}

impl PgStateStore {
    /// Connects, creates the tables if needed (under an advisory lock, so
    /// stores and runtimes starting together do not race), and starts the
    /// cleanup.
    pub async fn open(config: PgStateConfig) -> anyhow::Result<Arc<Self>> {
        let info = conninfo::parse(&config.connection_string).map_err(anyhow::Error::msg)?;
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get() as u32);
        let pool = PgPoolOptions::new()
            .max_connections(
                config
                    .max_connections
                    .or(info.pool.max_connections)
                    .unwrap_or(cpus.max(4)),
            )
            .min_connections(info.pool.min_connections.unwrap_or(0))
            .max_lifetime(info.pool.max_lifetime.or(Some(Duration::from_secs(3600))))
            .idle_timeout(
                config
                    .idle_timeout
                    .or(info.pool.idle_timeout)
                    .or(Some(Duration::from_secs(1800))),
            )
            .acquire_timeout(config.timeout)
            .connect_lazy_with(info.options);
        let store = Arc::new(Self {
            sql: Sql::new(config.layout, &config.table),
            pool,
            config,
        });
        let connect_timeout = info.pool.connect_timeout.unwrap_or(store.config.timeout);
        tokio::time::timeout(connect_timeout, store.migrate())
            .await
            .map_err(|_| anyhow::anyhow!("postgresql: no answer within {connect_timeout:?}"))??;
        if let Some(interval) = store.config.cleanup_interval {
            support::spawn_cleanup(Arc::downgrade(&store), interval, move |store| async move {
                cleanup_round(&store, interval).await
            });
        }
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let config = &self.config;
        let (table, meta) = (&config.table, &config.metadata_table);
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // One lock for every store: two stores may share a metadata table.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mecha-state-migrations'))")
            .execute(&mut *tx)
            .await?;
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {meta} (key text NOT NULL PRIMARY KEY, value text NOT NULL)"
        )];
        let bare = table.rsplit('.').next().unwrap_or(table);
        let (level_key, level) = match config.layout {
            Layout::V1 => {
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, value jsonb NOT NULL, \
                     isbinary boolean NOT NULL, insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(), \
                     updatedate TIMESTAMP WITH TIME ZONE NULL, expiredate TIMESTAMP WITH TIME ZONE NULL)"
                ));
                statements.push(format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS expiredate TIMESTAMP WITH TIME ZONE NULL"
                ));
                ("migrations".to_owned(), 2)
            }
            Layout::V2 => {
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, value bytea NOT NULL, \
                     etag uuid NOT NULL, created_at timestamp with time zone NOT NULL DEFAULT now(), \
                     updated_at timestamp with time zone, expires_at timestamp with time zone)"
                ));
                statements.push(format!(
                    "CREATE INDEX IF NOT EXISTS {bare}_expires_at_idx ON {table} (expires_at)"
                ));
                (format!("migrations-state-v2-{}", config.table_prefix), 1)
            }
        };
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        // The migration level daprd keeps, so daprd does not run its own
        // migrations again over these tables.
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {meta} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value \
             WHERE {meta}.value !~ '^[0-9]+$' OR {meta}.value::bigint < excluded.value::bigint"
        )))
        .bind(level_key)
        .bind(level.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        support::within("postgresql", self.config.timeout, work).await
    }

    fn check_etag(&self, etag: &str) -> Result<(), StateError> {
        let valid = match self.config.layout {
            Layout::V1 => etag.parse::<u32>().is_ok(),
            Layout::V2 => uuid::Uuid::try_parse(etag).is_ok(),
        };
        if valid {
            Ok(())
        } else {
            Err(StateError::EtagInvalid(format!(
                "'{etag}' is not an etag of this store"
            )))
        }
    }

    async fn set_one(&self, conn: &mut PgConnection, req: &SetRequest) -> Result<(), StateError> {
        if req.key.len() > MAX_KEY_BYTES {
            return Err(StateError::KeyTooLong(MAX_KEY_BYTES));
        }
        let statement = match (&req.etag, req.concurrency) {
            (Some(etag), _) => {
                self.check_etag(etag)?;
                &self.sql.update_with_etag
            }
            (None, Concurrency::FirstWrite) => &self.sql.first_write,
            (None, Concurrency::LastWrite) => &self.sql.upsert,
        };
        let mut query = sqlx::query(AssertSqlSafe(statement.as_str())).bind(&req.key);
        query = match self.config.layout {
            Layout::V1 => {
                let (text, binary) = to_json_column(&req.value);
                query.bind(text).bind(binary)
            }
            Layout::V2 => query
                .bind(req.value.to_vec())
                .bind(uuid::Uuid::new_v4().to_string()),
        };
        query = query.bind(support::ttl_seconds(req.ttl));
        if let Some(etag) = &req.etag {
            query = query.bind(canonical_etag(etag));
        }
        let changed = query.execute(conn).await.map_err(backend)?.rows_affected();
        if changed == 0 {
            return Err(StateError::EtagMismatch);
        }
        Ok(())
    }

    async fn delete_one(
        &self,
        conn: &mut PgConnection,
        req: &DeleteRequest,
    ) -> Result<(), StateError> {
        match &req.etag {
            Some(etag) => {
                self.check_etag(etag)?;
                let changed = sqlx::query(AssertSqlSafe(self.sql.delete_with_etag.as_str()))
                    .bind(&req.key)
                    .bind(canonical_etag(etag))
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

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StateError> {
        self.pool.acquire().await.map_err(backend)
    }
}

/// An etag as the database writes it (`0042` is `42` for `xmin`).
fn canonical_etag(etag: &str) -> String {
    match etag.parse::<u32>() {
        Ok(n) => n.to_string(),
        Err(_) => etag.to_ascii_lowercase(),
    }
}

/// A row of `get`: key, value, binary flag, etag, expiry (epoch seconds).
fn read_row(row: &PgRow, layout: Layout) -> Result<(String, GetResponse), StateError> {
    let key: String = row.try_get(0).map_err(backend)?;
    let data = match layout {
        Layout::V1 => {
            let text: String = row.try_get(1).map_err(backend)?;
            let binary: bool = row.try_get(2).map_err(backend)?;
            from_json_column(&text, binary).map_err(backend)?
        }
        Layout::V2 => Bytes::from(row.try_get::<Vec<u8>, _>(1).map_err(backend)?),
    };
    let etag: String = row.try_get(3).map_err(backend)?;
    let expires: Option<f64> = row.try_get(4).map_err(backend)?;
    let mut metadata = Metadata::new();
    // An expiry of `infinity` (written by hand) is no expiry.
    if let Some(after) = expires
        .filter(|e| *e > 0.0)
        .and_then(|e| Duration::try_from_secs_f64(e).ok())
    {
        let at = UNIX_EPOCH + after;
        metadata.insert(
            TTL_EXPIRE_TIME_KEY.to_owned(),
            mecha_core::units::format_rfc3339(at),
        );
    }
    Ok((
        key,
        GetResponse {
            data,
            etag: Some(etag),
            metadata,
        },
    ))
}

#[async_trait]
impl StateStore for PgStateStore {
    fn features(&self) -> &[Feature] {
        match self.config.layout {
            Layout::V1 => &[
                Feature::Etag,
                Feature::Transactional,
                Feature::Ttl,
                Feature::QueryApi,
            ],
            Layout::V2 => &[Feature::Etag, Feature::Transactional, Feature::Ttl],
        }
    }

    fn reformats_json(&self) -> bool {
        self.config.layout == Layout::V1
    }

    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        self.timed(async {
            let row = sqlx::query(AssertSqlSafe(self.sql.get.as_str()))
                .bind(&req.key)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
            row.map(|row| read_row(&row, self.config.layout).map(|(_, item)| item))
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
        let keys: Vec<String> = reqs.iter().map(|req| req.key.clone()).collect();
        let result = self
            .timed(async {
                let rows = sqlx::query(AssertSqlSafe(self.sql.bulk_get.as_str()))
                    .bind(&keys)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.iter()
                    .map(|row| read_row(row, self.config.layout))
                    .collect::<Result<std::collections::HashMap<_, _>, _>>()
            })
            .await;
        match result {
            Ok(found) => keys.iter().map(|key| Ok(found.get(key).cloned())).collect(),
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
        if self.config.layout != Layout::V1 {
            return Err(StateError::Unsupported(Feature::QueryApi));
        }
        self.timed(async {
            let table = &self.config.table;
            let (scope, first) = match &req.key_prefix {
                Some(_) => (" AND starts_with(key, $1)", 2),
                None => ("", 1),
            };
            let translated = sql::translate(&req.query, &Postgres, "key", first);
            let statement = format!(
                "SELECT key, value::text, xmin::text FROM {table} WHERE isbinary = false \
                 AND (expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP){scope} AND {} ORDER BY {}{}",
                translated.condition,
                translated.order_by,
                sql::limit_offset(&req.query, "ALL"),
            );
            let mut query = sqlx::query(AssertSqlSafe(statement));
            if let Some(prefix) = &req.key_prefix {
                query = query.bind(prefix);
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

/// PostgreSQL's `jsonb` operators, with text compared byte for byte
/// (`COLLATE "C"`), whatever the database's collation. A path is a chain
/// of `->` with text keys, which steps into objects only (an array is never
/// indexed), as on every other store.
struct Postgres;

impl Dialect for Postgres {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn path(&self, segments: &[String]) -> String {
        let steps: Vec<String> = segments.iter().map(|s| format!("->'{s}'")).collect();
        format!("(value{})", steps.concat())
    }
    fn number(&self, path: &str) -> String {
        format!("(CASE WHEN jsonb_typeof({path}) = 'number' THEN ({path} #>> '{{}}')::float8 END)")
    }
    fn string(&self, path: &str) -> String {
        format!(
            "((CASE WHEN jsonb_typeof({path}) = 'string' THEN {path} #>> '{{}}' END) COLLATE \"C\")"
        )
    }
    fn string_param(&self, placeholder: &str) -> String {
        format!("(CAST({placeholder} AS text) COLLATE \"C\")")
    }
    fn is(&self, path: &str, json_type: JsonType) -> String {
        match json_type {
            JsonType::True => format!("({path} = 'true'::jsonb)"),
            JsonType::False => format!("({path} = 'false'::jsonb)"),
            JsonType::Null => format!("(jsonb_typeof({path}) = 'null')"),
        }
    }
    fn present(&self, path: &str) -> String {
        format!("({path} IS NOT NULL)")
    }
    fn rank(&self, path: &str) -> String {
        format!(
            "(CASE jsonb_typeof({path}) WHEN 'number' THEN 0 WHEN 'string' THEN 1 WHEN 'boolean' THEN 2 \
             WHEN 'null' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 4 ELSE 5 END)"
        )
    }
    fn sort_text(&self, path: &str) -> String {
        format!(
            "((CASE WHEN jsonb_typeof({path}) IN ('string', 'boolean') THEN {path} #>> '{{}}' END) COLLATE \"C\")"
        )
    }
    fn key_order(&self, column: &str) -> String {
        format!("{column} COLLATE \"C\"")
    }
}

/// Deletes expired rows once per interval across every process sharing
/// the database, daprd included, claiming the round through daprd's
/// `last-cleanup` row.
/// One cleanup round; the number of rows deleted.
pub async fn cleanup_round(store: &PgStateStore, interval: Duration) -> anyhow::Result<u64> {
    let config = &store.config;
    let meta = &config.metadata_table;
    let (claim_key, expired) = match config.layout {
        Layout::V1 => (
            "last-cleanup".to_owned(),
            "expiredate IS NOT NULL AND expiredate < now()",
        ),
        Layout::V2 => (
            format!("last-cleanup-state-v2-{}", config.table_prefix),
            "expires_at IS NOT NULL AND expires_at < now()",
        ),
    };
    let claimed = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {meta} (key, value) VALUES ($1, now()::text) ON CONFLICT (key) DO UPDATE SET value = now()::text \
         WHERE (EXTRACT('epoch' FROM now() - {meta}.value::timestamp with time zone) * 1000)::bigint > $2"
    )))
    .bind(claim_key)
    .bind(interval.as_millis() as i64 - 100)
    .execute(&store.pool)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(0);
    }
    let deleted = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE {expired}",
        config.table
    )))
    .execute(&store.pool)
    .await?
    .rows_affected();
    Ok(deleted)
}

impl PgStateStore {
    /// The pool, for tests that look at the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The state table and the metadata table.
    pub fn table_names(&self) -> (&str, &str) {
        (&self.config.table, &self.config.metadata_table)
    }
}
