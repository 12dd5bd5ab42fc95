//! The configuration building block: read configuration items, and be
//! told when they change.
//!
//! - [`ConfigurationStore`] is the contract every store implements: `get`
//!   and `watch` (a stream of changes for some keys, or all of them).
//! - [`ConfigurationHandle`] is the block's handle on one configured store: it
//!   keeps the subscriptions by id, so they can be ended by id
//!   (unsubscribe) or all at once (shutdown).
//! - `conformance` (feature `conformance`) is the suite every store must
//!   pass, one test per case through [`configuration_conformance!`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

mod block;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::ConfigurationBlock;

/// Request metadata (`metadata.*` on HTTP).
pub type Metadata = BTreeMap<String, String>;

/// One configuration item. In JSON (daprd's shape, for HTTP callers and
/// apps) empty fields are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Items by key.
pub type Items = BTreeMap<String, Item>;

/// A change, as a subscriber gets it: the subscription's id and the items
/// that changed (`{"id", "items"}` in JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Update<'a> {
    pub id: &'a str,
    pub items: &'a Items,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A request the store cannot serve as asked (a missing channel, an
    /// invalid key).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// Where a store sends changes: the runtime's side of a subscription.
#[async_trait]
pub trait UpdateHandler: Send + Sync + 'static {
    /// Called with the items that changed (a deleted item has an empty
    /// value and version), in the order the store saw the changes.
    async fn update(&self, subscription_id: &str, items: Items);
}

/// The contract of a configuration store.
#[async_trait]
pub trait ConfigurationStore: Send + Sync + 'static {
    /// The items of `keys`, or every item when `keys` is empty. Keys that
    /// do not exist are left out.
    async fn get(&self, keys: &[String], metadata: &Metadata) -> Result<Items, ConfigError>;

    /// Starts watching `keys` (every key when empty): `handler` gets each
    /// change until `stop` is cancelled. Returns once the watch is in place,
    /// so a change made after it returns is never missed.
    async fn watch(
        &self,
        subscription_id: &str,
        keys: &[String],
        metadata: &Metadata,
        handler: Arc<dyn UpdateHandler>,
        stop: CancellationToken,
    ) -> Result<(), ConfigError>;
}

/// A subscriber's handler that takes nothing once its subscription has
/// ended.
struct Ended {
    handler: Arc<dyn UpdateHandler>,
    stop: CancellationToken,
}

#[async_trait]
impl UpdateHandler for Ended {
    async fn update(&self, subscription_id: &str, items: Items) {
        if !self.stop.is_cancelled() {
            self.handler.update(subscription_id, items).await;
        }
    }
}

/// A configured store and its live subscriptions.
#[derive(Clone)]
pub struct ConfigurationHandle {
    name: String,
    component: Arc<dyn ConfigurationStore>,
    subscriptions: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl std::fmt::Debug for ConfigurationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigurationHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConfigurationHandle {
    pub fn new(name: impl Into<String>, component: Arc<dyn ConfigurationStore>) -> Self {
        Self {
            name: name.into(),
            component,
            subscriptions: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn get(&self, keys: &[String], metadata: &Metadata) -> Result<Items, ConfigError> {
        self.component.get(keys, metadata).await
    }

    /// Subscribes; returns the subscription's id and the token that ends
    /// it (cancelled by [`ConfigurationHandle::unsubscribe`] too).
    pub async fn subscribe(
        &self,
        keys: &[String],
        metadata: &Metadata,
        handler: Arc<dyn UpdateHandler>,
    ) -> Result<(String, CancellationToken), ConfigError> {
        let id = uuid::Uuid::new_v4().to_string();
        let stop = CancellationToken::new();
        // A store's watch may hold a change it read as the token is
        // cancelled; the guard drops it, so that nothing reaches the
        // subscriber once `unsubscribe` has returned, whatever the store.
        let handler = Arc::new(Ended {
            handler,
            stop: stop.clone(),
        });
        self.component
            .watch(&id, keys, metadata, handler, stop.clone())
            .await?;
        self.subscriptions
            .lock()
            .expect("lock")
            .insert(id.clone(), stop.clone());
        // The entry goes when the subscription ends, however it ends.
        let (subscriptions, done, key) = (self.subscriptions.clone(), stop.clone(), id.clone());
        tokio::spawn(async move {
            done.cancelled().await;
            subscriptions.lock().expect("lock").remove(&key);
        });
        Ok((id, stop))
    }

    /// Ends a subscription; false when there is none by that id.
    pub fn unsubscribe(&self, id: &str) -> bool {
        let stop = self.subscriptions.lock().expect("lock").remove(id);
        match stop {
            Some(stop) => {
                stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends every subscription (at shutdown).
    pub fn close(&self) {
        for (_, stop) in self.subscriptions.lock().expect("lock").drain() {
            stop.cancel();
        }
    }
}
