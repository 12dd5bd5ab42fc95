//! `state.sqlite` against the state conformance suite, plus what is
//! particular to SQLite: durability on disk, Dapr's metadata keys and the
//! cleanup of expired rows.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_component_sqlite::{STATE_SQLITE, SqliteStateStore, StateConfig};
use mecha_core::{ComponentContext, Factory, MetadataReader, Properties};
use mecha_state::conformance::Harness;
use mecha_state::*;

/// Each case gets its own database file in its own temporary folder.
#[derive(Default)]
struct Sqlite;

#[async_trait]
impl Harness for Sqlite {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = StateConfig::new(dir.join("state.db").to_string_lossy());
        Some(SqliteStateStore::open(config).await.unwrap())
    }
}

mecha_state::state_conformance!(Sqlite);

/// The same suite on an in-memory database (`:memory:`, one connection).
mod in_memory {
    use super::*;

    #[derive(Default)]
    struct SqliteMemory;

    #[async_trait]
    impl Harness for SqliteMemory {
        async fn component(&self) -> Option<Arc<dyn StateStore>> {
            Some(
                SqliteStateStore::open(StateConfig::new(":memory:"))
                    .await
                    .unwrap(),
            )
        }
    }

    mecha_state::state_conformance!(SqliteMemory);
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db").to_string_lossy().into_owned();
    {
        let store = SqliteStateStore::open(StateConfig::new(&path))
            .await
            .unwrap();
        store.set(&SetRequest::new("k", "v")).await.unwrap();
    }
    let store = SqliteStateStore::open(StateConfig::new(&path))
        .await
        .unwrap();
    let item = store
        .get(&GetRequest {
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(item.unwrap().data, "v");
}

#[tokio::test]
async fn expired_rows_are_deleted_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttl.db");
    let mut config = StateConfig::new(path.to_string_lossy());
    config.cleanup_interval = Some(Duration::from_secs(1));
    let store = SqliteStateStore::open(config).await.unwrap();
    let mut req = SetRequest::new("short", "v");
    req.ttl = Some(Ttl::Expire(Duration::from_secs(1)));
    store.set(&req).await.unwrap();
    store.set(&SetRequest::new("long", "v")).await.unwrap();
    let rows = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT COUNT(*) FROM state", [], |row| row.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(rows(), 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while rows() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired row was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn binary_values_are_stored_as_daprd_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compat.db");
    let store = SqliteStateStore::open(StateConfig::new(path.to_string_lossy()))
        .await
        .unwrap();
    store
        .set(&SetRequest::new("json", "{\"a\":1}"))
        .await
        .unwrap();
    store
        .set(&SetRequest::new("bin", vec![0u8, 255, 1]))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let row = |key: &str| {
        conn.query_row(
            "SELECT value, is_binary FROM state WHERE key = ?1",
            [key],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)),
        )
        .unwrap()
    };
    assert_eq!(row("json"), ("{\"a\":1}".to_owned(), false));
    assert_eq!(row("bin"), ("AP8B".to_owned(), true));
}

#[test]
fn metadata_keys_and_errors() {
    let props = Properties::new()
        .with("connectionString", "/tmp/x.db")
        .with("tableName", "my_state")
        .with("timeout", "30")
        .with("cleanupIntervalInSeconds", "-1")
        .with("busyTimeout", "100ms")
        .with("disableWAL", "true");
    let meta = MetadataReader::new(&props);
    let config = StateConfig::from_metadata(&meta);
    assert!(meta.errors().is_empty(), "{:?}", meta.errors());
    assert_eq!(config.table_name, "my_state");
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.cleanup_interval, None);
    assert_eq!(config.busy_timeout, Duration::from_millis(100));
    assert!(config.disable_wal);

    let props = Properties::new()
        .with("tableName", "bad; DROP TABLE x")
        .with("timeout", "soon")
        .with("color", "blue");
    let meta = MetadataReader::new(&props);
    let _ = STATE_SQLITE.configure("v1", &meta, &ComponentContext::default());
    let errors = meta.errors();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("connectionString")));
    assert!(errors.iter().any(|e| e.contains("tableName")));
    assert!(errors.iter().any(|e| e.contains("timeout")));
    assert_eq!(meta.unread(), vec!["color".to_owned()]);
}

