//! A job as the block stores it: the job as registered, when it was, and
//! where its schedule stands (the tick being fired, how many fired, the
//! retries of this tick). Stores keep it as opaque bytes (JSON).

use chrono::Duration as Span;
use serde::{Deserialize, Serialize};

use crate::schedule::{Schedule, parse_time};
use crate::{FailurePolicy, Job, StoreError, from_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub job: Job,
    /// When it was registered (ms): durations in `dueTime` and `ttl`
    /// count from here.
    pub created: i64,
    /// When it stops firing (ms), from `ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// The tick being waited for or fired (ms).
    pub tick: i64,
    /// Ticks fired (delivered, or given up by the failure policy).
    #[serde(default)]
    pub fired: u32,
    /// Failed attempts at this tick.
    #[serde(default)]
    pub attempt: u32,
}

/// The longest job name, in bytes.
pub const MAX_NAME_BYTES: usize = 512;

/// A job name as daprd's scheduler takes it (1.18.2 and later): any
/// character but `/`, `\`, `#`, `?` and control characters, not `.` or
/// `..`, and not too long.
pub fn validate_name(name: &str) -> Result<(), String> {
    use mecha_core::names::{NameProblem, name_problem};
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("job name is longer than {MAX_NAME_BYTES} bytes"));
    }
    match name_problem(name) {
        None => Ok(()),
        Some(NameProblem::Empty) => Err("job name is empty".into()),
        Some(NameProblem::Dots) => Err(format!("job name '{name}' is not allowed")),
        Some(NameProblem::Forbidden(c)) => Err(format!(
            "job name '{}' contains a character that is not allowed: {c:?}",
            name.escape_debug()
        )),
    }
}

