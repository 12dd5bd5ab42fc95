//! Actor timers: kept in memory by the runtime that created them, each a
//! task that calls `PUT /actors/{type}/{id}/method/timer/{name}` at its
//! times, through the actor's turn like any call. A timer ends with its
//! repetitions or its `ttl`, when the app answers with
//! `X-Daprremindercancel: true`, when it is deleted, and when its actor is
//! deactivated here (daprd keeps it, and the next tick activates the actor
//! again).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use chrono::Utc;
use mecha_core::{ApiError, GrpcCode};
use tokio::task::AbortHandle;

use crate::period::{self, Period};
use crate::{ActorRef, Actors};

/// The header with which the app stops a timer or a reminder.
pub const CANCEL: &str = "x-daprremindercancel";

/// A timer as the app registers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerSpec {
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    pub callback: String,
    /// The `data` JSON, as given.
    pub data: Option<Bytes>,
}

fn create_error(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_ACTOR_TIMER_CREATE",
        500,
        GrpcCode::Internal,
        format!("error creating actor timer: {message}"),
    )
}

/// The timers of this runtime's actors.
#[derive(Default)]
pub(crate) struct Timers {
    running: Mutex<HashMap<(ActorRef, String), AbortHandle>>,
}

impl Timers {
    fn insert(&self, actor: &ActorRef, name: &str, task: AbortHandle) {
        let old = self
            .running
            .lock()
            .expect("timers")
            .insert((actor.clone(), name.to_owned()), task);
        if let Some(old) = old {
            old.abort();
        }
    }

    fn remove(&self, actor: &ActorRef, name: &str) {
        let removed = self
            .running
            .lock()
            .expect("timers")
            .remove(&(actor.clone(), name.to_owned()));
        if let Some(task) = removed {
            task.abort();
        }
    }

    /// Stops every timer of `actor`.
    pub(crate) fn remove_actor(&self, actor: &ActorRef) {
        self.running
            .lock()
            .expect("timers")
            .retain(|(of, _), task| {
                let keep = of != actor;
                if !keep {
                    task.abort();
                }
                keep
            });
    }

    /// How many timers run.
    pub(crate) fn count(&self) -> usize {
        self.running.lock().expect("timers").len()
    }
}

/// The body of a timer's or a reminder's call, as daprd sends it:
/// `{"data","callback","dueTime","period"}` (`callback` for timers only).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallbackBody<'a> {
    /// Left out when a timer has none; a reminder sends `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<&'a str>,
    pub due_time: &'a str,
    pub period: &'a str,
}

impl CallbackBody<'_> {
    pub(crate) fn encode(&self) -> Bytes {
        serde_json::to_vec(self)
            .expect("strings and JSON values encode")
            .into()
    }
}

/// The body of a timer's call; its data as JSON, other bytes (a gRPC
/// app's) as a base64 string.
fn fire_body(spec: &TimerSpec) -> Bytes {
    let data = spec.data.as_deref().map(crate::reminders::json_data);
    CallbackBody {
        data: data.as_deref(),
        callback: Some(&spec.callback),
        due_time: &spec.due_time,
        period: &spec.period,
    }
    .encode()
}

impl Actors {
    /// Creates (or replaces) the timer `name` of `actor`.
    pub fn create_timer(
        &self,
        actor: &ActorRef,
        name: &str,
        spec: TimerSpec,
    ) -> Result<(), ApiError> {
        if !self.hosts(&actor.actor_type) {
            return Err(create_error(format!(
                "can't create timer for actor {}||{}: actor type not registered",
                actor.actor_type, actor.actor_id
            )));
        }
        let now = Utc::now();
        let first = period::due(&spec.due_time, now)
            .map_err(|err| create_error(format!("error parsing timer due time: {err}")))?;
        let period = Period::parse(&spec.period)
            .map_err(|err| create_error(format!("invalid timer period: parse error: {err}")))?;
        let expires = match spec.ttl.trim() {
            "" => None,
            ttl => Some(
                period::due(ttl, first)
                    .map_err(|err| create_error(format!("error parsing timer TTL: {err}")))?,
            ),
        };
        if expires.is_some_and(|expires| expires <= now.max(first)) {
            return Err(create_error(format!(
                "timer {}||{}||{name} has already expired: dueTime: {} TTL: {}",
                actor.actor_type, actor.actor_id, spec.due_time, spec.ttl
            )));
        }
        let this = self.clone();
        let (actor_ref, name_owned) = (actor.clone(), name.to_owned());
        // The task starts once it is in the list, so that it leaves it
        // after it was put there.
        let (listed, is_listed) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = is_listed.await;
            let (actor, name) = (actor_ref, name_owned);
            let body = fire_body(&spec);
            let mut at = first;
            let mut fired = 0u32;
            loop {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                if expires.is_some_and(|expires| Utc::now() >= expires) {
                    break;
                }
                match this
                    .fire(&actor, format!("timer/{name}"), body.clone())
                    .await
                {
                    Ok(answer) if cancelled(&answer.headers) => break,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%actor, timer = %name, error = %err.message, "error executing timer");
                    }
                }
                fired += 1;
                let Some(every) = period.every else { break };
                if period.repeats.is_some_and(|repeats| fired >= repeats) {
                    break;
                }
                at += chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
                // A tick missed while the callback ran fires once, now.
                at = at.max(Utc::now());
            }
            this.inner.timers.forget(&actor, &name);
        });
        self.inner.timers.insert(actor, name, task.abort_handle());
        let _ = listed.send(());
        Ok(())
    }

    /// Deletes the timer `name` of `actor` (nothing when there is none).
    pub fn delete_timer(&self, actor: &ActorRef, name: &str) {
        self.inner.timers.remove(actor, name);
    }

    /// How many timers run on this runtime.
    pub fn timers(&self) -> usize {
        self.inner.timers.count()
    }
}

impl Timers {
    /// A timer that ended by itself leaves the list, unless another took
    /// its name meanwhile.
    fn forget(&self, actor: &ActorRef, name: &str) {
        let mut running = self.running.lock().expect("timers");
        let key = (actor.clone(), name.to_owned());
        if running
            .get(&key)
            .is_some_and(|task| Some(task.id()) == tokio::task::try_id())
        {
            running.remove(&key);
        }
    }
}

/// Whether the app's answer stops the timer or reminder.
pub(crate) fn cancelled(headers: &http::HeaderMap) -> bool {
    headers
        .get(CANCEL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fire_body_is_daprd_s() {
        let spec = TimerSpec {
            due_time: "1s".into(),
            period: "R2/PT1S".into(),
            callback: "tick".into(),
            data: Some(Bytes::from_static(br#"{"n":1}"#)),
            ..Default::default()
        };
        let body: serde_json::Value = serde_json::from_slice(&fire_body(&spec)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"data":{"n":1},"callback":"tick","dueTime":"1s","period":"R2/PT1S"})
        );
        let none: serde_json::Value =
            serde_json::from_slice(&fire_body(&TimerSpec::default())).unwrap();
        assert!(none.get("data").is_none());
    }
}
