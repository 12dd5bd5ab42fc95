//! Actor reminders, on the scheduler block as daprd keeps them: each a job
//! of its actor type's partition (`actorreminder||{namespace}||{type}`)
//! named `{id}||{name}` (the id with `%` and `|` escaped), durable in the
//! scheduler store. Every runtime that hosts the type claims the type's due
//! reminders (a leased claim: one fire per tick across the cluster) and
//! routes each to the actor's owner, through its turn, as
//! `PUT /actors/{type}/{id}/method/remind/{name}` with
//! `{"data","dueTime","period"}`. A failed fire is retried by the job's
//! failure policy; `X-Daprremindercancel: true` ends the reminder.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::{ApiError, GrpcCode};
use mecha_scheduler::{AppJobs, Job, JobData, Owner, Refused, Scheduler, SchedulerError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::period::Period;
use crate::timers::{CallbackBody, cancelled};
use crate::{ActorRef, Actors};

/// The type URL of a reminder's job data (what the app registered, with
/// its times as given).
const REMINDER_DATA: &str = "mecha.actors/reminder";

/// A reminder as the app registers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReminderSpec {
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    /// The `data` JSON, as given.
    pub data: Option<Bytes>,
    /// Replace a reminder of the same name; daprd's default (`None`) is to
    /// replace it.
    pub overwrite: Option<bool>,
}

/// A reminder as it is read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reminder {
    pub actor: ActorRef,
    pub name: String,
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    pub data: Option<Bytes>,
}

/// What a reminder's job carries.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    due_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    period: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ttl: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<serde_json::value::RawValue>>,
}

fn non_hosted() -> ApiError {
    ApiError::new(
        "ERR_ACTOR_REMINDER_NON_HOSTED",
        403,
        GrpcCode::PermissionDenied,
        "operations on actor reminders are only possible on hosted actor types",
    )
}

fn reminder_error(code: &'static str, what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        code,
        500,
        GrpcCode::Internal,
        format!("error {what} actor reminder: {err}"),
    )
}

/// The job name of `actor`'s reminder `name`.
fn job_name(actor_id: &str, name: &str) -> String {
    format!("{}||{name}", mecha_scheduler::escape_part(actor_id))
}

/// The prefix of the job names of `actor_id`'s reminders.
fn id_prefix(actor_id: &str) -> String {
    format!("{}||", mecha_scheduler::escape_part(actor_id))
}

/// The actor id and reminder name of a job name.
fn parse_job_name(job: &str) -> Option<(String, &str)> {
    let (id, name) = job.split_once("||")?;
    let id = mecha_core::address::percent_decode(id)?;
    Some((id, name))
}

/// A JSON value for `data`: JSON as it is, other bytes (a gRPC app's) as a
/// base64 string, as daprd marshals bytes.
pub(crate) fn json_data(data: &[u8]) -> Box<serde_json::value::RawValue> {
    if let Ok(raw) = serde_json::from_slice::<Box<serde_json::value::RawValue>>(data) {
        return raw;
    }
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    serde_json::value::to_raw_value(&text).expect("a string is JSON")
}

impl Actors {
    /// The scheduler's owner of `actor_type`'s reminders.
    fn reminders_of(&self, actor_type: &str) -> Owner {
        Owner::actor_reminders(self.inner.seams.namespace.as_deref(), actor_type)
    }

    /// The owner of `actor_type`'s reminders, when this runtime hosts it.
    fn reminder_owner(&self, actor_type: &str) -> Result<Owner, ApiError> {
        if !self.hosts(actor_type) {
            return Err(non_hosted());
        }
        Ok(self.reminders_of(actor_type))
    }

