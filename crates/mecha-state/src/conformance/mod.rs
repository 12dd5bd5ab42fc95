//! The state conformance suite: every state component must pass it against
//! its real backend. [`state_conformance!`](crate::state_conformance)
//! expands it into one `#[tokio::test]` per case, so a failure names its case
//! and `cargo test etag_` runs a group.
//!
//! Each case asks the harness for a fresh, isolated component. Cases for a
//! capability the component does not declare assert that it is refused with
//! [`StateError::Unsupported`] instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::*;

mod query;
pub use query::*;

/// Gives each case a fresh, isolated component.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new component with its own table, file or key space, or `None` when
    /// its backend is unreachable and the case should be skipped (see
    /// `mecha_core::testing::service_available`).
    async fn component(&self) -> Option<Arc<dyn StateStore>>;
}

use mecha_core::testing::unique;

/// A store on a fresh component, with its own app id as key prefix.
async fn store(harness: &impl Harness) -> Option<KeyedStateStore> {
    let component = harness.component().await?;
    let keys = KeyPrefix::AppId.scheme(&unique("app"), "conformance", None);
    Some(KeyedStateStore::new("conformance", component, keys))
}

/// Asserts that `got` is the value written: byte for byte, or as JSON for
/// a store that re-formats JSON values.
fn assert_data(store: &KeyedStateStore, got: &Bytes, written: &Bytes) {
    if store.component().reformats_json()
        && let (Ok(a), Ok(b)) = (
            serde_json::from_slice::<serde_json::Value>(got),
            serde_json::from_slice::<serde_json::Value>(written),
        )
    {
        assert_eq!(a, b, "the JSON value written is read back");
        return;
    }
    assert_eq!(got, written, "the value written is read back");
}

async fn get(store: &KeyedStateStore, key: &str) -> Option<GetResponse> {
    store
        .get(GetRequest {
            key: key.to_owned(),
            ..GetRequest::default()
        })
        .await
        .expect("get succeeds")
}

