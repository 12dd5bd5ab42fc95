//! `state.mysql` against the state conformance suite (query cases
//! included), on the MySQL or MariaDB of `MECHA_TEST_MYSQL_URL` (default
//! 127.0.0.1:3306, user root without a password), plus daprd's layout,
//! Dapr's metadata keys, the cleanup of expired rows and surviving killed
//! connections.
//!
//! Each case gets its own tables, in a database of this test process; the
//! databases of runs more than an hour old are dropped when a run starts.

mod binding;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mecha_component_mysql::{MySqlStateConfig, MySqlStateStore, cleanup_round};
use mecha_core::testing::{service_available, service_url};
use mecha_core::{MetadataReader, Properties};
use mecha_state::conformance::Harness;
use mecha_state::*;
use sqlx::{AssertSqlSafe, Connection as _, Row};
use tokio::sync::OnceCell;

fn address() -> String {
    service_url("mysql", "127.0.0.1:3306")
}

fn dsn() -> String {
    format!("root:@tcp({})/?allowNativePasswords=true", address())
}

fn unique(name: &str) -> String {
    format!("{name}_{}", uuid::Uuid::new_v4().simple())
}

async fn admin() -> sqlx::MySqlConnection {
    let options = mecha_component_mysql::dsn::parse(&dsn()).unwrap().options;
    sqlx::MySqlConnection::connect_with(&options).await.unwrap()
}

/// This process's database, named once (after dropping old runs' ones).
async fn schema() -> &'static str {
    static SCHEMA: OnceCell<String> = OnceCell::const_new();
    SCHEMA
        .get_or_init(|| async {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
            let mut conn = admin().await;
            let old: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 'mecha\\_it\\_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for name in old {
                let started = name.split('_').nth(2).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
                if started + 3600 < now {
                    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .execute(&mut conn)
                        .await;
                }
            }
            format!("mecha_it_{now}_{}", std::process::id())
        })
        .await
}

async fn config_in(schema: &str) -> Option<MySqlStateConfig> {
    if !service_available("MySQL", &address()) {
        return None;
    }
    let props = Properties::new()
        .with("connectionString", &dsn())
        .with("schemaName", schema)
        .with("tableName", &unique("state"))
        .with("metadataTableName", &unique("meta"));
    let reader = MetadataReader::new(&props);
    let config = MySqlStateConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    Some(config)
}

async fn store() -> Option<Arc<MySqlStateStore>> {
    if !service_available("MySQL", &address()) {
        return None;
    }
    let config = config_in(schema().await).await?;
    Some(MySqlStateStore::open(config).await.unwrap())
}

#[derive(Default)]
struct MySql;

#[async_trait]
impl Harness for MySql {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        Some(store().await?)
    }
}

mecha_state::state_conformance!(MySql);

fn get_req(key: &str) -> GetRequest {
    GetRequest {
        key: key.to_owned(),
        ..GetRequest::default()
    }
}

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with(
            "connectionString",
            "root:@tcp(localhost:3306)/?allowNativePasswords=true&tls=custom",
        )
        .with("schemaName", "dapr_state_store")
        .with("tableName", "state")
        .with("metadataTableName", "dapr_metadata")
        .with("pemPath", "/etc/ssl/ca.pem")
        .with("timeoutInSeconds", "30")
        .with("cleanupInterval", "10m");
    let reader = MetadataReader::new(&props);
    let config = MySqlStateConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.cleanup_interval, Some(Duration::from_secs(600)));

    let props = Properties::new()
        .with("connectionString", "root@tcp(localhost:3306)/?tls=custom")
        .with("tableName", "state; DROP TABLE x")
        .with("cleanupInterval", "0");
    let reader = MetadataReader::new(&props);
    let config = MySqlStateConfig::from_metadata(&reader);
    assert_eq!(config.cleanup_interval, None);
    let errors = reader.errors().join("\n");
    assert!(errors.contains("pemPath"), "{errors}");
    assert!(errors.contains("tableName"), "{errors}");
    let props = Properties::new().with("connectionString", "root@tcp(localhost");
    let reader = MetadataReader::new(&props);
    MySqlStateConfig::from_metadata(&reader);
    assert!(reader.errors().join("\n").contains("connectionString"));
}

