//! `state.in-memory`: a state store in a hash map, with ETags, first-write,
//! TTL, transactions and the query API (evaluated in the process).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::ComponentFactory;
use mecha_core::units::format_rfc3339;
use mecha_state::*;

const FEATURES: &[Feature] = &[
    Feature::Etag,
    Feature::Transactional,
    Feature::Ttl,
    Feature::QueryApi,
];
/// How often expired items are swept away.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub const STATE_IN_MEMORY: ComponentFactory<dyn StateStore, ()> =
    ComponentFactory::new("state.in-memory", |_, _, _| (), |()| Box::pin(connect()));

async fn connect() -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(MemoryStateStore::start())
}

#[derive(Clone, Debug)]
struct Entry {
    value: Bytes,
    etag: u64,
    expires: Option<SystemTime>,
}

impl Entry {
    fn live(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// The `state.in-memory` store.
#[derive(Default)]
pub struct MemoryStateStore {
    items: RwLock<HashMap<String, Entry>>,
    next_etag: AtomicU64,
}

impl MemoryStateStore {
    /// Creates a store and starts its sweeper, which stops with the store.
    pub fn start() -> Arc<Self> {
        let store = Arc::new(Self::default());
        let weak: Weak<Self> = Arc::downgrade(&store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { break };
                store.sweep();
            }
        });
        store
    }

    fn sweep(&self) {
        let now = SystemTime::now();
        self.items.write().expect("lock").retain(|_, e| e.live(now));
    }

    fn new_etag(&self) -> u64 {
        self.next_etag.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn parse_etag(etag: &str) -> Result<u64, StateError> {
    etag.parse()
        .map_err(|_| StateError::EtagInvalid(format!("'{etag}' is not an etag of this store")))
}

/// Checks a write or delete against the current entry (`None` when the key
/// is missing or expired).
fn check(
    current: Option<&Entry>,
    etag: Option<&str>,
    concurrency: Concurrency,
    is_write: bool,
) -> Result<(), StateError> {
    match etag {
        Some(etag) => {
            let expected = parse_etag(etag)?;
            match current {
                Some(entry) if entry.etag == expected => Ok(()),
                _ => Err(StateError::EtagMismatch),
            }
        }
        None if is_write && concurrency == Concurrency::FirstWrite && current.is_some() => {
            Err(StateError::EtagMismatch)
        }
        None => Ok(()),
    }
}

fn expiry(ttl: Option<Ttl>, now: SystemTime) -> Option<SystemTime> {
    match ttl {
        Some(Ttl::Expire(after)) => Some(now + after),
        Some(Ttl::Never) | None => None,
    }
}

/// Applies operations to a staged copy of the entries they touch; the
/// caller commits the copy only when every operation succeeded.
fn stage(
    items: &HashMap<String, Entry>,
    ops: &[Operation],
    etags: impl Fn() -> u64,
) -> Result<HashMap<String, Option<Entry>>, StateError> {
    let now = SystemTime::now();
    let mut staged: HashMap<String, Option<Entry>> = HashMap::new();
    for op in ops {
        let key = op.key();
        let current = match staged.get(key) {
            Some(entry) => entry.clone(),
            None => items.get(key).filter(|e| e.live(now)).cloned(),
        };
        match op {
            Operation::Upsert(req) => {
                check(current.as_ref(), req.etag.as_deref(), req.concurrency, true)?;
                let entry = Entry {
                    value: req.value.clone(),
                    etag: etags(),
                    expires: expiry(req.ttl, now),
                };
                staged.insert(key.to_owned(), Some(entry));
            }
            Operation::Delete(req) => {
                check(
                    current.as_ref(),
                    req.etag.as_deref(),
                    req.concurrency,
                    false,
                )?;
                staged.insert(key.to_owned(), None);
            }
        }
    }
    Ok(staged)
}

#[async_trait]
impl StateStore for MemoryStateStore {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        let now = SystemTime::now();
        let items = self.items.read().expect("lock");
        Ok(items.get(&req.key).filter(|e| e.live(now)).map(|entry| {
            let mut metadata = Metadata::new();
            if let Some(at) = entry.expires {
                metadata.insert(TTL_EXPIRE_TIME_KEY.to_owned(), format_rfc3339(at));
            }
            GetResponse {
                data: entry.value.clone(),
                etag: Some(entry.etag.to_string()),
                metadata,
            }
        }))
    }

    async fn set(&self, req: &SetRequest) -> Result<(), StateError> {
        self.transact(&[Operation::Upsert(req.clone())], &Metadata::new())
            .await
    }

    async fn delete(&self, req: &DeleteRequest) -> Result<(), StateError> {
        self.transact(&[Operation::Delete(req.clone())], &Metadata::new())
            .await
    }

    async fn transact(&self, ops: &[Operation], _metadata: &Metadata) -> Result<(), StateError> {
        let mut items = self.items.write().expect("lock");
        let staged = stage(&items, ops, || self.new_etag())?;
        for (key, entry) in staged {
            match entry {
                Some(entry) => items.insert(key, entry),
                None => items.remove(&key),
            };
        }
        Ok(())
    }

    async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, StateError> {
        let now = SystemTime::now();
        // Values are copied out (cheaply: `Bytes`) so the lock is not held
        // while documents are parsed and sorted.
        let items: Vec<QueryItem> = {
            let items = self.items.read().expect("lock");
            items
                .iter()
                .filter(|(key, entry)| {
                    entry.live(now)
                        && req
                            .key_prefix
                            .as_deref()
                            .is_none_or(|prefix| key.starts_with(prefix))
                })
                .map(|(key, entry)| QueryItem {
                    key: key.clone(),
                    data: entry.value.clone(),
                    etag: Some(entry.etag.to_string()),
                })
                .collect()
        };
        Ok(mecha_state::query::evaluate(req, items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweeper_removes_expired_items() {
        let store = MemoryStateStore::start();
        let mut req = SetRequest::new("k", Bytes::from_static(b"v"));
        req.ttl = Some(Ttl::Expire(Duration::from_millis(100)));
        store.set(&req).await.unwrap();
        assert_eq!(store.items.read().unwrap().len(), 1);
        tokio::time::sleep(SWEEP_INTERVAL + Duration::from_millis(300)).await;
        assert_eq!(store.items.read().unwrap().len(), 0, "swept");
    }
}
