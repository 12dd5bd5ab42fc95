//! `state.postgresql` v1 and v2 against the state conformance suite (and
//! v1 against its query cases), on the PostgreSQL of
//! `MECHA_TEST_POSTGRES_URL` (default 127.0.0.1:5432, database `test`),
//! plus daprd's layout, Dapr's metadata keys, the cleanup of expired rows
//! and surviving killed connections.
//!
//! Each case gets its own tables, in a schema of this test process; the
//! schemas of runs more than an hour old are dropped when a run starts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mecha_component_postgres::{Layout, PgStateConfig, PgStateStore, cleanup_round};
use mecha_core::testing::{service_available, service_url};
use mecha_core::{MetadataReader, Properties};
use mecha_state::conformance::Harness;
use mecha_state::*;
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::OnceCell;

fn address() -> String {
    service_url("postgres", "127.0.0.1:5432")
}

fn connection_string(application: &str) -> String {
    let address = address();
    let (host, port) = address.rsplit_once(':').unwrap_or((&address, "5432"));
    format!(
        "host={host} port={port} user=postgres dbname=test sslmode=disable application_name={application}"
    )
}

fn unique(name: &str) -> String {
    format!("{name}_{}", uuid::Uuid::new_v4().simple())
}

/// This process's schema, created once (after dropping old runs' ones).
async fn schema() -> &'static str {
    static SCHEMA: OnceCell<String> = OnceCell::const_new();
    SCHEMA
        .get_or_init(|| async {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let schema = format!("mecha_it_{now}_{}", std::process::id());
            let pool = sqlx::PgPool::connect_lazy_with(
                mecha_component_postgres::conninfo::parse(&connection_string("mecha-it-setup"))
                    .unwrap()
                    .options,
            );
            let old: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'mecha\\_it\\_%'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            for name in old {
                let started = name
                    .split('_')
                    .nth(2)
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0);
                if started + 3600 < now {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&pool)
                    .await;
                }
            }
            sqlx::query(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .execute(&pool)
            .await
            .unwrap();
            schema
        })
        .await
}

/// A configuration on fresh tables of this process's schema.
async fn config(layout: Layout, application: &str) -> Option<PgStateConfig> {
    if !service_available("PostgreSQL", &address()) {
        return None;
    }
    let schema = schema().await;
    let mut props = Properties::new()
        .with("connectionString", &connection_string(application))
        .with("metadataTableName", &format!("{schema}.{}", unique("meta")));
    props = match layout {
        Layout::V1 => props.with("tableName", &format!("{schema}.{}", unique("state"))),
        Layout::V2 => props.with("tablePrefix", &format!("{schema}.{}_", unique("p"))),
    };
    let reader = MetadataReader::new(&props);
    let config = PgStateConfig::from_metadata(layout, &reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    Some(config)
}

async fn store(layout: Layout) -> Option<Arc<PgStateStore>> {
    let config = config(layout, "mecha-it").await?;
    Some(PgStateStore::open(config).await.unwrap())
}

#[derive(Default)]
struct V1;

#[async_trait]
impl Harness for V1 {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        Some(store(Layout::V1).await?)
    }
}

#[derive(Default)]
struct V2;

#[async_trait]
impl Harness for V2 {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        Some(store(Layout::V2).await?)
    }
}

mod v1 {
    mecha_state::state_conformance!(super::V1);
}

mod v2 {
    mecha_state::state_conformance!(super::V2);
}

fn get_req(key: &str) -> GetRequest {
    GetRequest {
        key: key.to_owned(),
        ..GetRequest::default()
    }
}

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with("connectionString", "host=localhost user=postgres password=example port=5432 connect_timeout=10 database=dapr_test")
        .with("tableName", "public.state")
        .with("metadataTableName", "dapr_metadata")
        .with("timeoutInSeconds", "30")
        .with("cleanupIntervalInSeconds", "600")
        .with("maxConns", "8")
        .with("connectionMaxIdleTime", "5m")
        .with("queryExecMode", "simple_protocol");
    let reader = MetadataReader::new(&props);
    let config = PgStateConfig::from_metadata(Layout::V1, &reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!(config.table, "public.state");
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.cleanup_interval, Some(Duration::from_secs(600)));
    assert_eq!(config.max_connections, Some(8));

    let props = Properties::new()
        .with("connectionString", "postgres://postgres@localhost/test")
        .with("tablePrefix", "app_")
        .with("cleanupInterval", "0");
    let reader = MetadataReader::new(&props);
    let config = PgStateConfig::from_metadata(Layout::V2, &reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert_eq!(config.table, "app_state");
    assert_eq!(config.cleanup_interval, None, "0 disables the cleanup");

    let props = Properties::new()
        .with("connectionString", "host=x port=notaport")
        .with("tableName", "state; DROP TABLE x")
        .with("timeout", "10ms")
        .with("useAzureAD", "true");
    let reader = MetadataReader::new(&props);
    PgStateConfig::from_metadata(Layout::V1, &reader);
    let errors = reader.errors().join("\n");
    for expected in [
        "connectionString",
        "not a valid table name",
        "at least 1s",
        "useAzureAD",
    ] {
        assert!(errors.contains(expected), "{expected}: {errors}");
    }
}

