//! The scheduler building block: one durable, time-ordered index of due
//! times, for app jobs (the Jobs API) now, and actor reminders and
//! workflow timers later.
//!
//! - [`JobStore`] is the contract every scheduler store implements: rows
//!   kept by key, ordered by their due time within a partition (one app id
//!   in one namespace), and **claims** that carry a lease: a claim hands a
//!   due row to one claimer and moves its due time to the lease's end, so a
//!   claimer that dies leaves the row to be claimed again once the lease
//!   runs out. A claim's version fences its settlement: a claimer whose
//!   lease was taken over settles nothing.
//! - [`schedule`] parses Dapr's formats (cron with seconds, descriptors,
//!   `@every`, RFC 3339, Go and ISO 8601 durations).
//! - [`Scheduler`] is the block's handle: it checks a job, works out its
//!   first due time, and stores it, scoped to its owner.
//! - [`firing::Firing`] is the runtime's service that claims its app's due
//!   jobs, delivers them through [`AppJobs`], and applies the failure
//!   policy and the schedule.
//! - `conformance` (feature `conformance`) is the suite every store passes
//!   against its real backend, through [`scheduler_conformance!`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

mod block;
pub mod firing;
mod record;
pub mod schedule;
mod wake;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::SchedulerBlock;
pub use firing::{AppJobs, Firing, Refused, fire_jobs};
pub use record::Record;

/// One row of a store: a job's key, the partition it is claimed by, its
/// due time (milliseconds since the epoch: the next tick, or the end of
/// the lease of a claim in flight), its version (fresh at each put and each
/// claim), and the block's record of it, which stores keep as they got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub partition: String,
    pub due: i64,
    pub version: i64,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// The contract of a scheduler store. Every write is durable when it
/// returns (except in a store that says it is not, [`JobStore::durable`]).
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a row; `false` (and nothing changed) when its key exists and
    /// `overwrite` is not set.
    async fn put(&self, row: &Row, overwrite: bool) -> Result<bool, StoreError>;

    async fn get(&self, key: &str) -> Result<Option<Row>, StoreError>;

    /// Deletes a row; `false` when there was none.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Every row of a partition, by key.
    async fn list(&self, partition: &str) -> Result<Vec<Row>, StoreError>;

    /// Deletes every row of `partition` whose key starts with `key_prefix`;
    /// how many went.
    async fn delete_prefix(&self, partition: &str, key_prefix: &str) -> Result<u64, StoreError>;

    /// Claims up to `limit` rows of `partition` due at `now`, earliest
    /// first: each gets the due time `lease_until` and a new version, and
    /// comes back as it is now stored. Two claimers never get one row from
    /// one due time.
    async fn claim(
        &self,
        partition: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError>;

    /// Moves the lease of claims still held (`(key, version)`) to `until`.
    async fn extend(&self, claims: &[(String, i64)], until: i64) -> Result<(), StoreError>;

    /// Settles a claim: the row gets its next due time and record and a new
    /// version (so that nothing done under the claim, such as a late
    /// `extend`, applies any more), or goes (`None`); only while the row
    /// still has `version` (`false` when it was claimed again, overwritten
    /// or deleted meanwhile).
    async fn settle(
        &self,
        key: &str,
        version: i64,
        next: Option<(i64, &[u8])>,
    ) -> Result<bool, StoreError>;

    /// The earliest due time in `partition`.
    async fn next_due(&self, partition: &str) -> Result<Option<i64>, StoreError>;

    /// Whether what it stores survives the process (false for in-memory).
    fn durable(&self) -> bool {
        true
    }
}

/// Who a job belongs to: jobs of one app id in one namespace are never seen
/// by another, and an actor type's reminders (daprd keeps them as jobs too)
/// are apart from every app's jobs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// `app` for an app's jobs, `actorreminder` for an actor type's
    /// reminders.
    pub space: &'static str,
    pub namespace: String,
    /// The app id, or the actor type.
    pub app_id: String,
}

/// Escapes `%` and `|`, so that a part never holds the separator `||`.
pub fn escape_part(part: &str) -> String {
    part.replace('%', "%25").replace('|', "%7C")
}

impl Owner {
    /// The owner of an app's jobs; no namespace is Dapr's `default`.
    pub fn new(namespace: Option<&str>, app_id: &str) -> Self {
        Self {
            space: "app",
            namespace: namespace
                .filter(|ns| !ns.is_empty())
                .unwrap_or("default")
                .to_owned(),
            app_id: app_id.to_owned(),
        }
    }

    /// The owner of the reminders of actor type `actor_type`.
    pub fn actor_reminders(namespace: Option<&str>, actor_type: &str) -> Self {
        Self {
            space: "actorreminder",
            ..Self::new(namespace, actor_type)
        }
    }

    /// The partition of the owner's jobs: `app||{namespace}||{appId}` (or
    /// `actorreminder||{namespace}||{type}`), with `%` and `|` in either
    /// escaped, so that no two owners share a partition, and no key of one
    /// owner is another's (a job's name, which may hold `||`, comes last).
    pub fn partition(&self) -> String {
        format!(
            "{}||{}||{}",
            self.space,
            escape_part(&self.namespace),
            escape_part(&self.app_id)
        )
    }

    fn key(&self, name: &str) -> String {
        format!("{}||{name}", self.partition())
    }
}

/// A job's data: a protobuf `Any` (JSON given over HTTP is kept as a
/// `google.protobuf.Value`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobData {
    pub type_url: String,
    #[serde(with = "record::base64_bytes")]
    pub value: Vec<u8>,
}

