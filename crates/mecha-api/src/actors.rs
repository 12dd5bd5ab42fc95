//! Actors, the caller's side (`/v1.0/actors/...`, `InvokeActor`,
//! `GetActorState`, `ExecuteActorStateTransaction`): daprd's checks and
//! codes, then the actor runtime (`mecha-actors`) for calls, and the store
//! marked `actorStateStore` for state, under daprd's key layout
//! `{appId}||{type}||{id}||{key}`.

use bytes::Bytes;
pub use mecha_actors::{
    ActorAnswer, ActorConfig, ActorEvent, ActorEvents, EventKind, Reentrancy, Reminder,
    ReminderSpec, Settings, TimerSpec,
};
use mecha_actors::{ActorRef, Actors};
use mecha_core::{ApiError, GrpcCode};
use mecha_invoke::{InvokeRequest, InvokeResponse, headers};
use mecha_scheduler::{Scheduler, SchedulerBlock};
use mecha_state::{
    DeleteRequest, KeyScheme, KeyedStateStore, Metadata, Operation, SetRequest, StateBlock,
};

use crate::Api;

/// The prefix of the actor types the workflow engine keeps for itself.
pub const RESERVED_PREFIX: &str = "dapr.internal.";

/// One operation of an actor state transaction, as the app sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActorStateOperation {
    /// `upsert` or `delete`.
    pub operation: String,
    pub key: String,
    /// The value as stored: the JSON an HTTP app sent, the bytes a gRPC
    /// app sent.
    pub value: Option<Bytes>,
    pub metadata: Metadata,
}

/// A value read from actor state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActorStateValue {
    pub data: Bytes,
    pub metadata: Metadata,
}

/// daprd's check of an actor type, id or method (`mecha_core::names`).
/// Mecha refuses an empty one too (daprd lets it through to a lookup that
/// fails).
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    use mecha_core::names::{NameProblem, name_problem};
    let problem = match name_problem(name) {
        None => return Ok(()),
        Some(NameProblem::Empty) => "name is empty",
        Some(NameProblem::Dots) => "name cannot be '.' or '..'",
        Some(NameProblem::Forbidden(_)) => "name contains forbidden character",
    };
    Err(ApiError::bad_request(format!(
        "invalid request: invalid {what}: {problem}"
    )))
}

/// Checks the type and id of an actor.
pub fn actor_ref(actor_type: &str, actor_id: &str) -> Result<ActorRef, ApiError> {
    check_name("actorType", actor_type)?;
    check_name("actorID", actor_id)?;
    Ok(ActorRef::new(actor_type, actor_id))
}

fn reserved(actor: &ActorRef) -> Result<(), ApiError> {
    if actor.actor_type.starts_with(RESERVED_PREFIX) {
        return Err(ApiError::new(
            "ERR_ACTOR_TYPE_RESERVED",
            403,
            GrpcCode::PermissionDenied,
            format!(
                "actor type {:?} is reserved for the Dapr workflow runtime; direct actor API \
                 access is not permitted",
                actor.actor_type
            ),
        ));
    }
    Ok(())
}

fn runtime_not_found() -> ApiError {
    ApiError::new(
        "ERR_ACTOR_RUNTIME_NOT_FOUND",
        500,
        GrpcCode::Internal,
        "the state store is not configured to use the actor runtime. Have you set the - name: \
         actorStateStore value: \"true\" in your state store component file?",
    )
}

fn instance_missing() -> ApiError {
    ApiError::new(
        "ERR_ACTOR_INSTANCE_MISSING",
        400,
        GrpcCode::Internal,
        "actor instance is missing",
    )
}

fn state_get(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_ACTOR_STATE_GET",
        500,
        GrpcCode::Internal,
        format!("error getting actor state: {err}"),
    )
}

fn transaction_save(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_ACTOR_STATE_TRANSACTION_SAVE",
        500,
        GrpcCode::Internal,
        format!("error saving actor transaction state: {err}"),
    )
}

impl Api {
    fn actors(&self) -> Result<&Actors, ApiError> {
        self.shared
            .handles
            .actors
            .as_ref()
            .ok_or_else(runtime_not_found)
    }