#[tokio::test]
async fn v1_reads_and_writes_daprd_rows() {
    let Some(store) = store(Layout::V1).await else {
        return;
    };
    let (table, meta) = store.table_names();
    // A row as daprd writes it.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (key, value, isbinary) VALUES ('app||theirs', '{{\"a\": 1}}', false)"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let item = store.get(&get_req("app||theirs")).await.unwrap().unwrap();
    assert_eq!(item.data, "{\"a\": 1}");
    let xmin: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT xmin::text FROM {table} WHERE key = 'app||theirs'"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        item.etag.as_deref(),
        Some(xmin.as_str()),
        "the etag is xmin"
    );

    // What Mecha writes, as daprd reads it: JSON as jsonb, the rest base64.
    store
        .set(&SetRequest::new("app||json", "{\"b\":[1,2]}"))
        .await
        .unwrap();
    store
        .set(&SetRequest::new("app||bin", vec![0u8, 255, 7]))
        .await
        .unwrap();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT key, value::text, isbinary, jsonb_typeof(value) FROM {table} WHERE key IN ('app||json', 'app||bin') ORDER BY key"
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let rows: Vec<(String, String, bool, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        rows,
        [
            ("app||bin".into(), "\"AP8H\"".into(), true, "string".into()),
            (
                "app||json".into(),
                "{\"b\": [1, 2]}".into(),
                false,
                "object".into()
            ),
        ]
    );
    assert_eq!(
        store.get(&get_req("app||bin")).await.unwrap().unwrap().data,
        &[0u8, 255, 7][..]
    );
    // daprd's migration level, so daprd leaves the table alone.
    let level: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value FROM {meta} WHERE key = 'migrations'"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(level, "2");
}

#[tokio::test]
async fn v2_layout_is_daprds() {
    let Some(store) = store(Layout::V2).await else {
        return;
    };
    let (table, meta) = store.table_names();
    store
        .set(&SetRequest::new("app||k", "raw bytes"))
        .await
        .unwrap();
    let (value, etag): (Vec<u8>, String) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT value, etag::text FROM {table} WHERE key = 'app||k'"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(value, b"raw bytes");
    let item = store.get(&get_req("app||k")).await.unwrap().unwrap();
    assert_eq!(item.etag.as_deref(), Some(etag.as_str()));
    let prefix = table.strip_suffix("state").unwrap();
    let level: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value FROM {meta} WHERE key = $1"
    )))
    .bind(format!("migrations-state-v2-{prefix}"))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(level, "1");
}

#[tokio::test]
async fn expired_rows_are_cleaned_up() {
    for layout in [Layout::V1, Layout::V2] {
        let Some(store) = store(layout).await else {
            return;
        };
        let (table, _) = store.table_names();
        let mut short = SetRequest::new("app||short", "1");
        short.ttl = Some(Ttl::Expire(Duration::from_secs(1)));
        store.set(&short).await.unwrap();
        store.set(&SetRequest::new("app||kept", "2")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let deleted = cleanup_round(&store, Duration::from_secs(1)).await.unwrap();
        assert_eq!(deleted, 1, "{layout:?}");
        let keys: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT key FROM {table}")))
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(keys, ["app||kept"], "{layout:?}");
        let again = cleanup_round(&store, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            again, 0,
            "{layout:?}: a round within the interval is skipped"
        );
    }
}

/// `pg_terminate_backend` on the store's connections while it writes.
#[tokio::test]
async fn survives_killed_connections() {
    let application = unique("mecha-kill");
    let Some(config) = config(Layout::V1, &application).await else {
        return;
    };
    let store = PgStateStore::open(config).await.unwrap();
    let admin = sqlx::PgPool::connect_lazy_with(
        mecha_component_postgres::conninfo::parse(&connection_string("mecha-it-admin"))
            .unwrap()
            .options,
    );
    mecha_state::conformance::writes_survive_connection_kills(store, || async {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&application)
        .fetch_all(&admin)
        .await
        .unwrap();
        killed.into_iter().filter(|ok| *ok).count()
    })
    .await;
}

