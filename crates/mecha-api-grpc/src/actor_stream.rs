//! `SubscribeActorEventsAlpha1` (daprd 1.18): a gRPC app dials in, says
//! which actor types it hosts, and takes its actors' calls, timer and
//! reminder fires and deactivations on the stream, answering each by id.
//!
//! The first message must be the initial request; the runtime answers it
//! with one `initial_response` once the types are hosted. The app hosts
//! them until its stream ends (or another stream replaces it).

use std::time::Duration;

use mecha_api::Api;
use mecha_api::actors::{ActorAnswer, ActorConfig, ActorEvent, EventKind, Reentrancy, Settings};
use mecha_proto::runtime as pb;
use pb::subscribe_actor_events_request_alpha1::RequestType as Incoming;
use pb::subscribe_actor_events_response_alpha1::ResponseType as Outgoing;
use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::status_from;

/// Messages waiting to go out on one stream.
const OUTGOING: usize = 64;
/// The type of a timer's or reminder's `data` (daprd's).
const BYTES_VALUE: &str = "type.googleapis.com/google.protobuf.BytesValue";

pub(crate) async fn subscribe(
    api: &Api,
    request: Request<Streaming<pb::SubscribeActorEventsRequestAlpha1>>,
) -> Result<Response<BoxStream<pb::SubscribeActorEventsResponseAlpha1>>, Status> {
    let mut inbound = request.into_inner();
    let initial = match inbound.message().await? {
        Some(pb::SubscribeActorEventsRequestAlpha1 {
            request_type: Some(Incoming::InitialRequest(initial)),
        }) => initial,
        _ => {
            return Err(Status::invalid_argument(
                "first message must be SubscribeActorEventsRequestInitialAlpha1",
            ));
        }
    };
    let mut events = api
        .subscribe_actor_events(config_of(initial)?)
        .await
        .map_err(status_from)?;
    let answers = events.answers();
    let (out, stream) = mpsc::channel(OUTGOING);
    let _ = out
        .send(Ok(outgoing(Outgoing::InitialResponse(
            pb::SubscribeActorEventsResponseInitialAlpha1 {},
        ))))
        .await;
    // Events go out until the runtime lets the stream go or the app's side
    // is gone; dropping `events` then disconnects the app.
    let forward = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if out.send(Ok(outgoing(message(event)))).await.is_err() {
                // The app's side is gone: it is disconnected now.
                return None;
            }
        }
        // Let go by the runtime: the app's answers to what it was sent are
        // still taken until its side ends.
        Some(events)
    });
    tokio::spawn(async move {
        loop {
            let (id, answer) = match inbound.message().await {
                Ok(Some(pb::SubscribeActorEventsRequestAlpha1 {
                    request_type: Some(incoming),
                })) => match answer_of(incoming) {
                    Some(answer) => answer,
                    None => {
                        tracing::warn!("an actor stream sent a second initial request; closing it");
                        break;
                    }
                },
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            };
            answers.answer(&id, answer);
        }
        forward.abort();
        drop(forward.await);
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
}

fn outgoing(message: Outgoing) -> pb::SubscribeActorEventsResponseAlpha1 {
    pb::SubscribeActorEventsResponseAlpha1 {
        response_type: Some(message),
    }
}

fn duration(value: Option<prost_types::Duration>) -> Result<Option<Duration>, Status> {
    value
        .map(|d| {
            Duration::try_from(d)
                .map_err(|err| Status::invalid_argument(format!("a negative duration: {err}")))
        })
        .transpose()
}

fn settings(
    idle: Option<prost_types::Duration>,
    drain: Option<prost_types::Duration>,
    drain_rebalanced: Option<bool>,
    reentrancy: Option<pb::ActorReentrancyConfig>,
) -> Result<Settings, Status> {
    Ok(Settings {
        idle_timeout: duration(idle)?,
        drain_timeout: duration(drain)?,
        drain_rebalanced,
        reentrancy: reentrancy.map(|r| Reentrancy {
            enabled: r.enabled,
            max_stack_depth: r.max_stack_depth.and_then(|d| u32::try_from(d).ok()),
        }),
    })
}

fn config_of(initial: pb::SubscribeActorEventsRequestInitialAlpha1) -> Result<ActorConfig, Status> {
    let all = settings(
        initial.actor_idle_timeout,
        initial.drain_ongoing_call_timeout,
        initial.drain_rebalanced_actors,
        initial.reentrancy,
    )?;
    let per_type = initial
        .entities_config
        .into_iter()
        .map(|entry| {
            let of = settings(
                entry.actor_idle_timeout,
                entry.drain_ongoing_call_timeout,
                entry.drain_rebalanced_actors,
                entry.reentrancy,
            )?;
            Ok((entry.entities, of))
        })
        .collect::<Result<Vec<_>, Status>>()?;
    // The stream has no setting for the idle scan: daprd's default.
    Ok(ActorConfig::new(initial.entities, None, &all, &per_type))
}

/// A timer's or reminder's data as daprd sends it: the JSON, as a
/// `BytesValue`.
fn data_any(data: Option<Bytes>) -> Option<prost_types::Any> {
    data.map(|json| prost_types::Any {
        type_url: BYTES_VALUE.to_owned(),
        // prost's `Vec<u8>` message is the `BytesValue` wrapper.
        value: json.to_vec().encode_to_vec(),
    })
}

fn message(event: ActorEvent) -> Outgoing {
    let ActorEvent { id, actor, kind } = event;
    let (actor_type, actor_id) = (actor.actor_type, actor.actor_id);
    match kind {
        EventKind::Invoke {
            method,
            data,
            metadata,
        } => Outgoing::InvokeRequest(pb::SubscribeActorEventsResponseInvokeRequestAlpha1 {
            id,
            actor_type,
            actor_id,
            method,
            data,
            metadata: metadata.into_iter().collect(),
        }),
        EventKind::Reminder {
            name,
            due_time,
            period,
            data,
        } => Outgoing::ReminderRequest(pb::SubscribeActorEventsResponseReminderRequestAlpha1 {
            id,
            actor_type,
            actor_id,
            name,
            due_time,
            period,
            data: data_any(data),
            metadata: Default::default(),
        }),
        EventKind::Timer {
            name,
            due_time,
            period,
            callback,
            data,
        } => Outgoing::TimerRequest(pb::SubscribeActorEventsResponseTimerRequestAlpha1 {
            id,
            actor_type,
            actor_id,
            name,
            due_time,
            period,
            callback,
            data: data_any(data),
            metadata: Default::default(),
        }),
        EventKind::Deactivate => {
            Outgoing::DeactivateRequest(pb::SubscribeActorEventsResponseDeactivateRequestAlpha1 {
                id,
                actor_type,
                actor_id,
            })
        }
    }
}

/// The app's answer and the id it answers; `None` for a second initial
/// request.
fn answer_of(incoming: Incoming) -> Option<(String, ActorAnswer)> {
    Some(match incoming {
        Incoming::InitialRequest(_) => return None,
        Incoming::InvokeResponse(r) => (
            r.id,
            ActorAnswer::Invoked {
                data: r.data,
                metadata: r.metadata,
                error: r.error,
            },
        ),
        Incoming::ReminderResponse(r) | Incoming::TimerResponse(r) => {
            (r.id, ActorAnswer::Fired { cancel: r.cancel })
        }
        Incoming::DeactivateResponse(r) => (r.id, ActorAnswer::Deactivated),
        Incoming::RequestFailed(r) => (
            r.id,
            ActorAnswer::Failed {
                code: r.code,
                message: r.message,
            },
        ),
    })
}