/// What a failed fire does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailurePolicy {
    /// The tick is given up.
    Drop,
    /// Tried again `interval` apart, at most `max_retries` times (no limit
    /// when not given).
    Constant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval: Option<Duration>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_retries: Option<u32>,
    },
}

impl FailurePolicy {
    /// Dapr's default: 3 retries, 1 s apart.
    pub const DEFAULT: Self = Self::Constant {
        interval: Some(Duration::from_secs(1)),
        max_retries: Some(3),
    };
}

/// A job as the app registers it, in Dapr's formats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default)]
    pub data: JobData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The job cannot be scheduled as given (a bad schedule, due time or
    /// ttl, or neither a schedule nor a due time).
    #[error("{0}")]
    Invalid(String),
    /// A job of that name exists and `overwrite` was not set.
    #[error("job '{0}' already exists")]
    AlreadyExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A random version: fresh for each put, so that a claim of a job deleted
/// and registered again under its name can never settle the new one.
pub(crate) fn fresh_version() -> i64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64
}

/// A configured scheduler store, as the API and the firing loop use it.
#[derive(Clone)]
pub struct Scheduler {
    name: String,
    store: Arc<dyn JobStore>,
    /// The firing loops, woken for jobs due before they look again.
    wakes: Arc<wake::Wakes>,
    counts: Arc<Counts>,
}

/// What the scheduler has done in this runtime, for the metadata API (and
/// the metrics to come).
#[derive(Debug, Default)]
pub struct Counts {
    pub created: AtomicU64,
    pub fired: AtomicU64,
    pub failed: AtomicU64,
    /// Fires claimed and not yet settled: with the app, or waiting for it
    /// to be healthy.
    pub in_flight: AtomicU64,
    /// The delay from due time to fire of the last fire (ms).
    pub last_delay_ms: AtomicU64,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    pub fn new(name: impl Into<String>, store: Arc<dyn JobStore>) -> Self {
        Self {
            name: name.into(),
            store,
            wakes: Arc::default(),
            counts: Arc::default(),
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    pub(crate) fn wakes(&self) -> &Arc<wake::Wakes> {
        &self.wakes
    }

    /// Checks `job`, works out its first due time, and stores it for
    /// `owner`; answered once it is durable.
    pub async fn schedule(
        &self,
        owner: &Owner,
        job: Job,
        overwrite: bool,
    ) -> Result<(), SchedulerError> {
        let record = Record::new(job, now_ms()).map_err(SchedulerError::Invalid)?;
        let Some(due) = record.first_due() else {
            return Err(SchedulerError::Invalid(format!(
                "job '{}' would never fire: its ttl ends before its first tick",
                record.job.name
            )));
        };
        let row = Row {
            key: owner.key(&record.job.name),
            partition: owner.partition(),
            due,
            version: fresh_version(),
            body: record.encode(),
        };
        if !self.store.put(&row, overwrite).await? {
            return Err(SchedulerError::AlreadyExists(record.job.name));
        }
        self.counts.created.fetch_add(1, Ordering::Relaxed);
        self.wakes.registered(&row.partition, due);
        Ok(())
    }

    /// The job `name` of `owner`, as it was registered.
    pub async fn get(&self, owner: &Owner, name: &str) -> Result<Option<Job>, SchedulerError> {
        let Some(row) = self.store.get(&owner.key(name)).await? else {
            return Ok(None);
        };
        Ok(Some(Record::decode(&row.body)?.job))
    }

    /// Deletes the job `name` of `owner`; `false` when there was none.
    pub async fn delete(&self, owner: &Owner, name: &str) -> Result<bool, SchedulerError> {
        Ok(self.store.delete(&owner.key(name)).await?)
    }

    /// Every job of `owner`, by name.
    pub async fn list(&self, owner: &Owner) -> Result<Vec<Job>, SchedulerError> {
        let rows = self.store.list(&owner.partition()).await?;
        Ok(rows
            .iter()
            .filter_map(|row| match Record::decode(&row.body) {
                Ok(record) => Some(record.job),
                Err(err) => {
                    tracing::warn!(key = %row.key, error = %err, "a stored job cannot be read; it is left out");
                    None
                }
            })
            .collect())
    }

    /// Deletes every job of `owner` whose name starts with `prefix` (all of
    /// them for an empty prefix).
    pub async fn delete_prefix(&self, owner: &Owner, prefix: &str) -> Result<u64, SchedulerError> {
        Ok(self
            .store
            .delete_prefix(&owner.partition(), &owner.key(prefix))
            .await?)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::Backend(anyhow::anyhow!("a stored job cannot be read: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_never_share_keys() {
        let key = |ns: &str, app: &str, name: &str| Owner::new(Some(ns), app).key(name);
        assert_eq!(key("default", "a", "j"), "app||default||a||j");
        assert_ne!(key("default", "a", "b||x"), key("default", "a||b", "x"));
        assert_ne!(key("x||y", "z", "j"), key("x", "y||z", "j"));
        assert_ne!(key("ns", "a%7Cb", "j"), key("ns", "a|b", "j"));
        assert_eq!(Owner::new(None, "a"), Owner::new(Some(""), "a"));
        assert_eq!(
            Owner::actor_reminders(None, "Cart").key("7||r"),
            "actorreminder||default||Cart||7||r"
        );
        assert_ne!(
            Owner::actor_reminders(None, "a").partition(),
            Owner::new(None, "a").partition()
        );
    }
}
