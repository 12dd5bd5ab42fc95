//! The app-initiated actor stream (`SubscribeActorEventsAlpha1`): a gRPC
//! app with no port of its own hosts actors through the stream it opens to
//! the real binary. The app here is this test, speaking the wire protocol.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mecha_proto::runtime as pb;
use pb::subscribe_actor_events_request_alpha1::RequestType as Incoming;
use pb::subscribe_actor_events_response_alpha1::ResponseType as Outgoing;
use prost::Message;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::actors::{stop_cleanly, wait_for};
use crate::harness::Sidecar;
use crate::invoke::{Host, app_args};

/// What the app was sent.
#[derive(Default)]
struct Seen {
    /// (actor id, method, metadata).
    calls: Vec<(String, String, std::collections::HashMap<String, String>)>,
    /// (actor id, name, callback, data as JSON).
    timers: Vec<(String, String, String, Value)>,
    /// (actor id, name, data as JSON).
    reminders: Vec<(String, String, Value)>,
    deactivated: Vec<String>,
    /// Whether the runtime ended the stream (cleanly).
    ended: bool,
}

/// An app's open stream.
struct Streamed {
    seen: Arc<Mutex<Seen>>,
    _answers: mpsc::Sender<pb::SubscribeActorEventsRequestAlpha1>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Streamed {
    fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().unwrap())
    }
}

fn request(kind: Incoming) -> pb::SubscribeActorEventsRequestAlpha1 {
    pb::SubscribeActorEventsRequestAlpha1 {
        request_type: Some(kind),
    }
}

fn initial(idle: Duration) -> pb::SubscribeActorEventsRequestInitialAlpha1 {
    pb::SubscribeActorEventsRequestInitialAlpha1 {
        entities: vec!["Streamed".into()],
        actor_idle_timeout: Some(idle.try_into().unwrap()),
        reentrancy: Some(pb::ActorReentrancyConfig {
            enabled: true,
            max_stack_depth: Some(4),
        }),
        ..Default::default()
    }
}

