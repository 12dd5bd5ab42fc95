//! `bindings.mysql`: an output binding running the app's SQL on MySQL or
//! MariaDB — `exec` (answers `rows-affected`), `query` (answers the rows
//! as a JSON array of objects by column name) and `close` — with daprd's
//! response metadata.
//!
//! `params` (a JSON array) fills the `?` placeholders as literals: numbers
//! and booleans as themselves, strings as hexadecimal `utf8mb4` text, so no
//! value can end its literal early. Where Mecha differs from daprd, for the
//! better: `DECIMAL`, `DATETIME` and the other types Go's driver hands over
//! as raw bytes come back as numbers and text (daprd: base64 of the text),
//! a `NULL` column is `null` (daprd leaves it out), and a query with no rows
//! answers `[]` (daprd: `null`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use mecha_bindings::sql::{self, Dialect, SqlBackend};
use mecha_bindings::*;
use mecha_core::{ComponentFactory, MetadataReader};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, Column, Executor, Row, TypeInfo, ValueRef};

use crate::dsn;

/// The typed configuration of a `bindings.mysql` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MySqlBindingConfig {
    /// The Go driver DSN (`url`).
    pub url: String,
    pub pem_path: Option<String>,
    pub max_open: u32,
    pub max_idle: u32,
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

impl MySqlBindingConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let url = meta.required("url");
        let parsed = (!url.is_empty()).then(|| dsn::parse(&url));
        if let Some(Err(err)) = &parsed {
            meta.error(format!("metadata field 'url': {err}"));
        }
        let pem_path = meta.string("pemPath");
        if let Some(Ok(dsn)) = &parsed
            && dsn.custom_tls
            && pem_path.is_none()
        {
            meta.error("url asks for tls=custom, which needs pemPath");
        }
        let count = |name: &str, default: i64| match meta.i64_or(name, default) {
            n if n > 0 => n.min(u32::MAX as i64) as u32,
            _ => default as u32,
        };
        let seconds = Duration::from_secs(1);
        Self {
            url,
            pem_path,
            max_open: count("maxOpenConns", 10),
            max_idle: count("maxIdleConns", 2),
            max_lifetime: meta.optional_duration("connMaxLifetime", seconds),
            idle_timeout: meta.optional_duration("connMaxIdleTime", seconds),
        }
    }
}

pub const BINDINGS_MYSQL: ComponentFactory<dyn Binding, MySqlBindingConfig> = ComponentFactory::new(
    "bindings.mysql",
    |_, metadata, _| MySqlBindingConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: MySqlBindingConfig) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(MySqlBinding::open(config).await?))
}

/// The `bindings.mysql` binding.
pub struct MySqlBinding {
    pool: MySqlPool,
}

impl Binding for MySqlBinding {
    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

fn backend(err: sqlx::Error) -> BindingError {
    BindingError::Backend(anyhow::anyhow!("mysql: {err}"))
}

impl MySqlBinding {
    /// Connects, failing when the server cannot be reached, as daprd's
    /// binding does at start.
    pub async fn open(config: MySqlBindingConfig) -> anyhow::Result<Self> {
        let dsn = dsn::parse(&config.url).map_err(anyhow::Error::msg)?;
        let mut options = dsn.options.clone();
        if let Some(database) = &dsn.database {
            options = options.database(database);
        }
        if dsn.custom_tls
            && let Some(pem) = &config.pem_path
        {
            options = options.ssl_ca(pem);
        }
        let variables = Arc::new(dsn.system_variables.clone());
        let pool = MySqlPoolOptions::new()
            .max_connections(config.max_open)
            .min_connections(0)
            .max_lifetime(config.max_lifetime)
            .idle_timeout(config.idle_timeout.or(Some(Duration::from_secs(600))))
            .acquire_timeout(dsn.connect_timeout.unwrap_or(Duration::from_secs(20)))
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
            .connect_lazy_with(options);
        drop(
            pool.acquire()
                .await
                .map_err(|err| anyhow::anyhow!("cannot connect to MySQL: {err}"))?,
        );
        Ok(Self { pool })
    }
}

/// A literal that cannot end early: text as hexadecimal `utf8mb4`.
fn literal(value: &serde_json::Value) -> String {
    use serde_json::Value;
    let text = |text: &str| {
        let mut out = String::with_capacity(12 + 2 * text.len());
        out.push_str("_utf8mb4 X'");
        for byte in text.bytes() {
            let _ = write!(out, "{byte:02X}");
        }
        out.push('\'');
        out
    };
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(true) => "TRUE".into(),
        Value::Bool(false) => "FALSE".into(),
        Value::Number(number) => number.to_string(),
        Value::String(s) => text(s),
        other => text(&other.to_string()),
    }
}

/// One value of a text-protocol row, typed by its column.
fn json_value(row: &MySqlRow, index: usize) -> Result<serde_json::Value, BindingError> {
    use serde_json::Value;
    let raw = row.try_get_raw(index).map_err(backend)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let type_name = raw.type_info().name().to_owned();
    // Decoded as bytes whatever the column's type: the text protocol
    // sends every value as its text.
    let bytes = <&[u8] as sqlx::Decode<'_, sqlx::MySql>>::decode(raw)
        .map_err(|err| BindingError::Backend(anyhow::anyhow!("mysql value: {err}")))?;
    if type_name.contains("BLOB") || type_name.contains("BINARY") || type_name == "BIT" {
        return Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ));
    }
    let text = String::from_utf8_lossy(bytes);
    let value = match type_name.trim_end_matches(" UNSIGNED") {
        "BOOLEAN" => Value::Bool(text != "0"),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            match (text.parse::<i64>(), text.parse::<u64>()) {
                (Ok(int), _) => int.into(),
                (_, Ok(int)) => int.into(),
                _ => text.into_owned().into(),
            }
        }
        "FLOAT" | "DOUBLE" | "DECIMAL" => match text.parse::<i64>() {
            Ok(int) if !text.contains('.') => int.into(),
            _ => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| text.into_owned().into()),
        },
        "JSON" => serde_json::from_str(&text).unwrap_or_else(|_| text.into_owned().into()),
        "DATETIME" | "TIMESTAMP" if text.len() >= 19 && !text.starts_with("0000") => {
            Value::String(format!("{}T{}Z", &text[..10], &text[11..]))
        }
        "DATE" if text.len() == 10 && !text.starts_with("0000") => {
            Value::String(format!("{text}T00:00:00Z"))
        }
        _ => text.into_owned().into(),
    };
    Ok(value)
}

#[async_trait]
impl SqlBackend for MySqlBinding {
    const DIALECT: Dialect = Dialect::MySql;

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
                let mut object = serde_json::Map::new();
                for (i, column) in row.columns().iter().enumerate() {
                    object.insert(column.name().to_owned(), json_value(row, i)?);
                }
                Ok(serde_json::Value::Object(object))
            })
            .collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl OutputBinding for MySqlBinding {
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
    use serde_json::json;

    #[test]
    fn literals_cannot_end_early() {
        assert_eq!(literal(&json!("a'b")), "_utf8mb4 X'612762'");
        assert_eq!(literal(&json!("")), "_utf8mb4 X''");
        assert_eq!(literal(&json!(null)), "NULL");
        assert_eq!(literal(&json!(true)), "TRUE");
        assert_eq!(literal(&json!(-2.5)), "-2.5");
        assert_eq!(literal(&json!([1])), "_utf8mb4 X'5B315D'");
    }
}