fn millis(span: std::time::Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl Record {
    /// Checks `job` (registered at `now`) and works out its first tick.
    pub fn new(mut job: Job, now: i64) -> Result<Self, String> {
        validate_name(&job.name)?;
        let has_schedule = job.schedule.as_deref().is_some_and(|s| !s.is_empty());
        if job.repeats == Some(0) {
            return Err("defined repeats must be greater than 0".into());
        }
        if !has_schedule && job.repeats.is_some_and(|repeats| repeats > 1) {
            return Err("job must have a schedule to repeat".into());
        }
        if !has_schedule && job.ttl.as_deref().is_some_and(|ttl| !ttl.is_empty()) {
            return Err("job must have a schedule to have a ttl".into());
        }
        // Stored, so that reading the job shows it, as daprd's scheduler does.
        job.failure_policy.get_or_insert(FailurePolicy::DEFAULT);
        let from = from_ms(now);
        let schedule = job
            .schedule
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Schedule::parse_job)
            .transpose()?;
        let due_time = job
            .due_time
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|text| {
                parse_time(text, from)
                    .map_err(|err| format!("due time format not recognized: {err}"))
            })
            .transpose()?;
        // A ttl given as a duration counts from the due time, when there is one.
        let expires = job
            .ttl
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|text| {
                parse_time(text, due_time.unwrap_or(from))
                    .map_err(|err| format!("ttl format not recognized: {err}"))
            })
            .transpose()?;
        if let Some(FailurePolicy::Constant {
            interval: Some(interval),
            ..
        }) = &job.failure_policy
            && interval.is_zero()
        {
            return Err("failure policy: the interval must be positive".into());
        }
        let tick = match (&schedule, due_time) {
            (_, Some(due)) => due,
            (Some(schedule), None) => schedule
                .next_after(from)
                .ok_or_else(|| "the schedule has no next tick".to_owned())?,
            (None, None) => return Err("job must have either a due time or a schedule".into()),
        };
        if let (Some(expires), Some(due)) = (expires, due_time)
            && expires < due
        {
            return Err("ttl must be greater than due time".into());
        }
        Ok(Self {
            job,
            created: now,
            expires: expires.map(|at| at.timestamp_millis()),
            tick: tick.timestamp_millis(),
            fired: 0,
            attempt: 0,
        })
    }

    /// The first due time, unless the ttl ends before it.
    pub fn first_due(&self) -> Option<i64> {
        (!self.expired_at(self.tick)).then_some(self.tick)
    }

    fn expired_at(&self, at: i64) -> bool {
        self.expires.is_some_and(|expires| at > expires)
    }

    /// Whether its ttl ended before `at`.
    pub fn expired(&self, at: i64) -> bool {
        self.expired_at(at)
    }

    fn schedule(&self) -> Option<Schedule> {
        // Checked when it was registered.
        self.job
            .schedule
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| Schedule::parse_job(s).ok())
    }

    /// Before a fire at `now`: when ticks after this one are past too (the
    /// runtime was down, or the app slower than the schedule), the fire
    /// stands for the last of them, so missed ticks fire once.
    pub fn catch_up(&mut self, now: i64) {
        if let Some(schedule) = self.schedule()
            && let Some(last) = schedule.last_missed(from_ms(self.tick), from_ms(now))
        {
            self.tick = last.timestamp_millis().max(self.tick);
        }
    }

    /// After a fire delivered at `now`: the next due time and record, or
    /// `None` when the job is over.
    pub fn after_success(mut self, now: i64) -> Option<(i64, Self)> {
        self.fired = self.fired.saturating_add(1);
        self.attempt = 0;
        self.advance(now)
    }

    /// After a failed fire at `now`, by the failure policy: a retry of the
    /// same tick, the next tick, or `None`.
    pub fn after_failure(mut self, now: i64) -> Option<(i64, Self)> {
        let policy = self
            .job
            .failure_policy
            .clone()
            .unwrap_or(FailurePolicy::DEFAULT);
        if let FailurePolicy::Constant {
            interval,
            max_retries,
        } = policy
            && max_retries.is_none_or(|max| self.attempt < max)
        {
            self.attempt += 1;
            let interval = interval.unwrap_or(std::time::Duration::from_secs(1));
            let due = now.saturating_add(millis(interval));
            if self.expired_at(due) {
                return None;
            }
            return Some((due, self));
        }
        // Given up: the tick counts as fired.
        self.after_success(now)
    }

    /// The tick after this one (the last missed one when it is already
    /// past: missed ticks fire once).
    fn advance(mut self, now: i64) -> Option<(i64, Self)> {
        if self
            .job
            .repeats
            .is_some_and(|repeats| self.fired >= repeats)
        {
            return None;
        }
        let schedule = self.schedule()?;
        let tick = from_ms(self.tick);
        let next = schedule.next_after(tick)?;
        let next = if next.timestamp_millis() <= now {
            schedule.last_missed(tick, from_ms(now)).unwrap_or(next)
        } else {
            next
        };
        // A tick is a millisecond: never the same one twice.
        let next = next.timestamp_millis().max(self.tick + 1);
        if self.expired_at(next) {
            return None;
        }
        self.tick = next;
        Some((next, self))
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// How late a fire at `now` is, past its tick.
    pub fn lateness(&self, now: i64) -> Span {
        Span::milliseconds(now.saturating_sub(self.tick).max(0))
    }
}

