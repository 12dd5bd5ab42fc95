//! What the stores on a database share: the expiry column's value, a
//! deadline on each operation, and the periodic cleanup of expired rows.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::{StateError, Ttl};

/// An item's expiry in whole seconds from now, for an expiry column;
/// `None` when it never expires.
pub fn ttl_seconds(ttl: Option<Ttl>) -> Option<i64> {
    match ttl {
        Some(Ttl::Expire(after)) => Some(after.as_secs() as i64),
        Some(Ttl::Never) | None => None,
    }
}

/// Runs `work` within `limit`; past it, a backend error of `store` that
/// says the write may or may not have been applied.
pub async fn within<T>(
    store: &str,
    limit: Duration,
    work: impl Future<Output = Result<T, StateError>>,
) -> Result<T, StateError> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(StateError::Backend(anyhow::anyhow!(
            "{store}: operation timed out after {limit:?} (a write may or may not have been applied)"
        )))
    })
}

/// Runs `round` (one cleanup of expired rows, answering how many it
/// deleted) every `interval`, the first one interval from now, for as long
/// as `store` lives.
pub fn spawn_cleanup<S, F, Fut>(store: Weak<S>, interval: Duration, round: F)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { break };
            match round(store).await {
                Ok(deleted) if deleted > 0 => {
                    tracing::debug!(deleted, "deleted expired state rows")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "state cleanup failed"),
            }
        }
    });
}
