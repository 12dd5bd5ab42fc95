//! Waking the firing loops for new registrations: a loop is woken only by
//! a job of its partition due before the loop means to look again, so a
//! burst of registrations for later does not make every loop read the
//! store once per registration.
//!
//! A loop says when it starts reading the store ([`LoopWake::looking`]),
//! and then when it means to look again ([`LoopWake::plan`]). A
//! registration records its due time and wakes the loop if that is
//! earlier than planned. Both sides write, then read the other's value,
//! all sequentially consistent: a registration that commits after the loop
//! read the store is either seen by `plan` or sees the plan and wakes the
//! loop.

use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The firing loops of a scheduler, by partition.
#[derive(Default)]
pub(crate) struct Wakes(Mutex<Vec<Arc<LoopWake>>>);

/// One firing loop's side.
pub(crate) struct LoopWake {
    partition: String,
    notify: Notify,
    /// When the loop means to read the store again (ms); `i64::MIN` while
    /// it reads it.
    planned: AtomicI64,
    /// The earliest due time registered since the loop began reading (ms).
    earliest: AtomicI64,
}

/// A loop's registration with [`Wakes`], removed when dropped.
pub(crate) struct Joined {
    wakes: Arc<Wakes>,
    wake: Arc<LoopWake>,
}

impl Wakes {
    pub(crate) fn join(self: &Arc<Self>, partition: &str) -> Joined {
        let wake = Arc::new(LoopWake {
            partition: partition.to_owned(),
            notify: Notify::new(),
            planned: AtomicI64::new(i64::MIN),
            earliest: AtomicI64::new(i64::MAX),
        });
        self.0.lock().expect("wakes").push(wake.clone());
        Joined {
            wakes: self.clone(),
            wake,
        }
    }

    /// A job of `partition`, due at `due` (ms), is durable now.
    pub(crate) fn registered(&self, partition: &str, due: i64) {
        let loops = self.0.lock().expect("wakes");
        for wake in loops.iter().filter(|w| w.partition == partition) {
            wake.earliest.fetch_min(due, SeqCst);
            if due < wake.planned.load(SeqCst) {
                wake.notify.notify_one();
            }
        }
    }
}

impl Joined {
    /// The loop begins reading the store: what was registered before is in
    /// what it reads.
    pub(crate) fn looking(&self) {
        self.wake.planned.store(i64::MIN, SeqCst);
        self.wake.earliest.store(i64::MAX, SeqCst);
    }

    /// The loop means to read the store again at `at` (ms): `false` when a
    /// job due before then was registered meanwhile (read it now).
    pub(crate) fn plan(&self, at: i64) -> bool {
        self.wake.planned.store(at, SeqCst);
        self.wake.earliest.load(SeqCst) >= at
    }

    /// Resolves when a registration due before the plan comes in.
    pub(crate) async fn woken(&self) {
        self.wake.notify.notified().await;
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.wakes
            .0
            .lock()
            .expect("wakes")
            .retain(|w| !Arc::ptr_eq(w, &self.wake));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_earlier_jobs_of_the_partition_wake_a_loop() {
        let wakes = Arc::new(Wakes::default());
        let joined = wakes.join("p");
        joined.looking();
        // Registered while the loop reads: seen by the plan.
        wakes.registered("p", 500);
        assert!(!joined.plan(1_000), "a job due before the plan");
        joined.looking();
        assert!(joined.plan(1_000));
        // Later, or elsewhere: no wake-up.
        wakes.registered("p", 2_000);
        wakes.registered("other", 10);
        let slept = tokio::time::timeout(std::time::Duration::from_millis(20), joined.woken());
        assert!(slept.await.is_err(), "woken for nothing");
        // Earlier: woken.
        wakes.registered("p", 900);
        tokio::time::timeout(std::time::Duration::from_secs(1), joined.woken())
            .await
            .expect("woken");
        drop(joined);
        assert!(wakes.0.lock().unwrap().is_empty());
    }
}
