//! The app-initiated actor stream (`SubscribeActorEventsAlpha1`, daprd
//! 1.18): a gRPC app dials in, says what it hosts, and takes its actors'
//! calls, timer and reminder fires and deactivations as messages on the
//! stream, answering each by its id. The app needs no listening port.
//!
//! The stream is one [`ActorApp`]: routing, turns, reentrancy, timers,
//! reminders and hand-overs are the same as for an HTTP app. Where daprd
//! and Mecha differ (the README's actors row says so too):
//! - a second stream replaces the first (new calls go to it), and closing
//!   the replaced one leaves the types hosted; daprd unregisters the types
//!   when any of its streams closes;
//! - an app that keeps its stream open and never answers holds the call,
//!   as in daprd; when the stream ends, every call waiting fails at once;
//! - `cancel` in a timer's or reminder's answer stops it, as
//!   `X-Daprremindercancel` does for an HTTP app (daprd ignores it);
//! - the app's answer to a deactivation is awaited for 3 s at most.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use mecha_core::{ApiError, GrpcCode};
use mecha_invoke::{InvokeRequest, InvokeResponse, body};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::app::ERROR_RESPONSE;
use crate::timers::CANCEL;
use crate::{ActorApp, ActorConfig, ActorRef, Actors, errors};

/// Messages waiting to go out on one stream.
const WAITING: usize = 64;
/// gRPC's `NOT_FOUND`: the app has no such method.
const NOT_FOUND: u32 = 5;

/// What the runtime asks of the app on its stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ActorEvent {
    /// The answer's id.
    pub id: String,
    pub actor: ActorRef,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// A method call; `metadata` holds the call's headers (one value each).
    Invoke {
        method: String,
        data: Bytes,
        metadata: Vec<(String, String)>,
    },
    /// A reminder's fire; `data` is the reminder's data as JSON.
    Reminder {
        name: String,
        due_time: String,
        period: String,
        data: Option<Bytes>,
    },
    /// A timer's fire; `data` is the timer's data as JSON.
    Timer {
        name: String,
        due_time: String,
        period: String,
        callback: String,
        data: Option<Bytes>,
    },
    Deactivate,
}

/// The app's answer to an [`ActorEvent`].
#[derive(Clone, Debug, PartialEq)]
pub enum ActorAnswer {
    Invoked {
        data: Bytes,
        metadata: HashMap<String, String>,
        /// The data is the actor's own error (the caller gets it as a
        /// success, marked `X-Daprerrorresponseheader`).
        error: bool,
    },
    /// A timer's or reminder's fire taken; `cancel` stops it.
    Fired {
        cancel: bool,
    },
    Deactivated,
    /// The app could not take the event: `code` is a gRPC code.
    Failed {
        code: u32,
        message: String,
    },
}

/// The events waiting for the app's answers, by id.
#[derive(Default)]
struct Pending(Mutex<HashMap<String, oneshot::Sender<ActorAnswer>>>);

/// Where the app's answers on one stream go.
#[derive(Clone)]
pub struct ActorAnswers(Arc<Pending>);

impl ActorAnswers {
    /// The app's answer to the event `id`.
    pub fn answer(&self, id: &str, answer: ActorAnswer) {
        let waiting = self.0.0.lock().expect("pending").remove(id);
        match waiting {
            Some(waiting) => {
                let _ = waiting.send(answer);
            }
            None => tracing::warn!(id, "an actor answer for nothing waiting; dropped"),
        }
    }
}

/// Removes an id from the events waiting for an answer.
struct Forget<'a>(&'a Pending, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.0.lock().expect("pending").remove(self.1);
    }
}

/// One app's stream, as the actor runtime's [`ActorApp`]. Its sender is
/// the stream's only one: once the runtime lets it go (the app
/// disconnected or was replaced, or the runtime stopped), the stream ends.
pub(crate) struct StreamApp {
    events: mpsc::Sender<ActorEvent>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    max_body: usize,
}

/// An app's open stream: the events for it, until the runtime lets it go.
/// Dropping it disconnects the app: its actors go to other runtimes.
pub struct ActorEvents {
    events: mpsc::Receiver<ActorEvent>,
    answers: ActorAnswers,
    actors: Actors,
    generation: u64,
}

impl ActorEvents {
    /// The next event for the app; `None` once the stream is let go.
    pub async fn next(&mut self) -> Option<ActorEvent> {
        self.events.recv().await
    }

    pub fn answers(&self) -> ActorAnswers {
        self.answers.clone()
    }
}

impl Drop for ActorEvents {
    fn drop(&mut self) {
        // No event goes out any more, and whatever waits for an answer
        // fails now.
        self.events.close();
        self.answers.0.0.lock().expect("pending").clear();
        let (actors, generation) = (self.actors.clone(), self.generation);
        tokio::spawn(async move { actors.disconnect(generation).await });
    }
}