    /// Creates the reminder `name` of `actor`.
    pub async fn create_reminder(
        &self,
        scheduler: &Scheduler,
        actor: &ActorRef,
        name: &str,
        spec: ReminderSpec,
    ) -> Result<(), ApiError> {
        let owner = self.reminder_owner(&actor.actor_type)?;
        let failed = |err: String| reminder_error("ERR_ACTOR_REMINDER_CREATE", "creating", err);
        let period = Period::parse(&spec.period)
            .map_err(|_| failed(format!("unsupported period format: {}", spec.period)))?;
        let stored = Stored {
            due_time: spec.due_time.clone(),
            period: spec.period.clone(),
            ttl: spec.ttl.clone(),
            data: spec.data.as_deref().map(json_data),
        };
        let job = Job {
            name: job_name(&actor.actor_id, name),
            schedule: period.schedule(),
            repeats: period.repeats,
            due_time: Some(spec.due_time).filter(|d| !d.trim().is_empty()),
            ttl: Some(spec.ttl).filter(|t| !t.trim().is_empty()),
            data: JobData {
                type_url: REMINDER_DATA.to_owned(),
                value: serde_json::to_vec(&stored).map_err(|err| failed(err.to_string()))?,
            },
            failure_policy: None,
        };
        match scheduler
            .schedule(&owner, job, spec.overwrite.unwrap_or(true))
            .await
        {
            Ok(()) => Ok(()),
            Err(SchedulerError::AlreadyExists(_)) => Err(ApiError::new(
                "ERR_ACTOR_REMINDER_ALREADY_EXISTS",
                409,
                GrpcCode::AlreadyExists,
                format!("actor reminder already exists: {name}"),
            )),
            Err(err) => Err(failed(err.to_string())),
        }
    }

    /// The reminder `name` of `actor`.
    pub async fn get_reminder(
        &self,
        scheduler: &Scheduler,
        actor: &ActorRef,
        name: &str,
    ) -> Result<Reminder, ApiError> {
        let owner = self.reminder_owner(&actor.actor_type)?;
        let job = scheduler
            .get(&owner, &job_name(&actor.actor_id, name))
            .await
            .map_err(|err| reminder_error("ERR_ACTOR_REMINDER_GET", "getting", err))?;
        let Some(job) = job else {
            return Err(ApiError::new(
                "ERR_ACTOR_REMINDER_NOT_FOUND",
                404,
                GrpcCode::NotFound,
                format!("actor reminder not found: {name}"),
            ));
        };
        Ok(reminder_of(actor.clone(), name.to_owned(), &job))
    }

    /// Deletes the reminder `name` of `actor` (nothing when there is none).
    pub async fn delete_reminder(
        &self,
        scheduler: &Scheduler,
        actor: &ActorRef,
        name: &str,
    ) -> Result<(), ApiError> {
        let owner = self.reminder_owner(&actor.actor_type)?;
        scheduler
            .delete(&owner, &job_name(&actor.actor_id, name))
            .await
            .map(|_| ())
            .map_err(|err| reminder_error("ERR_ACTOR_REMINDER_DELETE", "deleting", err))
    }

    /// The reminders of `actor_type`, of one actor id or of all.
    pub async fn list_reminders(
        &self,
        scheduler: &Scheduler,
        actor_type: &str,
        actor_id: Option<&str>,
    ) -> Result<Vec<Reminder>, ApiError> {
        let owner = self.reminder_owner(actor_type)?;
        let jobs = scheduler
            .list(&owner)
            .await
            .map_err(|err| reminder_error("ERR_ACTOR_REMINDER_GET", "listing", err))?;
        let prefix = actor_id.map(id_prefix);
        Ok(jobs
            .iter()
            .filter(|job| prefix.as_ref().is_none_or(|p| job.name.starts_with(p)))
            .filter_map(|job| {
                let (id, name) = parse_job_name(&job.name)?;
                Some(reminder_of(
                    ActorRef::new(actor_type, id),
                    name.to_owned(),
                    job,
                ))
            })
            .collect())
    }