    /// The store holding actor state, with `actor`'s keys under daprd's
    /// layout, `{appId}||{type}||{id}||{key}`.
    fn actor_store(&self, actor: &ActorRef) -> Result<KeyedStateStore, ApiError> {
        let components = self.runtime().components();
        let handle = components
            .all::<StateBlock>()
            .find(|h| h.actor_state_store)
            .ok_or_else(runtime_not_found)?;
        let store = &handle.store;
        Ok(KeyedStateStore::new(
            store.name(),
            store.component().clone(),
            KeyScheme::prefixed(format!(
                "{}||{}||{}",
                self.runtime().info.app_id,
                actor.actor_type,
                actor.actor_id
            )),
        ))
    }

    /// Calls `method` of the actor, wherever it is active.
    pub async fn invoke_actor(
        &self,
        actor_type: &str,
        actor_id: &str,
        method: &str,
        mut req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let actor = actor_ref(actor_type, actor_id)?;
        check_name("actor method", method)?;
        let actors = self.actors()?;
        self.outbound(&mut req)
            .await
            .map_err(mecha_actors::invoke_method)?;
        // The method named is the one called, whatever the request held.
        req.method = method.to_owned();
        let mut response = actors.invoke(&actor, req).await?;
        headers::strip_response(&mut response.headers);
        Ok(response)
    }

    /// `SubscribeActorEventsAlpha1`: the app (a gRPC app, or one with no
    /// port) hosts `config`'s actors through the stream it opened.
    pub async fn subscribe_actor_events(
        &self,
        config: ActorConfig,
    ) -> Result<ActorEvents, ApiError> {
        self.actors()?.connect(config).await
    }

    /// A call for an actor another runtime routed to this one.
    pub async fn invoke_actor_from_peer(
        &self,
        actor: &ActorRef,
        hops: u32,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        self.actors()?.invoke_from_peer(actor, hops, req).await
    }