impl StreamApp {
    fn new(max_body: usize) -> (Arc<Self>, mpsc::Receiver<ActorEvent>, ActorAnswers) {
        let (events, receiver) = mpsc::channel(WAITING);
        let pending = Arc::new(Pending::default());
        let app = Arc::new(Self {
            events,
            pending: pending.clone(),
            next_id: AtomicU64::new(1),
            max_body,
        });
        (app, receiver, ActorAnswers(pending))
    }

    /// Sends `kind` for `actor` and waits for the app's answer, for as long
    /// as the stream is open (as daprd, an app that keeps its stream open
    /// and never answers holds the call).
    async fn ask(&self, actor: &ActorRef, kind: EventKind) -> Result<ActorAnswer, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let (answer, waiting) = oneshot::channel();
        self.pending
            .0
            .lock()
            .expect("pending")
            .insert(id.clone(), answer);
        // The id is forgotten however this ends (a caller's timeout too).
        let _forget = Forget(&self.pending, &id);
        let event = ActorEvent {
            id: id.clone(),
            actor: actor.clone(),
            kind,
        };
        if self.events.send(event).await.is_err() {
            return Err("actor host is not connected".into());
        }
        tokio::select! {
            answer = waiting => {
                answer.map_err(|_| "actor host disconnected before responding".into())
            }
            () = self.events.closed() => Err("actor host disconnected before responding".into()),
        }
    }
}

/// A timer's or reminder's call body (`Actors::fire`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FireBody<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    callback: Option<String>,
    due_time: String,
    period: String,
}

/// The fire a fire's call carries (`timer/{name}` or `remind/{name}` with
/// a fire's body).
fn fire_of(method: &str, data: &[u8]) -> Option<EventKind> {
    let (kind, name) = method.split_once('/')?;
    if name.is_empty() || !matches!(kind, "timer" | "remind") {
        return None;
    }
    let body: FireBody = serde_json::from_slice(data).ok()?;
    let data = body
        .data
        .filter(|raw| raw.get() != "null")
        .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()));
    let name = name.to_owned();
    Some(match kind {
        "timer" => EventKind::Timer {
            name,
            due_time: body.due_time,
            period: body.period,
            callback: body.callback.unwrap_or_default(),
            data,
        },
        _ => EventKind::Reminder {
            name,
            due_time: body.due_time,
            period: body.period,
            data,
        },
    })
}

/// A call's headers, one value each (daprd sends the first).
fn flatten(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut seen = Vec::<(String, String)>::new();
    for (name, value) in headers {
        if seen.iter().any(|(n, _)| n == name.as_str()) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            seen.push((name.as_str().to_owned(), value.to_owned()));
        }
    }
    seen
}

fn ok(headers: HeaderMap, data: Bytes) -> InvokeResponse {
    InvokeResponse {
        status: http::StatusCode::OK,
        headers,
        body: body::full(data),
        grpc_status: None,
    }
}

#[async_trait]
impl ActorApp for StreamApp {
    async fn call(
        &self,
        actor: &ActorRef,
        req: InvokeRequest,
        fire: bool,
    ) -> Result<InvokeResponse, ApiError> {
        let metadata = flatten(&req.headers);
        let method = req.method;
        let data = body::collect(req.body, self.max_body)
            .await
            .map_err(|err| errors::invoke_method(format!("reading the call: {err}")))?;
        let fired = fire.then(|| fire_of(&method, &data)).flatten();
        let kind = fired.unwrap_or(EventKind::Invoke {
            method: method.clone(),
            data,
            metadata,
        });
        let is_fire = !matches!(kind, EventKind::Invoke { .. });
        let answer = self.ask(actor, kind).await.map_err(errors::invoke_method)?;
        match answer {
            ActorAnswer::Invoked {
                data,
                metadata,
                error,
            } if !is_fire => {
                let mut headers = HeaderMap::new();
                for (name, value) in metadata {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::try_from(name.as_str()),
                        HeaderValue::try_from(value.as_str()),
                    ) {
                        headers.insert(name, value);
                    }
                }
                if error {
                    headers.insert(ERROR_RESPONSE, HeaderValue::from_static("true"));
                }
                Ok(ok(headers, data))
            }
            ActorAnswer::Fired { cancel } if is_fire => {
                let mut headers = HeaderMap::new();
                if cancel {
                    headers.insert(CANCEL, HeaderValue::from_static("true"));
                }
                Ok(ok(headers, Bytes::new()))
            }
            ActorAnswer::Failed { code, .. } if code == NOT_FOUND => Err(errors::invoke_method(
                format!("actor method not found: {method}"),
            )),
            ActorAnswer::Failed { message, .. } => Err(errors::invoke_method(format!(
                "error from actor service: {message}"
            ))),
            other => Err(errors::invoke_method(format!(
                "actor host returned an unexpected response type for {method}: {other:?}"
            ))),
        }
    }

    async fn deactivate(&self, actor: &ActorRef) -> Result<(), String> {
        match self.ask(actor, EventKind::Deactivate).await? {
            ActorAnswer::Failed { message, .. } => Err(message),
            _ => Ok(()),
        }
    }
}

