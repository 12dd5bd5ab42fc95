//! `--app-max-concurrency`: at most N calls in the app at once, a bounded
//! line of waiters behind them, and a clear refusal beyond it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use mecha_invoke::ChannelError;
use mecha_invoke::body::{Body, BoxError};
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

    /// A slot in the app, waiting in line if needed; refused when the line
    /// is full.
    pub async fn acquire(&self) -> Result<Option<OwnedSemaphorePermit>, ChannelError> {
        let Some((semaphore, limit)) = &self.slots else {
            return Ok(None);
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        let max_waiting = limit * WAITING_PER_SLOT;
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        if waiting >= max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ChannelError::Overloaded {
                limit: *limit,
                waiting,
            });
        }
        let permit = semaphore.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        Ok(Some(permit.expect("the semaphore is never closed")))
    }
}

/// A response body that holds the call's slot until it is read or dropped.
struct Holding {
    body: Body,
    _permit: Option<OwnedSemaphorePermit>,
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pub fn hold(body: Body, permit: Option<OwnedSemaphorePermit>) -> Body {
    match permit {
        None => body,
        Some(permit) => mecha_invoke::body::boxed(Holding {
            body,
            _permit: Some(permit),
        }),
    }
}
