//! Redelivery with a back-off, for components whose broker cannot delay a
//! redelivery itself: the message stays unacknowledged while the component
//! tries again, so a crash in between leaves it to the broker.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::component::{Handler, Message};

/// An exponential back-off: `initial`, doubling each attempt, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait before redelivery number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Delivers `message` until the handler takes it, waiting a back-off between
/// attempts. Returns false when `stop` fired first (the message was not
/// taken and must be left unacknowledged).
pub async fn deliver_until_taken(
    handler: &dyn Handler,
    message: Message,
    backoff: Backoff,
    stop: &CancellationToken,
) -> bool {
    deliver_until_taken_within(handler, message, backoff, stop, None).await
}

/// [`deliver_until_taken`], giving up (false) once the next attempt would
/// start after `limit` from the first: for a broker that takes the message
/// back itself, so a message the app keeps refusing does not hold a
/// delivery slot forever.
pub async fn deliver_until_taken_within(
    handler: &dyn Handler,
    message: Message,
    backoff: Backoff,
    stop: &CancellationToken,
    limit: Option<std::time::Duration>,
) -> bool {
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        if stop.is_cancelled() {
            return false;
        }
        match handler.handle(message.clone()).await {
            Ok(()) => return true,
            Err(err) => {
                attempt += 1;
                let delay = backoff.delay(attempt);
                if limit.is_some_and(|limit| started.elapsed() + delay > limit) {
                    tracing::debug!(topic = %message.topic, attempt, "refused until the limit; left to the broker: {err}");
                    return false;
                }
                tracing::debug!(topic = %message.topic, attempt, ?delay, "redelivering: {err}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<u64> = (1..=6)
            .map(|n| backoff.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
    }
}