/// A write that times out is reported as failed and never lands later,
/// even once the database frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_is_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let mut config = StateConfig::new(path.to_string_lossy());
    config.timeout = Duration::from_millis(300);
    config.busy_timeout = Duration::from_millis(1500);
    let store = SqliteStateStore::open(config).await.unwrap();
    // Another process holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let err = store.set(&SetRequest::new("late", "v")).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Queued behind it: also refused, not run later.
    let err = store
        .set(&SetRequest::new("queued", "v"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    other.execute_batch("COMMIT").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in ["late", "queued"] {
        let req = GetRequest {
            key: key.into(),
            ..Default::default()
        };
        let found = store.get(&req).await.unwrap();
        assert!(
            found.is_none(),
            "{key} was applied after its caller was told it failed"
        );
    }
    store.set(&SetRequest::new("after", "v")).await.unwrap();
}

/// Large writes at once queue for the writer, and each has the whole time
/// limit once its turn comes: none fails for having waited behind others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_writes_queue_instead_of_timing_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let batch = |tag: &str| -> Vec<SetRequest> {
        (0..20_000)
            .map(|i| SetRequest::new(format!("{tag}-{i}"), "a value of some length"))
            .collect()
    };
    // How long one batch takes here.
    let store = SqliteStateStore::open(StateConfig::new(path.to_string_lossy()))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    store.bulk_set(&batch("warm")).await.unwrap();
    let one = started.elapsed();
    drop(store);
    // A limit of 2.5 batches: the fourth of four writes waits three.
    let mut config = StateConfig::new(path.to_string_lossy());
    config.timeout = one.mul_f32(2.5).max(Duration::from_millis(100));
    let store = Arc::new(SqliteStateStore::open(config).await.unwrap());
    let writes: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            let requests = batch(&format!("w{n}"));
            tokio::spawn(async move { store.bulk_set(&requests).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_missing_folder_is_a_clear_error() {
    let err = SqliteStateStore::open(StateConfig::new("/nonexistent-dir/x/state.db"))
        .await
        .err()
        .expect("opening fails");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// `nameresolution.sqlite` against the name resolution conformance suite:
/// every resolver of a case shares one database file, as the runtimes of
/// one host share the data directory.
mod name_resolution {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use mecha_component_sqlite::{NameResolutionConfig, SqliteNameResolver};
    use mecha_nameresolution::conformance::Harness;
    use mecha_nameresolution::{NameResolver, Registration};

    struct Registry {
        dir: tempfile::TempDir,
    }

    impl Default for Registry {
        fn default() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
    }

    impl Registry {
        fn config(&self) -> NameResolutionConfig {
            NameResolutionConfig::new(self.dir.path().join("nr.db").to_string_lossy())
        }
    }

    #[async_trait]
    impl Harness for Registry {
        async fn resolver(&self) -> Option<Arc<dyn NameResolver>> {
            Some(SqliteNameResolver::open(self.config()).await.unwrap())
        }

        fn unique(&self, name: &str) -> String {
            format!("{name}-{}", uuid::Uuid::new_v4().simple())
        }
    }

    mecha_nameresolution::nameresolution_conformance!(Registry);

    /// A runtime that stops heartbeating (killed) drops out after the
    /// update interval; one that keeps beating stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_runtimes_drop_out_and_live_ones_stay() {
        let registry = Registry::default();
        let mut config = registry.config();
        config.update_interval = Duration::from_millis(600);
        let alive = SqliteNameResolver::open(config.clone()).await.unwrap();
        let dying = SqliteNameResolver::open(config.clone()).await.unwrap();
        let watcher = SqliteNameResolver::open(config).await.unwrap();
        let reg = |port| Registration {
            app_id: "hb".into(),
            namespace: None,
            host: None,
            port,
        };
        alive.register(&reg(1)).await.unwrap();
        dying.register(&reg(2)).await.unwrap();
        assert_eq!(watcher.resolve("hb", None).await.unwrap().len(), 2);
        drop(dying); // its heartbeat stops, as when the process is killed
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            watcher.resolve("hb", None).await.unwrap(),
            vec!["127.0.0.1:1".to_owned()]
        );
    }
}

mod pubsub;

/// `lock.sqlite` against the lock conformance suite: each case on a file of
/// its own, and the racing case through two stores on one file (as two
/// runtimes sharing the data directory).
mod lock {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_component_sqlite::{LockConfig, SqliteLockStore};
    use mecha_lock::LockStore;
    use mecha_lock::conformance::Harness;

    #[derive(Default)]
    struct SqliteLocks;

    #[async_trait]
    impl Harness for SqliteLocks {
        async fn component(&self) -> Option<Arc<dyn LockStore>> {
            let dir = tempfile::tempdir().unwrap().keep();
            let config = LockConfig::new(dir.join("lock.db").to_string_lossy());
            Some(SqliteLockStore::open(config).await.unwrap())
        }

        async fn pair(&self) -> Option<(Arc<dyn LockStore>, Arc<dyn LockStore>)> {
            let dir = tempfile::tempdir().unwrap().keep();
            let path = dir.join("lock.db").to_string_lossy().into_owned();
            let first = SqliteLockStore::open(LockConfig::new(&path)).await.unwrap();
            let second = SqliteLockStore::open(LockConfig::new(&path)).await.unwrap();
            Some((first, second))
        }
    }

    mecha_lock::lock_conformance!(SqliteLocks);
}

/// `scheduler.sqlite` against the scheduler conformance suite: each case on
/// a file of its own, and the racing cases through two stores on one file
/// (as two runtimes sharing the data directory).
mod scheduler {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_component_sqlite::{SchedulerConfig, SqliteJobStore};
    use mecha_scheduler::JobStore;
    use mecha_scheduler::conformance::Harness;

    #[derive(Default)]
    struct SqliteJobs;

    #[async_trait]
    impl Harness for SqliteJobs {
        async fn store(&self) -> Option<Arc<dyn JobStore>> {
            let dir = tempfile::tempdir().unwrap().keep();
            let config = SchedulerConfig::new(dir.join("scheduler.db").to_string_lossy());
            Some(SqliteJobStore::open(config).await.unwrap())
        }

        async fn pair(&self) -> Option<(Arc<dyn JobStore>, Arc<dyn JobStore>)> {
            let dir = tempfile::tempdir().unwrap().keep();
            let path = dir.join("scheduler.db").to_string_lossy().into_owned();
            let first = SqliteJobStore::open(SchedulerConfig::new(&path))
                .await
                .unwrap();
            let second = SqliteJobStore::open(SchedulerConfig::new(&path))
                .await
                .unwrap();
            Some((first, second))
        }
    }

    mecha_scheduler::scheduler_conformance!(SqliteJobs);
}
