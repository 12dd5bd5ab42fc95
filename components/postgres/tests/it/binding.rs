//! `bindings.postgresql` against the output binding conformance suite,
//! plus its parameters, typed rows, response metadata and errors.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_bindings::conformance::OutputHarness;
use mecha_bindings::*;
use mecha_component_postgres::{PgBinding, PgBindingConfig};
use mecha_core::testing::service_available;
use mecha_core::{MetadataReader, Properties};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::{address, connection_string, schema, unique};

async fn binding() -> Option<Arc<PgBinding>> {
    if !service_available("PostgreSQL", &address()) {
        return None;
    }
    let props = Properties::new().with("connectionString", &connection_string("mecha-it-binding"));
    let reader = MetadataReader::new(&props);
    let config = PgBindingConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    Some(Arc::new(PgBinding::open(config).await.unwrap()))
}

/// This process's table of the conformance writes.
async fn table() -> &'static str {
    static TABLE: OnceCell<String> = OnceCell::const_new();
    TABLE
        .get_or_init(|| async {
            let table = format!("{}.binding_rows", schema().await);
            let create = InvokeRequest::new("exec", "").with(
                "sql",
                &format!("CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, body TEXT)"),
            );
            binding().await.unwrap().invoke(&create).await.unwrap();
            table
        })
        .await
}

fn exec(sql: &str, params: Value) -> InvokeRequest {
    InvokeRequest::new("exec", "")
        .with("sql", sql)
        .with("params", &params.to_string())
}

fn query(sql: &str, params: Value) -> InvokeRequest {
    InvokeRequest::new("query", "")
        .with("sql", sql)
        .with("params", &params.to_string())
}

#[derive(Default)]
struct PgOutput {
    table: std::sync::OnceLock<String>,
}

#[async_trait]
impl OutputHarness for PgOutput {
    async fn component(&self) -> Option<Arc<dyn OutputBinding>> {
        let binding = binding().await?;
        let _ = self.table.set(table().await.to_owned());
        Some(binding)
    }

    fn operations(&self) -> &'static [&'static str] {
        &["exec", "query", "close"]
    }

    fn write_then_read(&self, data: &[u8]) -> Option<(InvokeRequest, InvokeRequest)> {
        let table = self.table.get()?;
        let id = unique("row");
        let body = String::from_utf8(data.to_vec()).unwrap();
        Some((
            exec(
                &format!("INSERT INTO {table} (id, body) VALUES ($1, $2)"),
                json!([id, body]),
            ),
            query(
                &format!("SELECT body FROM {table} WHERE id = $1"),
                json!([id]),
            ),
        ))
    }

    fn data_read(&self, answer: &[u8]) -> Vec<u8> {
        let rows: Value = serde_json::from_slice(answer).unwrap();
        rows[0][0]
            .as_str()
            .expect("one row, one text column")
            .into()
    }
}

mecha_bindings::output_binding_conformance!(PgOutput);

#[tokio::test]
async fn typed_parameters_and_rows() {
    let Some(binding) = binding().await else {
        return;
    };
    let table = format!("{}.{}", schema().await, unique("types"));
    binding
        .invoke(&InvokeRequest::new("exec", "").with(
            "sql",
            &format!(
                "CREATE TABLE {table} (id INT4 PRIMARY KEY, flag BOOL, amount NUMERIC, ratio FLOAT8, \
                 doc JSONB, at TIMESTAMPTZ, day DATE, uid UUID, raw BYTEA, note TEXT)"
            ),
        ))
        .await
        .unwrap();
    // Strings go into typed columns; a quote or a dollar tag in a value
    // stays text.
    let tricky = "it's $m$ a'); DROP TABLE x; --";
    let answer = binding
        .invoke(&exec(
            &format!(
                "INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10), \
                 ($11, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
            json!([
                1,
                true,
                "12.50",
                0.25,
                {"a": [1, 2]},
                "2024-01-02T03:04:05.5Z",
                "2024-01-02",
                "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                "\\x00ff",
                tricky,
                2
            ]),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.metadata["rows-affected"], "2");
    assert_eq!(answer.metadata["operation"], "exec");
    for key in ["sql", "start-time", "end-time", "duration"] {
        assert!(
            answer.metadata.contains_key(key),
            "{key}: {:?}",
            answer.metadata
        );
    }
    assert!(answer.data.is_empty());

    let answer = binding
        .invoke(&InvokeRequest::new("query", "").with(
            "sql",
            &format!("SET TIME ZONE 'UTC'; SELECT * FROM {table} ORDER BY id"),
        ))
        .await
        .unwrap()
        .unwrap();
    let rows: Value = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!(
        rows,
        json!([
            [
                1,
                true,
                12.5,
                0.25,
                {"a": [1, 2]},
                "2024-01-02T03:04:05.5Z",
                "2024-01-02T00:00:00Z",
                "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                "AP8=",
                tricky
            ],
            [2, null, null, null, null, null, null, null, null, null]
        ])
    );
    assert_eq!(answer.metadata["operation"], "query");
    assert!(!answer.metadata.contains_key("rows-affected"));

    // No rows is an empty array.
    let answer = binding
        .invoke(&query(
            &format!("SELECT id FROM {table} WHERE id = $1"),
            json!([99]),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.data, "[]");
    // A placeholder inside the statement's own string is not a parameter.
    let answer = binding
        .invoke(&query("SELECT '$1', $1::int + 1", json!([41])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&answer.data).unwrap(),
        json!([["$1", 42]])
    );
}

#[tokio::test]
async fn bad_requests_and_close() {
    let Some(binding) = binding().await else {
        return;
    };
    let err = binding
        .invoke(&InvokeRequest::new("query", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BindingError::Invalid(m) if m.contains("sql")),
        "{err}"
    );
    for params in ["{\"a\":1}", "not json"] {
        let err = binding
            .invoke(
                &InvokeRequest::new("query", "")
                    .with("sql", "SELECT $1")
                    .with("params", params),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BindingError::Invalid(_)), "{params}: {err}");
    }
    let err = binding
        .invoke(&query("SELECT $1, $2", json!([1])))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");
    let err = binding
        .invoke(&InvokeRequest::new("exec", "").with("sql", "SELEC nothing"))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Backend(_)), "{err}");
    // Closed, the binding answers errors, not hangs.
    binding
        .invoke(&InvokeRequest::new("close", ""))
        .await
        .unwrap();
    let err = binding
        .invoke(&InvokeRequest::new("query", "").with("sql", "SELECT 1"))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Backend(_)), "{err}");
}
