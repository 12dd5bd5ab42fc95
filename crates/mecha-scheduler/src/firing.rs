//! The firing loop: the runtime's service that claims its app's due jobs
//! from the scheduler store, delivers each to the app, and settles it by
//! its outcome (the next tick, a retry by the failure policy, or the end).
//!
//! - A claim holds a job for [`LEASE`]; claims still in flight are
//!   extended every third of it, so a slow app is never fired twice, and a
//!   runtime that dies leaves its claims to be taken again once they run
//!   out (at-least-once).
//! - The loop sleeps until the earliest due time of its partition, a job
//!   registered through this runtime due before then (`wake.rs`), a
//!   settled fire, or [`POLL`] (for jobs other runtimes of the app
//!   registered in a shared store).
//! - Deliveries wait while the app is unhealthy ([`AppJobs`] does), which
//!   counts toward no retry.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mecha_core::{HostStatus, Service};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{JobData, Owner, Record, Row, Scheduler, SchedulerBlock, now_ms};

/// How long a claim holds a job before another claimer may take it.
pub const LEASE: Duration = Duration::from_secs(30);
/// The longest the loop sleeps without looking at the store.
pub const POLL: Duration = Duration::from_secs(1);
/// Fires in flight at once, per runtime.
const MAX_IN_FLIGHT: usize = 512;
/// How long a stopping loop waits for its fires in flight to settle.
const SETTLE_WAIT: Duration = Duration::from_secs(3);
/// Rows claimed in one statement.
const BATCH: usize = 512;

/// Why the app did not take a fire.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The app, as jobs reach it (the app channel implements it): `POST
/// /job/{name}` or `OnJobEvent`. Waits while the app is unhealthy.
#[async_trait]
pub trait AppJobs: Send + Sync + 'static {
    async fn deliver(&self, name: &str, data: &JobData) -> Result<(), Refused>;
}

/// The firing loop of one runtime for its app's jobs.
pub struct Firing {
    host: Arc<dyn HostStatus>,
    app: Arc<dyn AppJobs>,
    owner: Owner,
    stop: CancellationToken,
    running: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Firing {
    pub fn new(host: Arc<dyn HostStatus>, app: Arc<dyn AppJobs>, owner: Owner) -> Self {
        Self {
            host,
            app,
            owner,
            stop: CancellationToken::new(),
            running: Mutex::default(),
        }
    }
}

/// Runs the firing loop of `owner`'s jobs on `scheduler` until `stop`.
pub async fn fire_jobs(
    scheduler: Scheduler,
    app: Arc<dyn AppJobs>,
    owner: &Owner,
    stop: CancellationToken,
) {
    let fires = Fires {
        scheduler,
        app,
        partition: owner.partition(),
        held: Mutex::default(),
        settled: Notify::new(),
        slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    };
    Arc::new(fires).run(stop).await;
}

#[async_trait]
impl Service for Firing {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let (host, stop) = (self.host.clone(), self.stop.clone());
        let (app, owner) = (self.app.clone(), self.owner.clone());
        let running = tokio::spawn(async move {
            tokio::select! {
                () = host.wait_ready() => {}
                () = stop.cancelled() => return,
            }
            let scheduler = host.components().all::<SchedulerBlock>().next().cloned();
            let Some(scheduler) = scheduler else { return };
            fire_jobs(scheduler, app, &owner, stop).await;
        });
        *self.running.lock().expect("firing loop") = Some(running);
        Ok(())
    }

    async fn drain(&self, grace: Duration) {
        // The loop stops claiming and waits for its fires in flight to
        // settle; one that outlives the wait keeps its claim until it runs
        // out, and another runtime (or this one, restarted) fires it again.
        self.stop.cancel();
        let running = self.running.lock().expect("firing loop").take();
        if let Some(running) = running {
            let _ = tokio::time::timeout(grace, running).await;
        }
    }
}

struct Fires {
    scheduler: Scheduler,
    app: Arc<dyn AppJobs>,
    partition: String,
    /// Claims in flight: key → version.
    held: Mutex<HashMap<String, i64>>,
    settled: Notify,
    slots: Arc<Semaphore>,
}

fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl Fires {
    async fn run(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(self.clone().renew(stop.clone()));
        let wake = self.scheduler.wakes().join(&self.partition);
        while !stop.is_cancelled() {
            // Said before the store is read, so no wake-up is lost.
            wake.looking();
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let free = self.slots.available_permits().min(BATCH);
            let claimed = if free == 0 {
                Ok(Vec::new())
            } else {
                let now = now_ms();
                let until = now.saturating_add(millis(LEASE));
                let store = self.scheduler.store();
                store.claim(&self.partition, now, until, free).await
            };
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(err) => {
                    tracing::warn!(error = %err, "the scheduler store failed to claim due jobs");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => continue,
                        () = stop.cancelled() => break,
                    }
                }
            };
            let full = claimed.len() == free && free > 0;
            for row in claimed {
                let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                self.held
                    .lock()
                    .expect("held claims")
                    .insert(row.key.clone(), row.version);
                let fires = self.clone();
                tokio::spawn(async move {
                    fires.fire(row).await;
                    drop(slot);
                    fires.settled.notify_one();
                });
            }
            if full {
                continue;
            }
            let wait = if free == 0 {
                POLL
            } else {
                match self.scheduler.store().next_due(&self.partition).await {
                    Ok(Some(due)) => {
                        Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64).min(POLL)
                    }
                    Ok(None) => POLL,
                    Err(err) => {
                        tracing::warn!(error = %err, "the scheduler store failed");
                        POLL
                    }
                }
            };
            if wait.is_zero() || !wake.plan(now_ms().saturating_add(millis(wait))) {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.woken() => {}
                () = settled => {}
                () = stop.cancelled() => break,
            }
        }
        // The fires in flight settle before the loop ends (for up to
        // SETTLE_WAIT): a claim left behind would hold its job until its
        // lease ran out.
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let settled = self.settled.notified();
            if self.slots.available_permits() == MAX_IN_FLIGHT {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                tracing::warn!(
                    in_flight = MAX_IN_FLIGHT - self.slots.available_permits(),
                    "fires still in flight as the firing loop stops; they fire again once their claims run out"
                );
                break;
            }
        }
    }

    /// Extends the claims in flight, every third of a lease, until the
    /// loop stopped and the fires in flight ended (a fire that outlives a
    /// drain keeps its claim while the process lives).
    async fn renew(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(LEASE / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            let claims: Vec<(String, i64)> = self
                .held
                .lock()
                .expect("held claims")
                .iter()
                .map(|(key, version)| (key.clone(), *version))
                .collect();
            if claims.is_empty() {
                if stop.is_cancelled() {
                    return;
                }
                continue;
            }
            let until = now_ms().saturating_add(millis(LEASE));
            if let Err(err) = self.scheduler.store().extend(&claims, until).await {
                tracing::warn!(error = %err, "the scheduler store failed to extend claims");
            }
        }
    }

    async fn fire(&self, row: Row) {
        self.scheduler
            .counts()
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        let next = match Record::decode(&row.body) {
            Ok(record) => self.deliver(record).await,
            Err(err) => {
                tracing::error!(key = %row.key, error = %err, "a stored job cannot be read; it is deleted");
                None
            }
        };
        let next = next.map(|(due, record)| (due, record.encode()));
        let next = next.as_ref().map(|(due, body)| (*due, body.as_slice()));
        let store = self.scheduler.store();
        match store.settle(&row.key, row.version, next).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(key = %row.key, "the job changed while it fired; the change stands")
            }
            Err(err) => {
                tracing::warn!(key = %row.key, error = %err, "a fire could not be settled; it fires again once its claim runs out")
            }
        }
        {
            let mut held = self.held.lock().expect("held claims");
            // A newer claim of the same job (after this one's lease ran
            // out) keeps its entry.
            if held.get(&row.key) == Some(&row.version) {
                held.remove(&row.key);
            }
        }
        self.scheduler
            .counts()
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// One fire: the next due time and record, or `None` when it is over.
    async fn deliver(&self, mut record: Record) -> Option<(i64, Record)> {
        record.catch_up(now_ms());
        // A tick within the ttl fires, however late it is delivered.
        if record.expired(record.tick) {
            return None;
        }
        let now = now_ms();
        let delay = record.lateness(now).num_milliseconds().max(0) as u64;
        self.scheduler
            .counts()
            .last_delay_ms
            .store(delay, Ordering::Relaxed);
        let name = record.job.name.clone();
        match self.app.deliver(&name, &record.job.data).await {
            Ok(()) => {
                self.scheduler
                    .counts()
                    .fired
                    .fetch_add(1, Ordering::Relaxed);
                record.after_success(now_ms())
            }
            Err(err) => {
                self.scheduler
                    .counts()
                    .failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(job = %name, error = %err, "the app did not take a job");
                record.after_failure(now_ms())
            }
        }
    }
}
