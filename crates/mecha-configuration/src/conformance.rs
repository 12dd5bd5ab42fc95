//! The configuration store conformance suite: every store must pass it
//! against its real backend. [`configuration_conformance!`](crate::configuration_conformance)
//! expands it into one `#[tokio::test]` per case.
//!
//! A store only reads; the harness writes to the backend directly, as the
//! operator of a configuration store would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::*;

/// Writes items straight to a store's backend.
#[async_trait]
pub trait Writer: Send + Sync {
    async fn set(&self, key: &str, value: &str, version: &str);
    async fn delete(&self, key: &str);
}

/// Gives each case a store, a writer on its backend, and the metadata
/// its subscriptions need (such as PostgreSQL's `pgNotifyChannel`).
#[async_trait]
pub trait Harness: Send + Sync {
    async fn component(&self) -> Option<(Arc<dyn ConfigurationStore>, Arc<dyn Writer>, Metadata)>;
}

/// A key no other case or run uses.
fn key(name: &str) -> String {
    mecha_core::testing::unique(name)
}

fn item(value: &str, version: &str) -> Item {
    Item {
        value: value.into(),
        version: version.into(),
        metadata: Default::default(),
    }
}

/// Records the updates a subscription gets.
#[derive(Default)]
pub struct Recorder {
    updates: Mutex<Vec<(String, Items)>>,
    arrived: Notify,
}

#[async_trait]
impl UpdateHandler for Recorder {
    async fn update(&self, subscription_id: &str, items: Items) {
        self.updates
            .lock()
            .unwrap()
            .push((subscription_id.to_owned(), items));
        self.arrived.notify_waiters();
    }
}

impl Recorder {
    /// The latest item for `key` over all updates so far.
    fn latest(&self, key: &str) -> Option<Item> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|(_, items)| items.get(key).cloned())
    }

    fn keys(&self) -> Vec<String> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, items)| items.keys().cloned())
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Waits (up to 5 s) until `key` is at `want`.
    async fn wait_for(&self, key: &str, want: &Item) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let arrived = self.arrived.notified();
            if self.latest(key).as_ref() == Some(want) {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "no update of {key} to {want:?}; got {:?}",
                    self.updates.lock().unwrap()
                );
            }
        }
    }
}

/// Items are read by key, with their versions; missing keys are left out,
/// and no keys reads them all.
pub async fn get_items(harness: &impl Harness) {
    let Some((store, writer, _)) = harness.component().await else {
        return;
    };
    let (a, b) = (key("a"), key("b"));
    writer.set(&a, "value-a", "1").await;
    writer.set(&b, "value b", "").await;
    let items = store
        .get(&[a.clone(), b.clone()], &Metadata::new())
        .await
        .unwrap();
    assert_eq!(items.get(&a), Some(&item("value-a", "1")));
    assert_eq!(items.get(&b), Some(&item("value b", "")));
    let items = store
        .get(&[a.clone(), key("missing")], &Metadata::new())
        .await
        .unwrap();
    assert_eq!(
        items.keys().collect::<Vec<_>>(),
        [&a],
        "missing keys are left out"
    );
    let all = store.get(&[], &Metadata::new()).await.unwrap();
    assert!(
        all.contains_key(&a) && all.contains_key(&b),
        "no keys reads every item"
    );
    writer.set(&a, "changed", "2").await;
    let items = store
        .get(std::slice::from_ref(&a), &Metadata::new())
        .await
        .unwrap();
    assert_eq!(items.get(&a), Some(&item("changed", "2")));
    for k in [a, b] {
        writer.delete(&k).await;
    }
}

/// A subscription to some keys gets their changes, deletions included,
/// and nothing of other keys.
pub async fn subscription_gets_changes(harness: &impl Harness) {
    let Some((store, writer, metadata)) = harness.component().await else {
        return;
    };
    let configurations = ConfigurationHandle::new("conformance", store);
    let (watched, other) = (key("watched"), key("other"));
    let recorder = Arc::new(Recorder::default());
    let (id, _stop) = configurations
        .subscribe(std::slice::from_ref(&watched), &metadata, recorder.clone())
        .await
        .unwrap();
    writer.set(&watched, "first", "1").await;
    recorder.wait_for(&watched, &item("first", "1")).await;
    writer.set(&other, "elsewhere", "1").await;
    writer.set(&watched, "second", "2").await;
    recorder.wait_for(&watched, &item("second", "2")).await;
    writer.delete(&watched).await;
    recorder.wait_for(&watched, &item("", "")).await;
    assert!(
        !recorder.keys().contains(&other),
        "no update of a key not subscribed to"
    );
    assert!(
        recorder.ids().iter().all(|i| *i == id),
        "updates carry the id"
    );
    assert!(configurations.unsubscribe(&id));
    writer.delete(&other).await;
}

/// A subscription to no keys gets every change.
pub async fn subscription_to_every_key(harness: &impl Harness) {
    let Some((store, writer, metadata)) = harness.component().await else {
        return;
    };
    let configurations = ConfigurationHandle::new("conformance", store);
    let recorder = Arc::new(Recorder::default());
    let (id, _stop) = configurations
        .subscribe(&[], &metadata, recorder.clone())
        .await
        .unwrap();
    let (a, b) = (key("any_a"), key("any_b"));
    writer.set(&a, "1", "v1").await;
    writer.set(&b, "2", "v1").await;
    recorder.wait_for(&a, &item("1", "v1")).await;
    recorder.wait_for(&b, &item("2", "v1")).await;
    assert!(configurations.unsubscribe(&id));
    for k in [a, b] {
        writer.delete(&k).await;
    }
}

/// After unsubscribing nothing more arrives; an unknown id is refused;
/// two subscriptions are independent.
pub async fn unsubscribe_stops_updates(harness: &impl Harness) {
    let Some((store, writer, metadata)) = harness.component().await else {
        return;
    };
    let configurations = ConfigurationHandle::new("conformance", store);
    let k = key("stop");
    let (first, second) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let (first_id, _) = configurations
        .subscribe(std::slice::from_ref(&k), &metadata, first.clone())
        .await
        .unwrap();
    let (second_id, _) = configurations
        .subscribe(std::slice::from_ref(&k), &metadata, second.clone())
        .await
        .unwrap();
    assert_ne!(first_id, second_id);
    writer.set(&k, "both", "1").await;
    first.wait_for(&k, &item("both", "1")).await;
    second.wait_for(&k, &item("both", "1")).await;
    assert!(configurations.unsubscribe(&first_id));
    assert!(!configurations.unsubscribe(&first_id), "once");
    assert!(!configurations.unsubscribe("no-such-id"));
    writer.set(&k, "second only", "2").await;
    second.wait_for(&k, &item("second only", "2")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        first.latest(&k),
        Some(item("both", "1")),
        "an ended subscription gets nothing more"
    );
    configurations.close();
    writer.delete(&k).await;
}

/// Expands the configuration store conformance suite into one
/// `#[tokio::test]` per case for a harness type that implements `Default`
/// and [`Harness`].
#[macro_export]
macro_rules! configuration_conformance {
    ($harness:ty) => {
        $crate::configuration_conformance!(@cases $harness;
            get_items, subscription_gets_changes, subscription_to_every_key,
            unsubscribe_stops_updates);
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
