//! Name resolution: which runtime (its internal `host:port`) serves an app
//! id. Components implement [`NameResolver`]; the runtime uses it through a
//! [`Resolver`], which caches answers briefly and spreads calls over the
//! instances of an app.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

mod block;
mod service;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::NameResolutionBlock;
pub use service::Registered;

/// This runtime, as others find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub app_id: String,
    pub namespace: Option<String>,
    /// The host others reach it on; `None` lets the resolver choose (such
    /// as loopback for an address book on one host).
    pub host: Option<String>,
    /// The internal gRPC port.
    pub port: u16,
}

/// The contract of a `nameresolution.*` component.
#[async_trait]
pub trait NameResolver: Send + Sync + 'static {
    /// Makes this runtime findable, and keeps it so until [`Self::close`].
    async fn register(&self, registration: &Registration) -> anyhow::Result<()>;

    /// Every live runtime serving `app_id` in `namespace` (`host:port`).
    async fn resolve(&self, app_id: &str, namespace: Option<&str>) -> anyhow::Result<Vec<String>>;

    /// Removes this runtime's registration.
    async fn close(&self) -> anyhow::Result<()>;

    /// True when every runtime this resolver finds runs on this host (a
    /// address book in the data directory): the runtime-to-runtime port then
    /// listens on loopback only. False (the default) when peers may be on
    /// other hosts.
    fn host_local(&self) -> bool {
        false
    }
}

/// How long an answer is reused before asking the component again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

struct Cached {
    addresses: Vec<String>,
    at: Instant,
}

/// The runtime's handle on a resolver: caches answers for [`CACHE_TTL`] and
/// picks instances round-robin.
pub struct Resolver {
    inner: Arc<dyn NameResolver>,
    cache: Mutex<HashMap<(String, Option<String>), Cached>>,
    next: AtomicUsize,
}

impl Resolver {
    pub fn new(inner: Arc<dyn NameResolver>) -> Self {
        Self {
            inner,
            cache: Mutex::default(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn component(&self) -> &Arc<dyn NameResolver> {
        &self.inner
    }

    /// One runtime serving the app, or `None` when none does.
    pub async fn resolve(
        &self,
        app_id: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        let key = (app_id.to_owned(), namespace.map(str::to_owned));
        let cached = {
            let cache = self.cache.lock().expect("lock");
            cache
                .get(&key)
                .filter(|c| c.at.elapsed() < CACHE_TTL)
                .map(|c| c.addresses.clone())
        };
        let addresses = match cached {
            Some(addresses) => addresses,
            None => {
                let addresses = self.inner.resolve(app_id, namespace).await?;
                self.cache.lock().expect("lock").insert(
                    key,
                    Cached {
                        addresses: addresses.clone(),
                        at: Instant::now(),
                    },
                );
                addresses
            }
        };
        if addresses.is_empty() {
            return Ok(None);
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % addresses.len();
        Ok(Some(addresses[index].clone()))
    }

    /// Forgets what is known of `app_id`, after a call to it failed, so the
    /// next call asks again.
    pub fn invalidate(&self, app_id: &str, namespace: Option<&str>) {
        let key = (app_id.to_owned(), namespace.map(str::to_owned));
        self.cache.lock().expect("lock").remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A resolver that answers from a fixed list and counts its lookups.
    #[derive(Default)]
    struct Counting {
        addresses: Mutex<Vec<String>>,
        lookups: AtomicUsize,
    }

    #[async_trait]
    impl NameResolver for Counting {
        async fn register(&self, _: &Registration) -> anyhow::Result<()> {
            Ok(())
        }
        async fn resolve(&self, _: &str, _: Option<&str>) -> anyhow::Result<Vec<String>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok(self.addresses.lock().unwrap().clone())
        }
        async fn close(&self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn answers_are_cached_spread_and_invalidated() {
        let inner = Arc::new(Counting::default());
        *inner.addresses.lock().unwrap() = vec!["a:1".into(), "b:2".into()];
        let resolver = Resolver::new(inner.clone());
        let mut picks = Vec::new();
        for _ in 0..4 {
            picks.push(resolver.resolve("app", None).await.unwrap().unwrap());
        }
        assert_eq!(inner.lookups.load(Ordering::SeqCst), 1, "cached");
        picks.sort();
        assert_eq!(picks, vec!["a:1", "a:1", "b:2", "b:2"], "round-robin");
        *inner.addresses.lock().unwrap() = vec![];
        resolver.invalidate("app", None);
        assert_eq!(resolver.resolve("app", None).await.unwrap(), None);
        assert_eq!(
            inner.lookups.load(Ordering::SeqCst),
            2,
            "asked again after invalidation"
        );
        assert_eq!(resolver.resolve("app", Some("ns")).await.unwrap(), None);
        assert_eq!(
            inner.lookups.load(Ordering::SeqCst),
            3,
            "namespaces are cached apart"
        );
    }
}