    /// Deletes the reminders of `actor_type`, of one actor id or of all.
    pub async fn delete_reminders(
        &self,
        scheduler: &Scheduler,
        actor_type: &str,
        actor_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let owner = self.reminder_owner(actor_type)?;
        let prefix = actor_id.map(id_prefix).unwrap_or_default();
        scheduler
            .delete_prefix(&owner, &prefix)
            .await
            .map(|_| ())
            .map_err(|err| reminder_error("ERR_ACTOR_REMINDER_DELETE", "deleting", err))
    }

    /// Claims and fires the reminders of `actor_type`, with the other
    /// runtimes hosting it (a leased claim per tick), until `stop`; the
    /// loop ends once its fires in flight settled.
    pub(crate) fn fire_reminders(
        &self,
        scheduler: &Scheduler,
        actor_type: &str,
        stop: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let owner = self.reminders_of(actor_type);
        let fires: Arc<dyn AppJobs> = Arc::new(Fires {
            actors: self.clone(),
            scheduler: scheduler.clone(),
            owner: owner.clone(),
        });
        let (scheduler, stop) = (scheduler.clone(), stop.clone());
        tokio::spawn(async move {
            mecha_scheduler::fire_jobs(scheduler, fires, &owner, stop).await;
        })
    }
}

fn reminder_of(actor: ActorRef, name: String, job: &Job) -> Reminder {
    let stored: Option<Stored> = serde_json::from_slice(&job.data.value).ok();
    let stored = stored.unwrap_or(Stored {
        due_time: job.due_time.clone().unwrap_or_default(),
        period: job.schedule.clone().unwrap_or_default(),
        ttl: job.ttl.clone().unwrap_or_default(),
        data: None,
    });
    Reminder {
        actor,
        name,
        due_time: stored.due_time,
        period: stored.period,
        ttl: stored.ttl,
        data: stored
            .data
            .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes())),
    }
}

/// Fires one actor type's reminders to their actors.
struct Fires {
    actors: Actors,
    scheduler: Scheduler,
    owner: Owner,
}

#[async_trait]
impl AppJobs for Fires {
    async fn deliver(&self, job: &str, data: &JobData) -> Result<(), Refused> {
        let Some((id, name)) = parse_job_name(job) else {
            tracing::warn!(job, "a reminder's job name cannot be read; dropped");
            return Ok(());
        };
        let actor = ActorRef::new(self.owner.app_id.clone(), id);
        let stored: Stored = serde_json::from_slice(&data.value)
            .map_err(|err| Refused(format!("the reminder cannot be read: {err}")))?;
        let body = CallbackBody {
            data: Some(stored.data.as_deref().unwrap_or(RawValue::NULL)),
            callback: None,
            due_time: &stored.due_time,
            period: &stored.period,
        }
        .encode();
        match self
            .actors
            .fire(&actor, format!("remind/{name}"), body)
            .await
        {
            Ok(answer) => {
                if cancelled(&answer.headers)
                    && let Err(err) = self.scheduler.delete(&self.owner, job).await
                {
                    tracing::warn!(%actor, reminder = name, error = %err, "could not delete the cancelled reminder");
                }
                Ok(())
            }
            Err(err) => Err(Refused(err.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_keep_ids_and_names_apart() {
        for (id, name) in [("7", "r"), ("a||b", "c"), ("a%7Cb", "c||d"), ("x|", "|y")] {
            let job = job_name(id, name);
            assert_eq!(parse_job_name(&job), Some((id.to_owned(), name)), "{job}");
            assert!(job.starts_with(&id_prefix(id)));
        }
        assert!(!job_name("ab", "r").starts_with(&id_prefix("a")));
    }

    #[test]
    fn data_is_json_or_base64() {
        assert_eq!(json_data(br#"{"a":1}"#).get(), r#"{"a":1}"#);
        assert_eq!(json_data(&[0xff, 0x00]).get(), r#""/wA=""#);
    }
}
