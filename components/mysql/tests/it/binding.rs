//! `bindings.mysql` against the output binding conformance suite, plus its
//! parameters, typed rows, response metadata and errors.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_bindings::conformance::OutputHarness;
use mecha_bindings::*;
use mecha_component_mysql::{MySqlBinding, MySqlBindingConfig};
use mecha_core::testing::service_available;
use mecha_core::{MetadataReader, Properties};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use tokio::sync::OnceCell;

use crate::{address, admin, dsn, schema, unique};

/// This process's database, created.
async fn database() -> &'static str {
    static CREATED: OnceCell<String> = OnceCell::const_new();
    CREATED
        .get_or_init(|| async {
            let schema = schema().await;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE DATABASE IF NOT EXISTS {schema}"
            )))
            .execute(&mut admin().await)
            .await
            .unwrap();
            schema.to_owned()
        })
        .await
}

async fn binding() -> Option<Arc<MySqlBinding>> {
    if !service_available("MySQL", &address()) {
        return None;
    }
    let url = dsn().replace(")/?", &format!(")/{}?", database().await));
    let props = Properties::new()
        .with("url", &url)
        .with("maxOpenConns", "4")
        .with("connMaxLifetime", "5m");
    let reader = MetadataReader::new(&props);
    let config = MySqlBindingConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    Some(Arc::new(MySqlBinding::open(config).await.unwrap()))
}

async fn table() -> &'static str {
    static TABLE: OnceCell<String> = OnceCell::const_new();
    TABLE
        .get_or_init(|| async {
            let create = InvokeRequest::new("exec", "").with(
                "sql",
                "CREATE TABLE IF NOT EXISTS binding_rows (id VARCHAR(64) PRIMARY KEY, body TEXT)",
            );
            binding().await.unwrap().invoke(&create).await.unwrap();
            "binding_rows".to_owned()
        })
        .await
}

fn with_params(operation: &str, sql: &str, params: Value) -> InvokeRequest {
    InvokeRequest::new(operation, "")
        .with("sql", sql)
        .with("params", &params.to_string())
}

#[derive(Default)]
struct MySqlOutput {
    table: std::sync::OnceLock<String>,
}

#[async_trait]
impl OutputHarness for MySqlOutput {
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
            with_params(
                "exec",
                &format!("INSERT INTO {table} (id, body) VALUES (?, ?)"),
                json!([id, body]),
            ),
            with_params(
                "query",
                &format!("SELECT body FROM {table} WHERE id = ?"),
                json!([id]),
            ),
        ))
    }

    fn data_read(&self, answer: &[u8]) -> Vec<u8> {
        let rows: Value = serde_json::from_slice(answer).unwrap();
        rows[0]["body"]
            .as_str()
            .expect("one row with its body")
            .into()
    }
}

mecha_bindings::output_binding_conformance!(MySqlOutput);

#[tokio::test]
async fn typed_parameters_and_rows() {
    let Some(binding) = binding().await else {
        return;
    };
    let table = unique("types");
    binding
        .invoke(&InvokeRequest::new("exec", "").with(
            "sql",
            &format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, flag BOOLEAN, amount DECIMAL(10,2), \
                 ratio DOUBLE, at DATETIME(3), day DATE, raw VARBINARY(8), note TEXT)"
            ),
        ))
        .await
        .unwrap();
    let tricky = "it's \\' a'); DROP TABLE x; -- ?";
    let answer = binding
        .invoke(&with_params(
            "exec",
            &format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"),
            json!([1, true, "12.50", 0.25, "2024-01-02 03:04:05.500", "2024-01-02", "ab", tricky, 2]),
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
    let answer = binding
        .invoke(
            &InvokeRequest::new("query", "")
                .with("sql", &format!("SELECT * FROM {table} ORDER BY id")),
        )
        .await
        .unwrap()
        .unwrap();
    let rows: Value = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!(
        rows,
        json!([
            {"id": 1, "flag": true, "amount": 12.5, "ratio": 0.25, "at": "2024-01-02T03:04:05.500Z",
             "day": "2024-01-02T00:00:00Z", "raw": "YWI=", "note": tricky},
            {"id": 2, "flag": null, "amount": null, "ratio": null, "at": null, "day": null,
             "raw": null, "note": null}
        ])
    );
    let answer = binding
        .invoke(&with_params(
            "query",
            &format!("SELECT id FROM {table} WHERE id = ?"),
            json!([99]),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.data, "[]");
}

#[tokio::test]
async fn bad_requests_and_close() {
    let Some(binding) = binding().await else {
        return;
    };
    let err = binding
        .invoke(&InvokeRequest::new("exec", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BindingError::Invalid(m) if m.contains("sql")),
        "{err}"
    );
    let err = binding
        .invoke(&with_params("query", "SELECT ?, ?", json!([1])))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");
    let err = binding
        .invoke(&InvokeRequest::new("query", "").with("sql", "SELEC nothing"))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Backend(_)), "{err}");
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
