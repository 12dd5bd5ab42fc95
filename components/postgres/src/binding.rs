//! `bindings.postgresql` (also `bindings.postgres`): an output binding
//! running the app's SQL — `exec` (answers `rows-affected`), `query`
//! (answers the rows as a JSON array of arrays, in column order) and
//! `close` — with daprd's response metadata.
//!
//! `params` (a JSON array) fills `$1`, `$2`, ... as Unicode-escaped
//! literals the server types from their context, so a string goes into a `timestamptz` or
//! `uuid` column as pgx lets it. Values come back as pgx writes them: typed
//! numbers and booleans, JSON as JSON, times in RFC 3339, `bytea` in
//! base64, anything else as its text. Unlike daprd, a query with no rows
//! answers `[]` (daprd: `null`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use mecha_bindings::sql::{self, Dialect, SqlBackend};
use mecha_bindings::*;
use mecha_core::{ComponentFactory, MetadataReader};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row, TypeInfo, ValueRef};

use crate::conninfo;

/// The typed configuration of a `bindings.postgresql` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgBindingConfig {
    pub connection_string: String,
    pub timeout: Duration,
}

impl PgBindingConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let connection_string = conninfo::from_metadata(meta);
        for tuning in [
            "maxConns",
            "connectionMaxIdleTime",
            "connMaxIdleTime",
            "queryExecMode",
        ] {
            let _ = meta.string(tuning);
        }
        let seconds = Duration::from_secs(1);
        let timeout = meta
            .optional_duration("timeout", seconds)
            .or_else(|| meta.optional_duration("timeoutInSeconds", seconds))
            .unwrap_or(Duration::from_secs(20));
        Self {
            connection_string,
            timeout,
        }
    }
}

/// `bindings.postgresql` under its type name; [`BINDINGS_POSTGRES`] is the
/// same under the alias `bindings.postgres`.
pub const BINDINGS_POSTGRESQL: ComponentFactory<dyn Binding, PgBindingConfig> =
    ComponentFactory::new(
        "bindings.postgresql",
        |_, metadata, _| PgBindingConfig::from_metadata(metadata),
        |config| Box::pin(connect(config)),
    );

/// `bindings.postgresql` under the alias `bindings.postgres`.
pub const BINDINGS_POSTGRES: ComponentFactory<dyn Binding, PgBindingConfig> =
    BINDINGS_POSTGRESQL.named("bindings.postgres");

async fn connect(config: PgBindingConfig) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(PgBinding::open(config).await?))
}

/// The `bindings.postgresql` binding.
pub struct PgBinding {
    pool: PgPool,
}

impl Binding for PgBinding {
    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

fn backend(err: sqlx::Error) -> BindingError {
    BindingError::Backend(anyhow::anyhow!("postgresql: {err}"))
}

impl PgBinding {
    /// Connects, failing when the database cannot be reached within the
    /// timeout, as daprd's binding does at start.
    pub async fn open(config: PgBindingConfig) -> anyhow::Result<Self> {
        let info = conninfo::parse(&config.connection_string).map_err(anyhow::Error::msg)?;
        let pool = PgPoolOptions::new()
            .max_connections(info.pool.max_connections.unwrap_or(4))
            .min_connections(info.pool.min_connections.unwrap_or(0))
            .idle_timeout(info.pool.idle_timeout.or(Some(Duration::from_secs(600))))
            .acquire_timeout(config.timeout)
            .connect_lazy_with(info.options);
        drop(
            pool.acquire()
                .await
                .map_err(|err| anyhow::anyhow!("cannot connect to PostgreSQL: {err}"))?,
        );
        Ok(Self { pool })
    }
}

/// A literal of unknown type, typed by the server from where it stands.
fn literal(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(flag) => format!("'{flag}'"),
        Value::Number(number) => format!("'{number}'"),
        Value::String(text) => escaped(text),
        other => escaped(&other.to_string()),
    }
}

/// `text` as a Unicode-escaped string constant (`U&'it\0027s'`): every
/// ASCII character but letters and digits is an escape, so the literal
/// holds no quote, backslash, dollar or semicolon of its own and cannot end
/// early, whatever the statement around it is, and a server that reads
/// backslashes in strings (`standard_conforming_strings = off`) refuses it
/// instead of misreading it.
fn escaped(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("U&'");
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || !c.is_ascii() {
            out.push(c);
        } else {
            let _ = write!(out, "\\{:04X}", c as u32);
        }
    }
    out.push('\'');
    out
}

