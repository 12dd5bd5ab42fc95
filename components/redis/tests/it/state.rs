//! `state.redis` against the state conformance suite, plus what is
//! particular to Redis: daprd's data layout read and written both ways,
//! Dapr's metadata keys, and surviving a killed connection.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_component_redis::{RedisStateConfig, RedisStateStore};
use mecha_core::testing::service_available;
use mecha_core::{MetadataReader, Properties};
use mecha_state::conformance::Harness;
use mecha_state::*;

use crate::pubsub::address;

fn config() -> RedisStateConfig {
    let props = Properties::new().with("redisHost", &address());
    let reader = MetadataReader::new(&props);
    let config = RedisStateConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config
}

async fn store() -> Option<RedisStateStore> {
    if !service_available("Redis", &address()) {
        return None;
    }
    Some(RedisStateStore::connect(config()).await.unwrap())
}

/// A connection of the test's own, for raw commands.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{}", address()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

#[derive(Default)]
struct Redis;

#[async_trait]
impl Harness for Redis {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        Some(Arc::new(store().await?))
    }
}

mecha_state::state_conformance!(Redis);

fn get_req(key: &str) -> GetRequest {
    GetRequest {
        key: key.to_owned(),
        ..GetRequest::default()
    }
}

#[tokio::test]
async fn daprd_layout_both_ways() {
    let Some(store) = store().await else {
        return;
    };
    let mut conn = raw().await;
    // What daprd writes: a hash with data and version.
    let theirs = unique("daprd");
    let _: () = redis::cmd("HSET")
        .arg(&theirs)
        .arg("data")
        .arg("{\"a\":1}")
        .arg("version")
        .arg("3")
        .query_async(&mut conn)
        .await
        .unwrap();
    let item = store.get(&get_req(&theirs)).await.unwrap().unwrap();
    assert_eq!(item.data, "{\"a\":1}");
    assert_eq!(item.etag.as_deref(), Some("3"));
    store
        .set(&SetRequest::new(theirs.clone(), "\"next\"").with_etag("3"))
        .await
        .unwrap();
    let version: i64 = redis::cmd("HGET")
        .arg(&theirs)
        .arg("version")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(version > 3, "the version moves on: {version}");

    // What Mecha writes, as daprd reads it.
    let ours = unique("mecha");
    store
        .set(&SetRequest::new(ours.clone(), "hello"))
        .await
        .unwrap();
    let (data, version): (String, String) = redis::cmd("HMGET")
        .arg(&ours)
        .arg("data")
        .arg("version")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(data, "hello");
    let etag = store.get(&get_req(&ours)).await.unwrap().unwrap().etag;
    assert_eq!(etag.as_deref(), Some(version.as_str()));

    // A plain string (an older layout) reads without an etag, and a write
    // replaces it with a hash.
    let plain = unique("plain");
    let _: () = redis::cmd("SET")
        .arg(&plain)
        .arg("old")
        .query_async(&mut conn)
        .await
        .unwrap();
    let item = store.get(&get_req(&plain)).await.unwrap().unwrap();
    assert_eq!((item.data.as_ref(), item.etag), (&b"old"[..], None));
    store
        .set(&SetRequest::new(plain.clone(), "new"))
        .await
        .unwrap();
    let kind: String = redis::cmd("TYPE")
        .arg(&plain)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "hash");
    for key in [theirs, ours, plain] {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_recreated_key_does_not_match_an_old_etag() {
    let Some(store) = store().await else {
        return;
    };
    let key = unique("aba");
    store.set(&SetRequest::new(key.clone(), "1")).await.unwrap();
    let old = store
        .get(&get_req(&key))
        .await
        .unwrap()
        .unwrap()
        .etag
        .unwrap();
    store
        .delete(&DeleteRequest::new(key.clone()))
        .await
        .unwrap();
    store.set(&SetRequest::new(key.clone(), "2")).await.unwrap();
    let err = store
        .set(&SetRequest::new(key.clone(), "3").with_etag(old))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    store.delete(&DeleteRequest::new(key)).await.unwrap();
}

#[test]
fn dapr_metadata_keys() {
    let props = Properties::new()
        .with("redisHost", "localhost:6379")
        .with("redisPassword", "secret")
        .with("redisDB", "3")
        .with("enableTLS", "false")
        .with("ttlInSeconds", "120")
        .with("maxRetries", "5")
        .with("maxRetryBackoff", "1000000")
        .with("queryIndexes", "[]");
    let reader = MetadataReader::new(&props);
    let config = RedisStateConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    assert!(reader.unread().is_empty(), "{:?}", reader.unread());
    assert_eq!(
        config.default_ttl,
        Some(Ttl::Expire(Duration::from_secs(120)))
    );
    assert_eq!(config.settings.db, 3);
    let props = Properties::new()
        .with("redisHost", "localhost:6379")
        .with("ttlInSeconds", "soon");
    let reader = MetadataReader::new(&props);
    RedisStateConfig::from_metadata(&reader);
    assert!(
        reader.errors().iter().any(|e| e.contains("ttlInSeconds")),
        "{:?}",
        reader.errors()
    );
}

#[tokio::test]
async fn default_ttl_applies_to_writes_without_one() {
    let Some(_) = store().await else {
        return;
    };
    let mut config = config();
    config.default_ttl = Some(Ttl::Expire(Duration::from_secs(100)));
    let store = RedisStateStore::connect(config).await.unwrap();
    let key = unique("ttl");
    store.set(&SetRequest::new(key.clone(), "v")).await.unwrap();
    let item = store.get(&get_req(&key)).await.unwrap().unwrap();
    assert!(item.metadata.contains_key(TTL_EXPIRE_TIME_KEY));
    let mut never = SetRequest::new(key.clone(), "v");
    never.ttl = Some(Ttl::Never);
    store.set(&never).await.unwrap();
    let item = store.get(&get_req(&key)).await.unwrap().unwrap();
    assert!(!item.metadata.contains_key(TTL_EXPIRE_TIME_KEY), "-1 wins");
    store.delete(&DeleteRequest::new(key)).await.unwrap();
}

/// The database index only [`survives_killed_connections`] uses, so the
/// clients on it are that test's store alone.
const KILL_DB: i64 = 9;

/// Kills the connections of the clients on database `db`.
async fn kill_clients(db: i64) -> usize {
    let mut conn = raw().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = list
        .lines()
        .filter(|line| line.contains(&format!(" db={db} ")))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect();
    for id in &ids {
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await;
    }
    ids.len()
}

/// `CLIENT KILL` on the store's connection while it writes.
#[tokio::test]
async fn survives_killed_connections() {
    if store().await.is_none() {
        return;
    }
    let mut config = config();
    config.settings.db = KILL_DB;
    let store = Arc::new(RedisStateStore::connect(config).await.unwrap());
    mecha_state::conformance::writes_survive_connection_kills(store, || kill_clients(KILL_DB))
        .await;
}