/// Bytes as base64 in the record.
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobData;

    fn at(text: &str) -> i64 {
        text.parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_millis()
    }

    fn job(schedule: Option<&str>, due: Option<&str>, repeats: Option<u32>) -> Job {
        Job {
            name: "j".into(),
            schedule: schedule.map(Into::into),
            due_time: due.map(Into::into),
            repeats,
            ..Job::default()
        }
    }

    #[test]
    fn first_ticks() {
        let now = at("2026-12-01T10:00:00Z");
        let every = Record::new(job(Some("@every 10s"), None, None), now).unwrap();
        assert_eq!(every.first_due(), Some(at("2026-12-01T10:00:10Z")));
        let due = Record::new(job(Some("@every 10s"), Some("2s"), None), now).unwrap();
        assert_eq!(due.first_due(), Some(at("2026-12-01T10:00:02Z")));
        let (next, _) = due.after_success(at("2026-12-01T10:00:02Z")).unwrap();
        assert_eq!(next, at("2026-12-01T10:00:12Z"));
        assert!(Record::new(job(None, None, None), now).is_err());
        assert!(Record::new(job(Some("bad"), None, None), now).is_err());
        assert!(Record::new(job(None, Some("R2/PT1S"), None), now).is_err());
        assert!(Record::new(job(None, Some("1s"), Some(2)), now).is_err());
        assert!(Record::new(job(Some("@every 1s"), None, Some(0)), now).is_err());
        let mut no_schedule_ttl = job(None, Some("1s"), None);
        no_schedule_ttl.ttl = Some("5s".into());
        assert!(Record::new(no_schedule_ttl, now).is_err());
        // The default failure policy is stored.
        let stored = Record::new(job(None, Some("1s"), None), now).unwrap();
        assert_eq!(stored.job.failure_policy, Some(FailurePolicy::DEFAULT));
        for bad in ["", ".", "..", "a/b", "a\\b", "a#b", "a?b", "a\nb"] {
            let mut named = job(None, Some("1s"), None);
            named.name = bad.into();
            assert!(Record::new(named, now).is_err(), "{bad:?}");
        }
        let mut named = job(None, Some("1s"), None);
        named.name = "my||job@name.v1 x".into();
        assert!(Record::new(named, now).is_ok());
        let mut expired = job(Some("@every 10s"), None, None);
        expired.ttl = Some("5s".into());
        assert_eq!(Record::new(expired, now).unwrap().first_due(), None);
    }

    #[test]
    fn one_shot_and_repeats() {
        let now = at("2026-12-01T10:00:00Z");
        let once = Record::new(job(None, Some("1s"), None), now).unwrap();
        assert!(once.after_success(now + 1000).is_none());
        let mut record = Record::new(job(Some("@every 1s"), None, Some(3)), now).unwrap();
        let mut fires = 0;
        loop {
            fires += 1;
            let at = record.tick;
            match record.after_success(at) {
                Some((_, next)) => record = next,
                None => break,
            }
        }
        assert_eq!(fires, 3);
    }

    #[test]
    fn missed_ticks_fire_once_and_count() {
        let now = at("2026-12-01T10:00:00Z");
        let record = Record::new(job(Some("@every 1s"), None, Some(5)), now).unwrap();
        // Down for a minute after the first tick.
        let first = record.tick;
        let (next, record) = record.after_success(first).unwrap();
        assert_eq!(next, first + 1000);
        let late = first + 60_500;
        let (next, record) = record.after_success(late).unwrap();
        // The first tick after a minute down: the last one missed, at once.
        assert!(next <= late && next > late - 1000, "{next} {late}");
        let (after, _) = record.after_success(late).unwrap();
        assert!(after > late);
        // A fire that finds later ticks past fires for the last of them.
        let mut record = Record::new(job(Some("@every 1s"), None, None), now).unwrap();
        let first = record.tick;
        record.catch_up(first + 10_400);
        assert_eq!(record.tick, first + 10_000);
        record.catch_up(first + 10_400);
        assert_eq!(record.tick, first + 10_000, "nothing more to catch up");
    }

    #[test]
    fn failure_policies() {
        let now = at("2026-12-01T10:00:00Z");
        let record = Record::new(job(None, Some("1s"), None), now).unwrap();
        // The default: three retries, a second apart, then given up.
        let mut attempt = record.clone();
        for i in 0..3 {
            let (due, next) = attempt.after_failure(now + i * 1000).unwrap();
            assert_eq!(due, now + i * 1000 + 1000);
            attempt = next;
        }
        assert!(attempt.after_failure(now + 5000).is_none());
        let mut dropped = record.clone();
        dropped.job.failure_policy = Some(FailurePolicy::Drop);
        assert!(dropped.after_failure(now).is_none());
        let mut forever = record;
        forever.job.failure_policy = Some(FailurePolicy::Constant {
            interval: Some(std::time::Duration::from_millis(10)),
            max_retries: None,
        });
        for _ in 0..100 {
            forever = forever.after_failure(now).unwrap().1;
        }
    }

    #[test]
    fn records_round_trip() {
        let now = at("2026-12-01T10:00:00Z");
        let mut job = job(Some("@every 1s"), None, None);
        for len in 0..7 {
            job.data = JobData {
                type_url: "type.googleapis.com/google.protobuf.Value".into(),
                value: (0..len).map(|i| (i * 77) as u8).collect(),
            };
            let record = Record::new(job.clone(), now).unwrap();
            assert_eq!(Record::decode(&record.encode()).unwrap(), record);
        }
    }
}