/// One value of a text-format row, as pgx renders it in JSON.
fn json_value(row: &PgRow, index: usize) -> Result<serde_json::Value, BindingError> {
    use serde_json::Value;
    let raw = row.try_get_raw(index).map_err(backend)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let type_name = raw.type_info().name().to_owned();
    let text = raw
        .as_str()
        .map_err(|err| BindingError::Backend(anyhow::anyhow!("postgresql value: {err}")))?;
    let value = match type_name.as_str() {
        "BOOL" => Value::Bool(text == "t"),
        "INT2" | "INT4" | "INT8" | "OID" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| text.into()),
        "FLOAT4" | "FLOAT8" | "NUMERIC" => number(text),
        "JSON" | "JSONB" => serde_json::from_str(text).unwrap_or_else(|_| text.into()),
        "TIMESTAMPTZ" => Value::String(timestamp(text, true)),
        "TIMESTAMP" => Value::String(timestamp(text, false)),
        "DATE" if text.len() == 10 => Value::String(format!("{text}T00:00:00Z")),
        "BYTEA" => match text.strip_prefix("\\x").map(hex) {
            Some(Some(bytes)) => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            _ => text.into(),
        },
        _ => text.into(),
    };
    Ok(value)
}

fn number(text: &str) -> serde_json::Value {
    if let Ok(int) = text.parse::<i64>() {
        return int.into();
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => serde_json::Number::from_f64(float)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| text.into()),
        // NaN and the infinities have no JSON number.
        _ => text.into(),
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    (text.len().is_multiple_of(2))
        .then(|| {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// PostgreSQL's `2024-01-02 03:04:05.5+00` as RFC 3339
/// (`2024-01-02T03:04:05.5Z`); a time without a zone is UTC, as pgx reads
/// it. Values that are not plain times (`infinity`, BC dates) are kept.
fn timestamp(text: &str, zoned: bool) -> String {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[10] != b' ' || text.ends_with(" BC") {
        return text.into();
    }
    let (date, time) = (&text[..10], &text[11..]);
    if !zoned {
        return format!("{date}T{time}Z");
    }
    let Some(sign) = time.rfind(['+', '-']) else {
        return text.into();
    };
    let (clock, offset) = time.split_at(sign);
    let offset = match offset.len() {
        3 => format!("{offset}:00"),
        6 => offset.to_owned(),
        // An offset with seconds has no RFC 3339 form.
        _ => return text.into(),
    };
    if offset == "+00:00" {
        format!("{date}T{clock}Z")
    } else {
        format!("{date}T{clock}{offset}")
    }
}

#[async_trait]
impl SqlBackend for PgBinding {
    const DIALECT: Dialect = Dialect::Postgres;

    fn literal(value: &serde_json::Value) -> String {
        literal(value)
    }

    async fn exec(&self, sql: String) -> Result<u64, BindingError> {
        let done = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn query(&self, sql: String) -> Result<Vec<serde_json::Value>, BindingError> {
        let rows = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|i| json_value(row, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(serde_json::Value::Array)
            })
            .collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl OutputBinding for PgBinding {
    fn operations(&self) -> &[&'static str] {
        sql::OPERATIONS
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError> {
        self.check_operation(&req.operation)?;
        sql::invoke(self, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_end_early() {
        assert_eq!(escaped("plain"), "U&'plain'");
        assert_eq!(escaped("it's $1"), "U&'it\\0027s\\0020\\00241'");
        assert_eq!(
            escaped("\\'; --"),
            "U&'\\005C\\0027\\003B\\0020\\002D\\002D'"
        );
        assert_eq!(escaped("é😀"), "U&'é😀'");
        assert_eq!(escaped(""), "U&''");
        assert_eq!(literal(&serde_json::json!(null)), "NULL");
        assert_eq!(literal(&serde_json::json!(1.5)), "'1.5'");
        assert_eq!(
            literal(&serde_json::json!({"a": 1})),
            "U&'\\007B\\0022a\\0022\\003A1\\007D'"
        );
    }

    #[test]
    fn times_in_rfc3339() {
        assert_eq!(
            timestamp("2024-01-02 03:04:05.5+00", true),
            "2024-01-02T03:04:05.5Z"
        );
        assert_eq!(
            timestamp("2024-01-02 03:04:05+05:30", true),
            "2024-01-02T03:04:05+05:30"
        );
        assert_eq!(
            timestamp("2024-01-02 03:04:05-08", true),
            "2024-01-02T03:04:05-08:00"
        );
        assert_eq!(
            timestamp("2024-01-02 03:04:05", false),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(timestamp("infinity", true), "infinity");
        assert_eq!(hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex("0"), None);
    }
}