    /// `GET /v1.0/actors/{type}/{id}/state/{key}`: `None` when the key
    /// holds nothing.
    pub async fn get_actor_state(
        &self,
        actor_type: &str,
        actor_id: &str,
        key: &str,
    ) -> Result<Option<ActorStateValue>, ApiError> {
        let actor = actor_ref(actor_type, actor_id)?;
        reserved(&actor)?;
        let store = self.actor_store(&actor)?;
        let got = store
            .get(mecha_state::GetRequest {
                key: key.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(state_get)?;
        Ok(got.map(|got| ActorStateValue {
            data: got.data,
            metadata: got.metadata,
        }))
    }

    /// `POST /v1.0/actors/{type}/{id}/state`: every operation or none, for
    /// an actor active on this runtime.
    pub async fn actor_state_transaction(
        &self,
        actor_type: &str,
        actor_id: &str,
        operations: Vec<ActorStateOperation>,
    ) -> Result<(), ApiError> {
        let actor = actor_ref(actor_type, actor_id)?;
        reserved(&actor)?;
        let actors = self.actors()?;
        let store = self.actor_store(&actor)?;
        if !actors.is_active(&actor) {
            return Err(instance_missing());
        }
        let ttl_allowed = self
            .runtime()
            .info
            .enabled_features
            .iter()
            .any(|f| f == "ActorStateTTL");
        let mut ops = Vec::with_capacity(operations.len());
        for op in operations {
            if op.key.is_empty() {
                return Err(transaction_save("missing key"));
            }
            let key = op.key;
            match op.operation.as_str() {
                "upsert" => {
                    if op.metadata.contains_key("ttlInSeconds") && !ttl_allowed {
                        return Err(transaction_save(
                            "ttlInSeconds is not supported without the \"ActorStateTTL\" feature \
                             enabled",
                        ));
                    }
                    let mut set = SetRequest::new(key, op.value.unwrap_or_default());
                    set.metadata = op.metadata;
                    ops.push(Operation::Upsert(set));
                }
                "delete" => ops.push(Operation::Delete(DeleteRequest {
                    key,
                    metadata: op.metadata,
                    ..Default::default()
                })),
                "" => return Err(transaction_save("operation is empty")),
                other => {
                    return Err(transaction_save(format!(
                        "operation type {other} not supported"
                    )));
                }
            }
        }
        store
            .transact(ops, &Metadata::new())
            .await
            .map_err(transaction_save)
    }
}

impl Api {
    /// The scheduler store that keeps reminders.
    fn reminder_scheduler(&self, code: &'static str) -> Result<Scheduler, ApiError> {
        self.runtime()
            .components()
            .all::<SchedulerBlock>()
            .next()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    code,
                    500,
                    GrpcCode::Internal,
                    "reminder scheduler is not configured",
                )
            })
    }

    /// Checks an actor and a timer's or reminder's name.
    fn actor_and_name(
        &self,
        actor_type: &str,
        actor_id: &str,
        what: &str,
        name: &str,
    ) -> Result<ActorRef, ApiError> {
        let actor = actor_ref(actor_type, actor_id)?;
        reserved(&actor)?;
        check_name(what, name)?;
        Ok(actor)
    }

    /// `POST /v1.0/actors/{type}/{id}/timers/{name}`, `RegisterActorTimer`.
    pub fn create_actor_timer(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
        spec: TimerSpec,
    ) -> Result<(), ApiError> {
        let actor = self.actor_and_name(actor_type, actor_id, "timer name", name)?;
        self.actors()?.create_timer(&actor, name, spec)
    }

    /// `DELETE /v1.0/actors/{type}/{id}/timers/{name}`, `UnregisterActorTimer`.
    pub fn delete_actor_timer(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let actor = self.actor_and_name(actor_type, actor_id, "timer name", name)?;
        self.actors()?.delete_timer(&actor, name);
        Ok(())
    }

    /// `POST /v1.0/actors/{type}/{id}/reminders/{name}`,
    /// `RegisterActorReminder`.
    pub async fn create_actor_reminder(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
        spec: ReminderSpec,
    ) -> Result<(), ApiError> {
        let actor = self.actor_and_name(actor_type, actor_id, "reminder name", name)?;
        let scheduler = self.reminder_scheduler("ERR_ACTOR_REMINDER_CREATE")?;
        self.actors()?
            .create_reminder(&scheduler, &actor, name, spec)
            .await
    }

    /// `GET /v1.0/actors/{type}/{id}/reminders/{name}`, `GetActorReminder`.
    pub async fn get_actor_reminder(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
    ) -> Result<Reminder, ApiError> {
        let actor = self.actor_and_name(actor_type, actor_id, "reminder name", name)?;
        let scheduler = self.reminder_scheduler("ERR_ACTOR_REMINDER_GET")?;
        self.actors()?.get_reminder(&scheduler, &actor, name).await
    }

    /// `DELETE /v1.0/actors/{type}/{id}/reminders/{name}`,
    /// `UnregisterActorReminder`.
    pub async fn delete_actor_reminder(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let actor = self.actor_and_name(actor_type, actor_id, "reminder name", name)?;
        let scheduler = self.reminder_scheduler("ERR_ACTOR_REMINDER_DELETE")?;
        self.actors()?
            .delete_reminder(&scheduler, &actor, name)
            .await
    }

    /// `ListActorReminders`: a type's reminders, of one actor or of all.
    pub async fn list_actor_reminders(
        &self,
        actor_type: &str,
        actor_id: Option<&str>,
    ) -> Result<Vec<Reminder>, ApiError> {
        self.check_type_and_id(actor_type, actor_id)?;
        let scheduler = self.reminder_scheduler("ERR_ACTOR_REMINDER_GET")?;
        self.actors()?
            .list_reminders(&scheduler, actor_type, actor_id)
            .await
    }

    /// `UnregisterActorRemindersByType`: of one actor or of all.
    pub async fn delete_actor_reminders(
        &self,
        actor_type: &str,
        actor_id: Option<&str>,
    ) -> Result<(), ApiError> {
        self.check_type_and_id(actor_type, actor_id)?;
        let scheduler = self.reminder_scheduler("ERR_ACTOR_REMINDER_DELETE")?;
        self.actors()?
            .delete_reminders(&scheduler, actor_type, actor_id)
            .await
    }

    fn check_type_and_id(&self, actor_type: &str, actor_id: Option<&str>) -> Result<(), ApiError> {
        check_name("actorType", actor_type)?;
        if let Some(id) = actor_id {
            check_name("actorID", id)?;
        }
        reserved(&ActorRef::new(actor_type, actor_id.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_daprd_checks_them() {
        assert!(actor_ref("Cart", "user-1").is_ok());
        for (t, id) in [
            ("", "1"),
            ("Cart", ""),
            ("a/b", "1"),
            ("Cart", "x?y"),
            ("..", "1"),
        ] {
            let err = actor_ref(t, id).unwrap_err();
            assert_eq!(
                (err.code, err.http_status),
                ("ERR_BAD_REQUEST", 400),
                "{t:?} {id:?}"
            );
        }
        let err = reserved(&ActorRef::new("dapr.internal.wf", "1")).unwrap_err();
        assert_eq!(
            (err.code, err.http_status),
            ("ERR_ACTOR_TYPE_RESERVED", 403)
        );
    }
}