async fn etag_of(store: &KeyedStateStore, key: &str) -> String {
    get(store, key)
        .await
        .expect("item exists")
        .etag
        .expect("store declares ETAG, so items carry an etag")
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Set, get, overwrite and delete one item.
pub async fn crud_round_trip(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    store
        .save(vec![SetRequest::new(
            "k1",
            value("{\"a\": 1, \"b\": [true, null]}"),
        )])
        .await
        .unwrap();
    let item = get(&store, "k1").await.expect("saved item is found");
    assert_data(
        &store,
        &item.data,
        &value("{\"a\": 1, \"b\": [true, null]}"),
    );
    if store.has(Feature::Etag) {
        assert!(
            item.etag.as_deref().is_some_and(|e| !e.is_empty()),
            "an etag is returned"
        );
    }
    store
        .save(vec![SetRequest::new("k1", value("\"second\""))])
        .await
        .unwrap();
    assert_data(
        &store,
        &get(&store, "k1").await.unwrap().data,
        &value("\"second\""),
    );
    store.delete(DeleteRequest::new("k1")).await.unwrap();
    assert!(get(&store, "k1").await.is_none(), "deleted item is gone");
}

/// A missing key is `None`, and deleting it without an etag succeeds.
pub async fn missing_key(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    assert!(get(&store, "never-written").await.is_none());
    store
        .delete(DeleteRequest::new("never-written"))
        .await
        .unwrap();
}

/// Values are bytes: binary, empty and large values survive unchanged.
pub async fn binary_and_large_values(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    let binary = Bytes::from_static(&[0, 159, 146, 150, 255, 0, 1]);
    let large = Bytes::from(vec![b'x'; 1024 * 1024]);
    store
        .save(vec![
            SetRequest::new("bin", binary.clone()),
            SetRequest::new("large", large.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(get(&store, "bin").await.unwrap().data, binary);
    assert_eq!(get(&store, "large").await.unwrap().data, large);
}

/// Values a JSON column would refuse — a lone surrogate escape, nesting far
/// deeper than any backend takes, an escaped NUL — round-trip like any
/// other, through a save and through a transaction (a store keeps them as
/// binary where it must).
pub async fn hostile_values_round_trip(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    let deep = |n: usize| Bytes::from(format!("{}{}", "[".repeat(n), "]".repeat(n)));
    let values = [
        ("surrogate", Bytes::from_static(br#""\ud800""#)),
        ("surrogate-key", Bytes::from_static(br#"{"\udc00":1}"#)),
        ("nul", Bytes::from_static(br#"{"a":"x\u0000y"}"#)),
        ("deep", deep(100_000)),
        ("deep-32", deep(32)),
        ("deep-31", deep(31)),
    ];
    store
        .save(
            values
                .iter()
                .map(|(key, value)| SetRequest::new(*key, value.clone()))
                .collect(),
        )
        .await
        .unwrap();
    for (key, value) in &values {
        assert_data(&store, &get(&store, key).await.expect(key).data, value);
    }
    if store.has(Feature::Transactional) {
        let ops = values
            .iter()
            .map(|(key, value)| {
                Operation::Upsert(SetRequest::new(format!("tx-{key}"), value.clone()))
            })
            .collect();
        store.transact(ops, &Metadata::new()).await.unwrap();
        for (key, value) in &values {
            let got = get(&store, &format!("tx-{key}")).await.expect(key);
            assert_data(&store, &got.data, value);
        }
    }
}

/// Bulk get returns every key in request order, missing ones as `None`.
pub async fn bulk_get(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    let items = (0..5).map(|i| SetRequest::new(format!("b{i}"), value(&format!("{i}"))));
    store.save(items.collect()).await.unwrap();
    // A key asked twice is answered twice.
    let keys: Vec<String> = ["b3", "missing", "b0", "b4", "b1", "b2", "b3"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    for parallelism in [1, 3, 100] {
        let items = store
            .bulk_get(
                keys.clone(),
                parallelism,
                Consistency::Eventual,
                &Metadata::new(),
            )
            .await
            .unwrap();
        let got: Vec<(String, Option<Bytes>)> = items
            .into_iter()
            .map(|item| (item.key, item.result.unwrap().map(|r| r.data)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("b3".into(), Some(value("3"))),
                ("missing".into(), None),
                ("b0".into(), Some(value("0"))),
                ("b4".into(), Some(value("4"))),
                ("b1".into(), Some(value("1"))),
                ("b2".into(), Some(value("2"))),
                ("b3".into(), Some(value("3"))),
            ]
        );
    }
}

/// Bulk save and bulk delete.
pub async fn bulk_save_and_delete(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    let keys = ["d1", "d2", "d3"];
    let reqs = keys.iter().map(|k| SetRequest::new(*k, value(k))).collect();
    store.save(reqs).await.unwrap();
    for key in keys {
        assert_eq!(get(&store, key).await.unwrap().data, value(key));
    }
    store
        .delete_many(keys.iter().map(|k| DeleteRequest::new(*k)).collect())
        .await
        .unwrap();
    for key in keys {
        assert!(get(&store, key).await.is_none());
    }
}

/// Last-write: writes without an etag always win; a given etag is checked.
pub async fn etag_last_write(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    if !store.has(Feature::Etag) {
        let err = store
            .save(vec![SetRequest::new("e", value("1")).with_etag("1")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::Unsupported(Feature::Etag)),
            "{err}"
        );
        return;
    }
    store
        .save(vec![SetRequest::new("e", value("1"))])
        .await
        .unwrap();
    let first = etag_of(&store, "e").await;
    store
        .save(vec![SetRequest::new("e", value("2"))])
        .await
        .unwrap();
    let second = etag_of(&store, "e").await;
    assert_ne!(first, second, "every write changes the etag");
    // The stale etag no longer matches.
    let err = store
        .save(vec![SetRequest::new("e", value("3")).with_etag(&first)])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    assert_eq!(get(&store, "e").await.unwrap().data, value("2"));
    // The current one does, and an empty etag counts as none.
    store
        .save(vec![SetRequest::new("e", value("4")).with_etag(&second)])
        .await
        .unwrap();
    store
        .save(vec![SetRequest::new("e", value("5")).with_etag("")])
        .await
        .unwrap();
    assert_eq!(get(&store, "e").await.unwrap().data, value("5"));
}

/// First-write: without an etag only the first write succeeds.
pub async fn etag_first_write(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    if !store.has(Feature::Etag) {
        let err = store
            .save(vec![SetRequest::new("f", value("1")).first_write()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::Unsupported(Feature::Etag)),
            "{err}"
        );
        return;
    }
    store
        .save(vec![SetRequest::new("f", value("1")).first_write()])
        .await
        .unwrap();
    let err = store
        .save(vec![SetRequest::new("f", value("2")).first_write()])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    let etag = etag_of(&store, "f").await;
    store
        .save(vec![
            SetRequest::new("f", value("3"))
                .first_write()
                .with_etag(&etag),
        ])
        .await
        .unwrap();
    let err = store
        .save(vec![
            SetRequest::new("f", value("4"))
                .first_write()
                .with_etag(&etag),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    assert_eq!(get(&store, "f").await.unwrap().data, value("3"));
}

/// A wrong etag fails a write or delete and changes nothing; a well-formed
/// etag on a missing item is a mismatch; a malformed etag is invalid.
pub async fn etag_mismatch(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    if !store.has(Feature::Etag) {
        let err = store
            .delete(DeleteRequest::new("m").with_etag("1"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::Unsupported(Feature::Etag)),
            "{err}"
        );
        return;
    }
    store
        .save(vec![SetRequest::new("m", value("1"))])
        .await
        .unwrap();
    let etag = etag_of(&store, "m").await;
    store
        .save(vec![SetRequest::new("other", value("x"))])
        .await
        .unwrap();
    let foreign = etag_of(&store, "other").await;

    let err = store
        .delete(DeleteRequest::new("m").with_etag(&foreign))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    assert!(
        get(&store, "m").await.is_some(),
        "a failed delete keeps the item"
    );

    let err = store
        .save(vec![SetRequest::new("nope", value("1")).with_etag(&etag)])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    assert!(get(&store, "nope").await.is_none());

    let err = store
        .save(vec![
            SetRequest::new("m", value("2")).with_etag("not a valid etag!"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagInvalid(_)), "{err}");

    // A bulk write attempts every item; the etag failure is reported.
    let err = store
        .save(vec![
            SetRequest::new("m", value("3")).with_etag(&foreign),
            SetRequest::new("bulk-ok", value("ok")),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    assert_eq!(get(&store, "bulk-ok").await.unwrap().data, value("ok"));
    assert_eq!(get(&store, "m").await.unwrap().data, value("1"));

    store
        .delete(DeleteRequest::new("m").with_etag(&etag))
        .await
        .unwrap();
    assert!(get(&store, "m").await.is_none());
}

/// N writers race with the same etag: exactly one wins.
pub async fn etag_concurrent_writers(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    if !store.has(Feature::Etag) {
        return; // refusal of etags is covered by etag_last_write
    }
    store
        .save(vec![SetRequest::new("race", value("0"))])
        .await
        .unwrap();
    let etag = etag_of(&store, "race").await;
    let writers = 16;
    let mut tasks = Vec::new();
    for i in 0..writers {
        let store = store.clone();
        let etag = etag.clone();
        tasks.push(tokio::spawn(async move {
            let req = SetRequest::new("race", value(&format!("writer-{i}"))).with_etag(etag);
            (i, store.save(vec![req]).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(StateError::EtagMismatch)) => {}
            (_, Err(err)) => panic!("unexpected error: {err}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let expected = value(&format!("writer-{}", winners[0]));
    assert_eq!(get(&store, "race").await.unwrap().data, expected);
}

/// Items with a TTL are readable until they expire and never after; -1
/// means no expiry. Stores without TTL refuse it.
pub async fn ttl_expiry(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    let with_ttl = |key: &str, ttl: &str| {
        SetRequest::new(key, value("v")).with_metadata(TTL_METADATA_KEY, ttl)
    };
    if !store.has(Feature::Ttl) {
        let err = store.save(vec![with_ttl("t", "1")]).await.unwrap_err();
        assert!(
            matches!(err, StateError::Unsupported(Feature::Ttl)),
            "{err}"
        );
        return;
    }
    store.save(vec![with_ttl("short", "1")]).await.unwrap();
    store.save(vec![with_ttl("forever", "-1")]).await.unwrap();
    store.save(vec![with_ttl("reset", "1")]).await.unwrap();
    store
        .save(vec![SetRequest::new("reset", value("v"))])
        .await
        .unwrap();
    store.save(vec![with_ttl("zero", "0")]).await.unwrap();
    let item = get(&store, "short").await.expect("readable before expiry");
    let expiry = item
        .metadata
        .get(TTL_EXPIRE_TIME_KEY)
        .unwrap_or_else(|| panic!("ttlExpireTime is reported: {:?}", item.metadata));
    let expiry = mecha_core::units::parse_rfc3339(expiry)
        .unwrap_or_else(|| panic!("ttlExpireTime is RFC 3339: {expiry}"));
    let now = std::time::SystemTime::now();
    assert!(
        expiry > now - Duration::from_secs(1) && expiry < now + Duration::from_secs(3),
        "ttlExpireTime is about a second from now"
    );
    let forever = get(&store, "forever").await.unwrap();
    assert!(
        !forever.metadata.contains_key(TTL_EXPIRE_TIME_KEY),
        "-1 has no expiry"
    );
    let err = store.save(vec![with_ttl("bad", "soon")]).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidTtl(_)), "{err}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        get(&store, "short").await.is_none(),
        "expired item is not returned"
    );
    let bulk = store
        .bulk_get(
            vec!["short".into()],
            1,
            Consistency::Eventual,
            &Metadata::new(),
        )
        .await
        .unwrap();
    assert!(bulk[0].result.as_ref().unwrap().is_none(), "nor in bulk");
    assert!(get(&store, "forever").await.is_some());
    assert!(
        get(&store, "zero").await.is_some(),
        "ttlInSeconds 0 means no expiry"
    );
    assert!(
        get(&store, "reset").await.is_some(),
        "a later write without TTL clears it"
    );
}

/// An expired item is gone for every purpose, even before any cleanup
/// removed it: first-write may create it again, and its old etag matches
/// nothing.
pub async fn expired_items_count_as_missing(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    if !store.has(Feature::Ttl) || !store.has(Feature::Etag) {
        return; // refusals are covered by ttl_expiry and etag_last_write
    }
    let with_ttl =
        |key: &str| SetRequest::new(key, value("old")).with_metadata(TTL_METADATA_KEY, "1");
    let keys = ["gone-fw", "gone-etag", "gone-delete"];
    store.save(keys.map(with_ttl).to_vec()).await.unwrap();
    let etag = etag_of(&store, "gone-etag").await;
    let delete_etag = etag_of(&store, "gone-delete").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    store
        .save(vec![SetRequest::new("gone-fw", value("new")).first_write()])
        .await
        .expect("first-write over an expired item succeeds");
    assert_eq!(get(&store, "gone-fw").await.unwrap().data, value("new"));
    let err = store
        .save(vec![
            SetRequest::new("gone-etag", value("new")).with_etag(etag),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
    let err = store
        .delete(DeleteRequest::new("gone-delete").with_etag(delete_etag))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err}");
}

/// A transaction applies every operation or none.
pub async fn transaction_atomicity(harness: &impl Harness) {
    let Some(store) = store(harness).await else {
        return;
    };
    let ops = vec![Operation::Upsert(SetRequest::new("t1", value("1")))];
    if !store.has(Feature::Transactional) {
        let err = store.transact(ops, &Metadata::new()).await.unwrap_err();
        assert!(
            matches!(err, StateError::Unsupported(Feature::Transactional)),
            "{err}"
        );
        return;
    }
    store
        .save(vec![SetRequest::new("t2", value("old"))])
        .await
        .unwrap();
    store.transact(ops, &Metadata::new()).await.unwrap();
    assert_eq!(get(&store, "t1").await.unwrap().data, value("1"));

    if store.has(Feature::Etag) {
        // The last operation fails on a stale (well-formed) etag: nothing
        // before it may stick.
        let stale = etag_of(&store, "t2").await;
        store
            .save(vec![SetRequest::new("t2", value("old"))])
            .await
            .unwrap();
        let ops = vec![
            Operation::Upsert(SetRequest::new("t3", value("3"))),
            Operation::Upsert(SetRequest::new("t1", value("changed"))),
            Operation::Delete(DeleteRequest::new("t2").with_etag(stale)),
        ];
        let err = store.transact(ops, &Metadata::new()).await.unwrap_err();
        assert!(matches!(err, StateError::EtagMismatch), "{err}");
        assert!(get(&store, "t3").await.is_none(), "rolled back upsert");
        assert_eq!(
            get(&store, "t2").await.unwrap().data,
            value("old"),
            "rolled back delete"
        );
        assert_eq!(
            get(&store, "t1").await.unwrap().data,
            value("1"),
            "rolled back update"
        );
    }

    let ops = vec![
        Operation::Upsert(SetRequest::new("t3", value("3"))),
        Operation::Delete(DeleteRequest::new("t2")),
        Operation::Upsert(SetRequest::new("t1", value("new"))),
        Operation::Delete(DeleteRequest::new("never-existed")),
    ];
    store.transact(ops, &Metadata::new()).await.unwrap();
    assert_eq!(get(&store, "t3").await.unwrap().data, value("3"));
    assert!(get(&store, "t2").await.is_none());
    assert_eq!(get(&store, "t1").await.unwrap().data, value("new"));
}

/// Each `keyPrefix` strategy stores the key it should, and keys with `||`
/// or empty keys are refused before reaching the component.
pub async fn key_prefixes(harness: &impl Harness) {
    let Some(component) = harness.component().await else {
        return;
    };
    // Unique names, so that the raw keys never meet another case's.
    let (app, store_name, ns) = (unique("app"), unique("store"), unique("ns"));
    let (custom, key) = (unique("prefix"), unique("k"));
    let mixed_case = format!("My{custom}");
    let cases = [
        ("appid", None, format!("{app}||{key}")),
        ("name", None, format!("{store_name}||{key}")),
        ("namespace", Some(ns.as_str()), format!("{ns}.{app}||{key}")),
        ("namespace", None, format!("{app}||{key}")),
        ("none", None, key.clone()),
        (custom.as_str(), None, format!("{custom}||{key}")),
        (mixed_case.as_str(), None, format!("my{custom}||{key}")),
    ];
    for (strategy, namespace, stored) in cases {
        let scheme = KeyPrefix::parse(Some(strategy))
            .unwrap()
            .scheme(&app, &store_name, namespace);
        let store = KeyedStateStore::new(store_name.clone(), component.clone(), scheme);
        store
            .save(vec![SetRequest::new(key.clone(), value(strategy))])
            .await
            .unwrap();
        let raw = component
            .get(&GetRequest {
                key: stored.clone(),
                ..GetRequest::default()
            })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{strategy}: stored as {stored}"));
        assert_eq!(raw.data, value(strategy));
        assert_eq!(get(&store, &key).await.unwrap().data, value(strategy));
        store.delete(DeleteRequest::new(key.clone())).await.unwrap();
    }
    let store = KeyedStateStore::new("s", component, KeyPrefix::AppId.scheme(&app, "s", None));
    let err = store
        .save(vec![SetRequest::new("a||b", value("1"))])
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::IllegalKey(_)), "{err}");
    let err = store.delete(DeleteRequest::new("")).await.unwrap_err();
    assert!(matches!(err, StateError::EmptyKey), "{err}");
    // One invalid key fails a bulk get as a whole, as in daprd.
    let err = store
        .bulk_get(
            vec!["ok".into(), "x||y".into()],
            2,
            Consistency::Eventual,
            &Metadata::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::IllegalKey(_)), "{err}");
}

/// Writes to one key while `kill` cuts the store's connections to its
/// backend three times (it returns how many it cut): the store must
/// reconnect by itself, and the last write it confirmed must be what is
/// stored. For each backend's resilience test (`CLIENT KILL`,
/// `pg_terminate_backend`, `KILL`).
pub async fn writes_survive_connection_kills<F, Fut>(store: Arc<dyn StateStore>, mut kill: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    const WRITES: u64 = 300;
    let key = unique("kill");
    let write = |n: u64| SetRequest::new(key.clone(), n.to_string());
    store.set(&write(0)).await.unwrap();
    let writer = {
        let (store, requests): (_, Vec<SetRequest>) =
            (store.clone(), (1..=WRITES).map(write).collect());
        tokio::spawn(async move {
            let mut confirmed = 0;
            for (n, request) in (1..).zip(requests) {
                if store.set(&request).await.is_ok() {
                    confirmed = n;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            confirmed
        })
    };
    let mut killed = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed += kill().await;
    }
    let confirmed = writer.await.unwrap();
    assert!(
        killed >= 3,
        "the store's connections were cut ({killed} times)"
    );
    assert_eq!(confirmed, WRITES, "the writes after the kills succeed");
    let stored = store
        .get(&GetRequest {
            key: key.clone(),
            ..GetRequest::default()
        })
        .await
        .unwrap()
        .expect("the key is there");
    assert_eq!(
        stored.data,
        confirmed.to_string(),
        "the last confirmed write is stored"
    );
    store.delete(&DeleteRequest::new(key)).await.unwrap();
}

/// Expands the state conformance suite into one `#[tokio::test]` per case
/// for a harness type that implements `Default` and [`Harness`].
#[macro_export]
macro_rules! state_conformance {
    ($harness:ty) => {
        $crate::state_conformance!(@cases $harness;
            crud_round_trip, missing_key, binary_and_large_values, hostile_values_round_trip, bulk_get,
            bulk_save_and_delete, etag_last_write, etag_first_write, etag_mismatch,
            etag_concurrent_writers, ttl_expiry, expired_items_count_as_missing,
            transaction_atomicity, key_prefixes, query_filters, query_typed_comparisons,
            query_sorting, query_paging, query_scope, query_invalid);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}