/// daprd's refusal of a stream from an app it reaches over HTTP.
fn not_grpc() -> ApiError {
    ApiError::new(
        "ERR_ACTOR_STREAM",
        400,
        GrpcCode::FailedPrecondition,
        "actor callback streaming requires a gRPC app channel",
    )
}

fn not_registered(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_ACTOR_STREAM",
        500,
        GrpcCode::Internal,
        format!("failed to register hosted actors: {message}"),
    )
}

impl Actors {
    /// Opens the app's actor stream: the app hosts `config`'s types through
    /// it from now on (a stream already open is let go).
    pub async fn connect(&self, config: ActorConfig) -> Result<ActorEvents, ApiError> {
        if self.inner.seams.http_app {
            return Err(not_grpc());
        }
        if !self.wait_configured(crate::PLACEMENT_WAIT).await {
            return Err(not_registered("the actor runtime is not ready"));
        }
        let (app, events, answers) = StreamApp::new(self.inner.seams.max_answer);
        let generation = self
            .host_types(config, Some(app))
            .await
            .map_err(not_registered)?;
        Ok(ActorEvents {
            events,
            answers,
            actors: self.clone(),
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_are_told_from_calls() {
        let timer = fire_of(
            "timer/tick",
            br#"{"data":{"n":1},"callback":"onTick","dueTime":"1s","period":"2s"}"#,
        );
        assert_eq!(
            timer,
            Some(EventKind::Timer {
                name: "tick".into(),
                due_time: "1s".into(),
                period: "2s".into(),
                callback: "onTick".into(),
                data: Some(Bytes::from_static(br#"{"n":1}"#)),
            })
        );
        let reminder = fire_of(
            "remind/r",
            br#"{"data":null,"dueTime":"","period":"R2/PT1S"}"#,
        );
        assert_eq!(
            reminder,
            Some(EventKind::Reminder {
                name: "r".into(),
                due_time: String::new(),
                period: "R2/PT1S".into(),
                data: None,
            })
        );
        // Anything else is not a fire.
        assert_eq!(fire_of("timer/tick", b"{}"), None);
        assert_eq!(fire_of("remind", b"{}"), None);
        assert_eq!(fire_of("other/x", br#"{"dueTime":"","period":""}"#), None);
    }

    #[test]
    fn headers_go_as_one_value_each() {
        let mut headers = HeaderMap::new();
        headers.append("dapr-reentrancy-id", HeaderValue::from_static("r1"));
        headers.append("x-twice", HeaderValue::from_static("first"));
        headers.append("x-twice", HeaderValue::from_static("second"));
        assert_eq!(
            flatten(&headers),
            [
                ("dapr-reentrancy-id".to_owned(), "r1".to_owned()),
                ("x-twice".to_owned(), "first".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn answers_come_back_by_id_and_a_closed_stream_fails_calls() {
        let (app, mut events, answers) = StreamApp::new(1024);
        let actor = ActorRef::new("T", "1");
        let call = {
            let (app, actor) = (app.clone(), actor.clone());
            tokio::spawn(async move {
                let req = InvokeRequest::new(http::Method::PUT, "hello", body::full("hi"));
                app.call(&actor, req, false).await
            })
        };
        let event = events.recv().await.unwrap();
        assert_eq!(event.actor, actor);
        let EventKind::Invoke { method, data, .. } = &event.kind else {
            panic!("{event:?}");
        };
        assert_eq!((method.as_str(), &data[..]), ("hello", &b"hi"[..]));
        answers.answer(
            &event.id,
            ActorAnswer::Invoked {
                data: Bytes::from_static(b"oops"),
                metadata: HashMap::from([("content-type".into(), "text/plain".into())]),
                error: true,
            },
        );
        let answer = call.await.unwrap().unwrap();
        assert_eq!(answer.headers[ERROR_RESPONSE], "true");
        assert_eq!(answer.headers["content-type"], "text/plain");

        // The app has no such method.
        let call = {
            let (app, actor) = (app.clone(), actor.clone());
            tokio::spawn(async move {
                let req = InvokeRequest::new(http::Method::PUT, "nope", body::empty());
                app.call(&actor, req, false).await
            })
        };
        let event = events.recv().await.unwrap();
        answers.answer(
            &event.id,
            ActorAnswer::Failed {
                code: NOT_FOUND,
                message: "no".into(),
            },
        );
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.code, "ERR_ACTOR_INVOKE_METHOD");
        assert!(
            err.message.contains("actor method not found: nope"),
            "{}",
            err.message
        );

        // The app goes away with a call unanswered.
        let call = {
            let (app, actor) = (app.clone(), actor.clone());
            tokio::spawn(async move { app.deactivate(&actor).await })
        };
        let event = events.recv().await.unwrap();
        assert_eq!(event.kind, EventKind::Deactivate);
        answers.0.0.lock().unwrap().clear();
        let err = call.await.unwrap().unwrap_err();
        assert!(err.contains("disconnected before responding"), "{err}");
    }
}