/// A timer's or reminder's data, as JSON.
fn data_of(any: Option<prost_types::Any>) -> Value {
    let any = any.expect("the fire carries its data");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/google.protobuf.BytesValue"
    );
    let bytes = Vec::<u8>::decode(any.value.as_slice()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Opens the stream with `first` as its first message.
async fn open(
    sidecar: &Sidecar,
    first: Incoming,
) -> Result<
    (
        tonic::Streaming<pb::SubscribeActorEventsResponseAlpha1>,
        mpsc::Sender<pb::SubscribeActorEventsRequestAlpha1>,
    ),
    tonic::Status,
> {
    let (answers, outgoing) = mpsc::channel(64);
    answers.send(request(first)).await.unwrap();
    let inbound = sidecar
        .grpc()
        .await
        .subscribe_actor_events_alpha1(ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    Ok((inbound, answers))
}

/// Opens the stream as an app hosting `Streamed`, and answers what comes:
/// method `echo` with `echo:{data}`, `oops` with the actor's own error,
/// anything else as not found; each timer twice then cancels it; each
/// reminder once, cancelling it.
async fn connect(sidecar: &Sidecar, idle: Duration) -> Streamed {
    let (mut inbound, answers) = open(sidecar, Incoming::InitialRequest(initial(idle)))
        .await
        .unwrap();
    let first = inbound.message().await.unwrap().unwrap();
    assert!(
        matches!(first.response_type, Some(Outgoing::InitialResponse(_))),
        "{first:?}"
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (record, send) = (seen.clone(), answers.clone());
    let task = tokio::spawn(async move {
        let ended = loop {
            let message = match inbound.message().await {
                Ok(Some(message)) => message,
                Ok(None) => break true,
                Err(_) => break false,
            };
            let answer = {
                let mut seen = record.lock().unwrap();
                match message.response_type.unwrap() {
                    Outgoing::InvokeRequest(call) => {
                        seen.calls
                            .push((call.actor_id, call.method.clone(), call.metadata));
                        match call.method.as_str() {
                            // Never answered.
                            "hang" => continue,
                            "echo" => Incoming::InvokeResponse(
                                pb::SubscribeActorEventsRequestInvokeResponseAlpha1 {
                                    id: call.id,
                                    data: [b"echo:".as_slice(), &call.data].concat().into(),
                                    metadata: [("content-type".into(), "text/plain".into())].into(),
                                    error: false,
                                },
                            ),
                            "oops" => Incoming::InvokeResponse(
                                pb::SubscribeActorEventsRequestInvokeResponseAlpha1 {
                                    id: call.id,
                                    data: "bad".into(),
                                    error: true,
                                    ..Default::default()
                                },
                            ),
                            _ => Incoming::RequestFailed(
                                pb::SubscribeActorEventsRequestFailedAlpha1 {
                                    id: call.id,
                                    code: tonic::Code::NotFound as u32,
                                    message: "no such method".into(),
                                },
                            ),
                        }
                    }
                    Outgoing::TimerRequest(timer) => {
                        seen.timers.push((
                            timer.actor_id,
                            timer.name,
                            timer.callback,
                            data_of(timer.data),
                        ));
                        Incoming::TimerResponse(
                            pb::SubscribeActorEventsRequestReminderResponseAlpha1 {
                                id: timer.id,
                                cancel: seen.timers.len() >= 2,
                            },
                        )
                    }
                    Outgoing::ReminderRequest(reminder) => {
                        seen.reminders.push((
                            reminder.actor_id,
                            reminder.name,
                            data_of(reminder.data),
                        ));
                        Incoming::ReminderResponse(
                            pb::SubscribeActorEventsRequestReminderResponseAlpha1 {
                                id: reminder.id,
                                cancel: true,
                            },
                        )
                    }
                    Outgoing::DeactivateRequest(gone) => {
                        seen.deactivated.push(gone.actor_id);
                        Incoming::DeactivateResponse(
                            pb::SubscribeActorEventsRequestDeactivateResponseAlpha1 { id: gone.id },
                        )
                    }
                    Outgoing::InitialResponse(_) => panic!("a second initial response"),
                }
            };
            if send.send(request(answer)).await.is_err() {
                break false;
            }
        };
        record.lock().unwrap().ended = ended;
    });
    Streamed {
        seen,
        _answers: answers,
        task,
    }
}

async fn call(sidecar: &Sidecar, id: &str, method: &str) -> reqwest::Response {
    reqwest::Client::new()
        .put(sidecar.http(&format!("/v1.0/actors/Streamed/{id}/method/{method}")))
        .body("hi")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_app_hosts_actors_through_its_stream() {
    let host = Host::new();
    // An app with no port of its own.
    let sidecar = host.runtime("streamer", &[], &[]).await;

    // The first message must be the initial request.
    let wrong =
        Incoming::DeactivateResponse(pb::SubscribeActorEventsRequestDeactivateResponseAlpha1 {
            id: "1".into(),
        });
    let refused = open(&sidecar, wrong).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("SubscribeActorEventsRequestInitialAlpha1"),
        "{refused:?}"
    );

    let app = connect(&sidecar, Duration::from_secs(1)).await;

    // Calls over HTTP and gRPC reach the app with their metadata.
    let answer = call(&sidecar, "a", "echo").await;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["content-type"], "text/plain");
    assert_eq!(answer.text().await.unwrap(), "echo:hi");
    let chain = app.seen(|s| s.calls[0].2.get("dapr-reentrancy-id").cloned());
    assert!(
        chain.is_some_and(|id| !id.is_empty()),
        "the call chain's id goes with the call"
    );
    let grpc = sidecar
        .grpc()
        .await
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Streamed".into(),
            actor_id: "a".into(),
            method: "echo".into(),
            data: "grpc".into(),
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&grpc.data[..], b"echo:grpc");

    // The actor's own error reaches the caller as daprd gives it.
    let answer = call(&sidecar, "a", "oops").await;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["x-daprerrorresponseheader"], "true");
    assert_eq!(answer.text().await.unwrap(), "bad");
    // A method the app does not have.
    let answer = call(&sidecar, "a", "nothing").await;
    assert_eq!(answer.status().as_u16(), 500);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_ACTOR_INVOKE_METHOD", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("actor method not found"),
        "{body}"
    );

    // A timer and a reminder fire on the stream with their data; the
    // reminder is cancelled by its first answer.
    let client = reqwest::Client::new();
    let made = client
        .post(sidecar.http("/v1.0/actors/Streamed/a/timers/t"))
        .json(&json!({"dueTime": "0s", "period": "100ms", "callback": "onT", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 204);
    let made = client
        .post(sidecar.http("/v1.0/actors/Streamed/a/reminders/r"))
        .json(&json!({"dueTime": "0s", "period": "100ms", "data": {"m": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 204);
    wait_for(Duration::from_secs(10), "the timer fired twice", || {
        app.seen(|s| s.timers.len() >= 2)
    })
    .await;
    let timer = app.seen(|s| s.timers[0].clone());
    assert_eq!(
        timer,
        ("a".into(), "t".into(), "onT".into(), json!({"n": 1}))
    );
    wait_for(Duration::from_secs(10), "the reminder fired", || {
        app.seen(|s| !s.reminders.is_empty())
    })
    .await;
    let reminder = app.seen(|s| s.reminders[0].clone());
    assert_eq!(reminder, ("a".into(), "r".into(), json!({"m": 2})));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = reqwest::get(sidecar.http("/v1.0/actors/Streamed/a/reminders/r"))
            .await
            .unwrap();
        if got.status().as_u16() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the cancelled reminder stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Its timer cancelled, the actor goes idle and is deactivated.
    wait_for(
        Duration::from_secs(15),
        "the idle actor was deactivated",
        || app.seen(|s| s.deactivated.iter().any(|id| id == "a")),
    )
    .await;
    assert_eq!(
        app.seen(|s| s.timers.len()),
        2,
        "the timer stopped when cancelled"
    );

    // The app goes away with a call unanswered: the call fails at once.
    let hanging = {
        let url = sidecar.http("/v1.0/actors/Streamed/h/method/hang");
        tokio::spawn(async move { reqwest::Client::new().put(url).send().await.unwrap() })
    };
    wait_for(Duration::from_secs(10), "the app got the call", || {
        app.seen(|s| s.calls.iter().any(|(_, method, _)| method == "hang"))
    })
    .await;
    drop(app);
    let failed = tokio::time::timeout(Duration::from_secs(10), hanging)
        .await
        .expect("the call ended with the stream")
        .unwrap();
    assert_eq!(failed.status().as_u16(), 500);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_ACTOR_INVOKE_METHOD", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("disconnected before responding"),
        "{body}"
    );

    // The app comes back: a new stream takes the calls.
    let again = connect(&sidecar, Duration::from_secs(60)).await;
    let answer = call(&sidecar, "b", "echo").await;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.text().await.unwrap(), "echo:hi");
    assert!(again.seen(|s| s.calls.iter().any(|(id, _, _)| id == "b")));

    // The runtime stops: the active actor is deactivated through the
    // stream, then the stream ends.
    stop_cleanly(sidecar).await;
    assert!(again.seen(|s| s.deactivated.iter().any(|id| id == "b")));
    wait_for(Duration::from_secs(5), "the stream ended", || {
        again.seen(|s| s.ended)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_app_cannot_open_the_actor_stream() {
    let host = Host::new();
    let app = crate::apps::App::http(0).await;
    let sidecar = host
        .runtime("http-app", &app_args(app.port, "http"), &[])
        .await;
    let refused = open(
        &sidecar,
        Incoming::InitialRequest(initial(Duration::from_secs(60))),
    )
    .await
    .expect_err("refused");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("requires a gRPC app channel"),
        "{refused:?}"
    );
}
