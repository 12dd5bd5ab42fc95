//! `--app-max-concurrency`: at most N calls in the app at once, a bounded
//! line of waiters behind them, and a clear refusal beyond it.
//!
//! A slot stands for work in the app, not for a caller: once a call has
//! been sent, it runs to its end in a task of its own, holding its slot
//! until the app has answered or its connection has failed, even when the
//! caller hangs up (the app would go on working). A caller that hangs up
//! while waiting in line leaves the line: its call never reaches the app.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mecha_invoke::ChannelError;
use mecha_invoke::body::{Body, Guarded};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many calls may wait, per allowed concurrent call.
const WAITING_PER_SLOT: usize = 8;

pub struct Limiter {
    slots: Option<(Arc<Semaphore>, usize)>,
    waiting: AtomicUsize,
}

impl Limiter {
    pub fn new(max_concurrency: Option<usize>) -> Self {
        Self {
            slots: max_concurrency
                .filter(|n| *n > 0)
                .map(|n| (Arc::new(Semaphore::new(n)), n)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Runs `call` (one call into the app) within a slot; the slot comes
    /// back with the answer, for an answer whose body is still to be read
    /// (see `hold`). Unlimited, the call runs in the caller's task.
    pub async fn run<T, F>(&self, call: F) -> Result<(T, Option<Slot>), ChannelError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(slot) = self.acquire().await? else {
            return Ok((call.await, None));
        };
        // Not the caller's to cancel once sent: dropping the handle leaves
        // the task running, and the slot is freed when it ends.
        let in_app = tokio::spawn(async move { (call.await, slot) });
        match in_app.await {
            Ok((answer, slot)) => Ok((answer, Some(slot))),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(ChannelError::Unreachable(
                "the call to the app was cancelled".to_owned(),
            )),
        }
    }

    /// A slot in the app, waiting in line if needed; refused when the line
    /// is full.
    async fn acquire(&self) -> Result<Option<OwnedSemaphorePermit>, ChannelError> {
        let Some((semaphore, limit)) = &self.slots else {
            return Ok(None);
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        let max_waiting = limit * WAITING_PER_SLOT;
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        // Leaves the line however the wait ends, the caller hanging up
        // included.
        let _in_line = InLine(&self.waiting);
        if waiting >= max_waiting {
            return Err(ChannelError::Overloaded {
                limit: *limit,
                waiting,
            });
        }
        let permit = semaphore.clone().acquire_owned().await;
        Ok(Some(permit.expect("the semaphore is never closed")))
    }
}

/// A place in the line of waiters, given up when dropped.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slot in the app, freed when dropped.
pub type Slot = OwnedSemaphorePermit;

/// The body of an answer, holding the call's slot until it is read.
pub fn hold(body: Body, slot: Option<Slot>) -> Body {
    match slot {
        None => body,
        Some(slot) => mecha_invoke::body::boxed(Guarded::new(body, slot)),
    }
}