/// `configuration.postgresql` against the configuration conformance suite:
/// each case on a table and a notification channel of its own, written as
/// an operator would (rows of `key`, `value`, `version`).
mod binding;

mod configuration {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_component_postgres::{PgConfigurationConfig, PgConfigurationStore};
    use mecha_configuration::conformance::{Harness, Writer};
    use mecha_configuration::{ConfigurationStore, Metadata};
    use mecha_core::testing::service_available;
    use mecha_core::{MetadataReader, Properties};

    use super::{address, connection_string, schema, unique};

    struct PgWriter {
        pool: sqlx::PgPool,
        table: String,
    }

    #[async_trait]
    impl Writer for PgWriter {
        async fn set(&self, key: &str, value: &str, version: &str) {
            let table = &self.table;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH updated AS (UPDATE {table} SET value = $2, version = $3 WHERE key = $1 RETURNING 1) \
                 INSERT INTO {table} (key, value, version) SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM updated)"
            )))
            .bind(key)
            .bind(value)
            .bind(version)
            .execute(&self.pool)
            .await
            .unwrap();
        }

        async fn delete(&self, key: &str) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {} WHERE key = $1",
                self.table
            )))
            .bind(key)
            .execute(&self.pool)
            .await
            .unwrap();
        }
    }

    #[derive(Default)]
    struct PgConfiguration;

    #[async_trait]
    impl Harness for PgConfiguration {
        async fn component(
            &self,
        ) -> Option<(Arc<dyn ConfigurationStore>, Arc<dyn Writer>, Metadata)> {
            if !service_available("PostgreSQL", &address()) {
                return None;
            }
            // Dapr's limit on the name is 64 characters, the schema's included.
            let table = format!("{}.{}", schema().await, &unique("cfg")[..16]);
            let props = Properties::new()
                .with("connectionString", &connection_string("mecha-it-config"))
                .with("table", &table);
            let reader = MetadataReader::new(&props);
            let config = PgConfigurationConfig::from_metadata(&reader);
            assert!(reader.errors().is_empty(), "{:?}", reader.errors());
            let store = PgConfigurationStore::open(config).await.unwrap();
            let pool = sqlx::PgPool::connect_lazy_with(
                mecha_component_postgres::conninfo::parse(&connection_string("mecha-it-writer"))
                    .unwrap()
                    .options,
            );
            let channel = unique("chan")[..20].to_owned();
            let metadata: Metadata = [("pgNotifyChannel".to_owned(), channel)].into();
            Some((
                Arc::new(store),
                Arc::new(PgWriter { pool, table }),
                metadata,
            ))
        }
    }

    mecha_configuration::configuration_conformance!(PgConfiguration);
}

/// `scheduler.postgresql` against the scheduler conformance suite: the
/// cases share one table (each has its own partitions), and the racing
/// cases go through two stores, each with its own pool, as two runtimes.
mod scheduler {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_component_postgres::{PgJobStore, PgSchedulerConfig};
    use mecha_core::testing::service_available;
    use mecha_scheduler::JobStore;
    use mecha_scheduler::conformance::Harness;

    use super::{address, connection_string};

    #[derive(Default)]
    struct Pg;

    async fn open(application: &str) -> Option<Arc<dyn JobStore>> {
        if !service_available("PostgreSQL", &address()) {
            return None;
        }
        let mut config = PgSchedulerConfig::new(connection_string(application));
        config.table = "mecha_test_jobs".into();
        Some(PgJobStore::open(config).await.unwrap())
    }

    #[async_trait]
    impl Harness for Pg {
        async fn store(&self) -> Option<Arc<dyn JobStore>> {
            open("scheduler-conformance").await
        }

        async fn pair(&self) -> Option<(Arc<dyn JobStore>, Arc<dyn JobStore>)> {
            Some((open("scheduler-a").await?, open("scheduler-b").await?))
        }
    }

    mecha_scheduler::scheduler_conformance!(Pg);
}