#[tokio::test]
async fn reads_and_writes_daprd_rows() {
    let Some(store) = store().await else {
        return;
    };
    let table = store.config().table_name.clone();
    let pool = store.pool();
    // A row as daprd writes it.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (id, value, isbinary, eTag) VALUES ('app||theirs', '{{\"a\":1}}', 0, '6f1e3f62-3cf4-4d3b-9a4b-2f3e1a0b9c11')"
    )))
    .execute(pool)
    .await
    .unwrap();
    let item = store.get(&get_req("app||theirs")).await.unwrap().unwrap();
    assert_eq!(item.data, "{\"a\":1}");
    assert_eq!(
        item.etag.as_deref(),
        Some("6f1e3f62-3cf4-4d3b-9a4b-2f3e1a0b9c11")
    );
    // What Mecha writes: JSON as JSON, the rest base64 with isbinary.
    store
        .set(&SetRequest::new("app||json", "{\"b\":[1,2]}"))
        .await
        .unwrap();
    store
        .set(&SetRequest::new("app||bin", vec![0u8, 255, 7]))
        .await
        .unwrap();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT id, CAST(value AS CHAR), isbinary FROM {table} WHERE id IN ('app||json', 'app||bin') ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    let rows: Vec<(String, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("app||bin".into(), "\"AP8H\"".into(), true),
            ("app||json".into(), "{\"b\":[1,2]}".into(), false),
        ]
    );
    // Keys are exact: `A` and `a` are two keys.
    store.set(&SetRequest::new("app||K", "1")).await.unwrap();
    store.set(&SetRequest::new("app||k", "2")).await.unwrap();
    assert_eq!(
        store.get(&get_req("app||K")).await.unwrap().unwrap().data,
        "1"
    );
    assert_eq!(
        store.get(&get_req("app||k")).await.unwrap().unwrap().data,
        "2"
    );
    // Trailing spaces count too.
    store.set(&SetRequest::new("app||k ", "3")).await.unwrap();
    for (key, value) in [("app||k", "2"), ("app||k ", "3")] {
        let item = store.get(&get_req(key)).await.unwrap().unwrap();
        assert_eq!(item.data, value, "{key:?}");
    }
    // What the table cannot hold exactly is refused, not cut.
    let long = format!("app||{}", "x".repeat(260));
    let err = store.set(&SetRequest::new(long, "1")).await.unwrap_err();
    assert!(matches!(err, StateError::KeyTooLong(255)), "{err}");
    let mut far = SetRequest::new("app||far", "1");
    far.ttl = Some(Ttl::Expire(Duration::from_secs(20 * 365 * 86400)));
    let err = store.set(&far).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidTtl(_)), "{err}");
    // daprd's column order, which its first-write relies on.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
    )
    .bind(&table)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        columns,
        [
            "id",
            "value",
            "isbinary",
            "insertDate",
            "updateDate",
            "eTag",
            "expiredate"
        ]
    );
}

#[tokio::test]
async fn expired_rows_are_cleaned_up() {
    let Some(store) = store().await else {
        return;
    };
    let table = store.config().table_name.clone();
    let mut short = SetRequest::new("app||short", "1");
    short.ttl = Some(Ttl::Expire(Duration::from_secs(1)));
    store.set(&short).await.unwrap();
    store.set(&SetRequest::new("app||kept", "2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        cleanup_round(&store, Duration::from_secs(1)).await.unwrap(),
        1
    );
    let keys: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("SELECT id FROM {table}")))
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(keys, ["app||kept"]);
    assert_eq!(
        cleanup_round(&store, Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "a round within the interval is skipped"
    );
}

/// `KILL` on the store's connections while it writes. The store has a
/// database of its own, so its connections are the ones on that database.
#[tokio::test]
async fn survives_killed_connections() {
    if store().await.is_none() {
        return;
    }
    let schema = unique("mecha_kill");
    let store = MySqlStateStore::open(config_in(&schema).await.unwrap())
        .await
        .unwrap();
    let admin = tokio::sync::Mutex::new(admin().await);
    mecha_state::conformance::writes_survive_connection_kills(store, || async {
        let mut admin = admin.lock().await;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ?",
        )
        .bind(&schema)
        .fetch_all(&mut *admin)
        .await
        .unwrap();
        let mut killed = 0;
        for id in ids {
            let sql = format!("KILL {id}");
            if sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *admin)
                .await
                .is_ok()
            {
                killed += 1;
            }
        }
        killed
    })
    .await;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {schema}")))
        .execute(&mut *admin.lock().await)
        .await
        .unwrap();
}
