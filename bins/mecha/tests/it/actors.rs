//! Actors end to end: two runtimes of one app sharing the host's embedded
//! placement, an actor app (in this process) that records every call's
//! interval and every deactivation, and the runtimes' HTTP API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};

use crate::harness::Sidecar;
use crate::invoke::{Host, app_args};

/// One call as the app saw it.
#[derive(Clone, Debug)]
struct Call {
    app: &'static str,
    id: String,
    start: Instant,
    end: Instant,
}

/// An actor app: type `Counter`.
struct ActorApp {
    name: &'static str,
    idle: &'static str,
    /// Its runtime's HTTP port, for actor state.
    sidecar: AtomicU16,
    calls: Mutex<Vec<Call>>,
    /// Timer and reminder calls: (actor id, "timer/x" or "remind/x", body, at).
    fires: Mutex<Vec<(String, String, Value, Instant)>>,
    /// How many fires of each (kind, name) are taken before the app
    /// answers `X-Daprremindercancel: true`.
    cancel_after: Mutex<BTreeMap<String, usize>>,
    deactivated: Mutex<Vec<(String, Instant)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    headers: Mutex<Vec<HeaderMap>>,
}

impl ActorApp {
    async fn start(name: &'static str, idle: &'static str) -> (Arc<Self>, u16) {
        let app = Arc::new(Self {
            name,
            idle,
            sidecar: AtomicU16::new(0),
            calls: Mutex::default(),
            fires: Mutex::default(),
            cancel_after: Mutex::default(),
            deactivated: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            headers: Mutex::default(),
        });
        let router = Router::new()
            .route("/dapr/config", get(config))
            .route("/actors/{actor_type}/{id}/method/{method}", put(method))
            .route("/actors/{actor_type}/{id}/method/{kind}/{name}", put(fire))
            .route(
                "/actors/{actor_type}/{id}",
                axum::routing::delete(deactivate),
            )
            .with_state(app.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (app, port)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The fires of `what` (`timer/x`, `remind/x`) to actor `id`.
    fn fires(&self, id: &str, what: &str) -> Vec<(Value, Instant)> {
        let fires = self.fires.lock().unwrap();
        fires
            .iter()
            .filter(|(of, kind, _, _)| of == id && kind == what)
            .map(|(_, _, body, at)| (body.clone(), *at))
            .collect()
    }

    fn deactivated(&self, id: &str) -> bool {
        self.deactivated
            .lock()
            .unwrap()
            .iter()
            .any(|(d, _)| d == id)
    }
}

async fn config(State(app): State<Arc<ActorApp>>) -> Response {
    // The first app of two also hosts `Target`, which so never moves.
    let entities = if app.name == "one" {
        json!(["Counter", "Target"])
    } else {
        json!(["Counter"])
    };
    axum::Json(json!({
        "entities": entities,
        "actorIdleTimeout": app.idle,
        "actorScanInterval": "200ms",
        "drainOngoingCallTimeout": "5s",
        // Reentrancy is per type: this app turns it on, with a depth of 3,
        // when its idle timeout is "2h" (the reentrancy test's app).
        "reentrancy": {"enabled": app.idle == "2h", "maxStackDepth": 3},
    }))
    .into_response()
}

async fn method(
    State(app): State<Arc<ActorApp>>,
    Path((actor_type, id, method)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    assert!(actor_type == "Counter" || actor_type == "Target");
    let start = Instant::now();
    let now = app.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    app.max_in_flight.fetch_max(now, Ordering::SeqCst);
    app.headers.lock().unwrap().push(headers.clone());
    let answer = match method.as_str() {
        "hit" => {
            tokio::time::sleep(Duration::from_millis(15)).await;
            axum::Json(json!({"app": app.name})).into_response()
        }
        "count" => count(&app, &id).await,
        relay if relay.starts_with("relay-") => relayed(&app, &relay["relay-".len()..]).await,
        nest if nest.starts_with("nest") => {
            let depth: u32 = nest["nest".len()..].parse().unwrap();
            nested(&app, &id, depth, &headers).await
        }
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "custom error").into_response(),
        "actor-error" => (
            StatusCode::OK,
            [("X-Daprerrorresponseheader", "yes")],
            "the actor's own error",
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    };
    app.in_flight.fetch_sub(1, Ordering::SeqCst);
    app.calls.lock().unwrap().push(Call {
        app: app.name,
        id,
        start,
        end: Instant::now(),
    });
    answer
}

/// Calls the same actor again through the runtime, `depth` times deep,
/// with the call chain's reentrancy id.
async fn nested(app: &ActorApp, id: &str, depth: u32, headers: &HeaderMap) -> Response {
    if depth == 0 {
        return axum::Json(json!({"app": app.name, "depth": 0})).into_response();
    }
    let chain = headers
        .get("dapr-reentrancy-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let inner = reqwest::Client::new()
        .put(format!(
            "http://127.0.0.1:{}/v1.0/actors/Counter/{id}/method/nest{}",
            app.sidecar.load(Ordering::SeqCst),
            depth - 1
        ))
        .header("dapr-reentrancy-id", chain)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = inner.status().as_u16();
    let body = inner.text().await.unwrap();
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

/// Calls method `hit` of actor `Target/{target}` through the runtime,
/// from inside this actor's call.
async fn relayed(app: &ActorApp, target: &str) -> Response {
    let inner = reqwest::Client::new()
        .put(format!(
            "http://127.0.0.1:{}/v1.0/actors/Target/{target}/method/hit",
            app.sidecar.load(Ordering::SeqCst),
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = inner.status().as_u16();
    let body = inner.text().await.unwrap();
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

/// Reads `n` from the actor's state, adds one and saves it, as an SDK's
/// actor does inside a call.
async fn count(app: &ActorApp, id: &str) -> Response {
    let base = format!(
        "http://127.0.0.1:{}/v1.0/actors/Counter/{id}/state",
        app.sidecar.load(Ordering::SeqCst)
    );
    let client = reqwest::Client::new();
    let got = client.get(format!("{base}/n")).send().await.unwrap();
    let n = match got.status().as_u16() {
        204 => 0,
        200 => got.json::<Value>().await.unwrap()["n"].as_i64().unwrap(),
        other => panic!("state read answered {other}: {}", got.text().await.unwrap()),
    };
    let saved = client
        .post(&base)
        .json(&json!([{"operation": "upsert", "request": {"key": "n", "value": {"n": n + 1}}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        saved.status().as_u16(),
        204,
        "{}",
        saved.text().await.unwrap()
    );
    axum::Json(json!({"app": app.name, "n": n + 1})).into_response()
}

/// A timer's or reminder's call.
async fn fire(
    State(app): State<Arc<ActorApp>>,
    Path((_actor_type, id, kind, name)): Path<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let what = format!("{kind}/{name}");
    let body: Value = serde_json::from_slice(&body).unwrap();
    let taken = {
        let mut fires = app.fires.lock().unwrap();
        fires.push((id.clone(), what.clone(), body, Instant::now()));
        fires
            .iter()
            .filter(|(of, k, _, _)| *of == id && *k == what)
            .count()
    };
    let limit = app.cancel_after.lock().unwrap().get(&what).copied();
    if limit.is_some_and(|limit| taken >= limit) {
        return (StatusCode::OK, [("X-Daprremindercancel", "true")]).into_response();
    }
    StatusCode::OK.into_response()
}

async fn deactivate(
    State(app): State<Arc<ActorApp>>,
    Path((_actor_type, id)): Path<(String, String)>,
) -> StatusCode {
    app.deactivated.lock().unwrap().push((id, Instant::now()));
    StatusCode::OK
}

async fn call(sidecar: &Sidecar, id: &str, method: &str) -> (u16, Value) {
    let path = format!("/v1.0/actors/Counter/{id}/method/{method}");
    send(reqwest::Method::PUT, sidecar, &path, json!({})).await
}

/// Two runtimes of app `counter` on one host, each with its actor app,
/// sharing the host's embedded placement.
async fn two_runtimes(idle: &'static str) -> (Host, [(Arc<ActorApp>, Sidecar); 2]) {
    two_runtimes_with(idle, &[]).await
}

/// Two runtimes as [`two_runtimes`], each with `extra` arguments.
async fn two_runtimes_with(
    idle: &'static str,
    extra: &[String],
) -> (Host, [(Arc<ActorApp>, Sidecar); 2]) {
    let host = Host::new();
    let (one, one_port) = ActorApp::start("one", idle).await;
    let (two, two_port) = ActorApp::start("two", idle).await;
    let args = |port| [app_args(port, "http"), extra.to_vec()].concat();
    let first = host.runtime("counter", &args(one_port), &[]).await;
    one.sidecar.store(first.http_port, Ordering::SeqCst);
    let second = host.runtime("counter", &args(two_port), &[]).await;
    two.sidecar.store(second.http_port, Ordering::SeqCst);
    // Both have joined once calls through the first land on both apps.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        let (status, body) = call(&first, &format!("probe-{i}"), "hit").await;
        assert_eq!(status, 200, "{body}");
        if one.calls().iter().any(|c| c.id.starts_with("probe"))
            && two.calls().iter().any(|c| c.id.starts_with("probe"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second runtime never got actors"
        );
        i += 1;
    }
    (host, [(one, first), (two, second)])
}

/// No two calls to one actor id overlap, whichever app served them.
fn assert_one_at_a_time(calls: &[Call]) {
    let mut by_id: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        by_id.entry(&call.id).or_default().push(call);
    }
    for (id, mut calls) in by_id {
        calls.sort_by_key(|c| c.start);
        for pair in calls.windows(2) {
            assert!(
                pair[1].start >= pair[0].end,
                "two calls to actor {id} overlapped: {:?} on {} and {:?} on {}",
                pair[0].start,
                pair[0].app,
                pair[1].start,
                pair[1].app
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_owner_one_call_at_a_time_and_state() {
    let (_host, [(one, first), (two, second)]) = two_runtimes("1h").await;

    // 24 calls at once to one id, through both runtimes: one owner, and
    // never two at once.
    let calls = (0..24).map(|i| {
        let sidecar = if i % 2 == 0 { &first } else { &second };
        call(sidecar, "hot", "hit")
    });
    let answers = futures::future::join_all(calls).await;
    let owners: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["app"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(owners.len(), 1, "one owner for one id: {owners:?}");
    let all: Vec<Call> = one.calls().into_iter().chain(two.calls()).collect();
    assert_eq!(all.iter().filter(|c| c.id == "hot").count(), 24);
    assert_one_at_a_time(&all);

    // Different ids run side by side.
    let before =
        one.max_in_flight.load(Ordering::SeqCst) + two.max_in_flight.load(Ordering::SeqCst);
    let ids: Vec<String> = (0..16).map(|i| format!("wide-{i}")).collect();
    let calls = ids.iter().map(|id| call(&first, id, "hit"));
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    let peak = one
        .max_in_flight
        .load(Ordering::SeqCst)
        .max(two.max_in_flight.load(Ordering::SeqCst));
    assert!(peak > 1 || before > 2, "different actors never ran at once");

    // The metadata API reports the actor runtime as daprd does.
    let meta: Value = reqwest::get(first.http("/v1.0/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actors = &meta["actorRuntime"];
    assert_eq!(actors["runtimeStatus"], "RUNNING", "{meta}");
    assert_eq!(actors["hostReady"], true, "{meta}");
    assert_eq!(actors["placement"], "placement: connected", "{meta}");
    let counter = actors["activeActors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "Counter")
        .cloned()
        .unwrap_or_default();
    assert!(counter["count"].as_u64().unwrap_or(0) >= 1, "{meta}");
    assert_eq!(meta["actors"], actors["activeActors"]);

    // The app is called with the caller's identity.
    let headers = one.headers.lock().unwrap().last().cloned().unwrap();
    assert_eq!(headers["dapr-caller-app-id"], "counter");

    // State, written inside the actor's calls, through either runtime.
    for round in 1..=4 {
        let sidecar = if round % 2 == 0 { &first } else { &second };
        let (status, body) = call(sidecar, "tally", "count").await;
        assert_eq!((status, body["n"].as_i64()), (200, Some(round)), "{body}");
    }
    let owner = if one.calls().iter().any(|c| c.id == "tally") {
        &first
    } else {
        &second
    };
    let read = reqwest::get(owner.http("/v1.0/actors/Counter/tally/state/n"))
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(read.json::<Value>().await.unwrap(), json!({"n": 4}));
    let absent = reqwest::get(owner.http("/v1.0/actors/Counter/tally/state/none"))
        .await
        .unwrap();
    assert_eq!(absent.status().as_u16(), 204);

    // daprd's errors.
    let client = reqwest::Client::new();
    let missing = client
        .post(first.http("/v1.0/actors/Counter/never-called/state"))
        .json(&json!([{"operation": "upsert", "request": {"key": "k", "value": 1}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["errorCode"],
        "ERR_ACTOR_INSTANCE_MISSING"
    );
    let malformed = client
        .post(first.http("/v1.0/actors/Counter/hot/state"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["errorCode"],
        "ERR_MALFORMED_REQUEST"
    );
    let reserved = reqwest::get(first.http("/v1.0/actors/dapr.internal.wf/1/state/k"))
        .await
        .unwrap();
    assert_eq!(reserved.status().as_u16(), 403);
    assert_eq!(
        reserved.json::<Value>().await.unwrap()["errorCode"],
        "ERR_ACTOR_TYPE_RESERVED"
    );
    let (status, body) = call(&first, "hot", "fail").await;
    assert_eq!(status, 500);
    assert_eq!(body["errorCode"], "ERR_ACTOR_INVOKE_METHOD");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("error from actor service: (500) custom error"),
        "{body}"
    );
    let (status, body) = call(&second, "hot", "actor-error").await;
    assert_eq!((status, body), (200, json!("the actor's own error")));
    let (status, body) = call(&first, "hot", "a%3Fb").await;
    assert_eq!(
        (status, &body["errorCode"]),
        (400, &json!("ERR_BAD_REQUEST"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_runtime_hands_its_actors_over() {
    hand_over(two_runtimes("1h").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_runtime_hands_its_actors_over_with_mecha_placement() {
    let port = crate::harness::free_port();
    let _placement = PlacementProcess::start(port);
    let address = [
        "--placement-host-address".to_owned(),
        format!("127.0.0.1:{port}"),
    ];
    hand_over(two_runtimes_with("1h", &address).await).await;
}

/// The second runtime stops while callers call actors through the first.
async fn hand_over((_host, [(one, first), (two, second)]): (Host, [(Arc<ActorApp>, Sidecar); 2])) {
    // Callers keep calling through the first runtime while the second
    // stops, some of the actors calling others: no call fails, and no
    // actor runs on both at once.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first = Arc::new(first);
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let (first, stop) = (first.clone(), stop.clone());
            tokio::spawn(async move {
                let mut made = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("moving-{}", (made * 4 + caller) % 24);
                    // Half the callers' actors call another actor in turn,
                    // through the runtime they are on, which may be the
                    // stopping one. (The other actor never moves: an actor
                    // whose drain waits for a call to an actor moving in the
                    // same round waits for the round to end, which waits
                    // for the drain; as in daprd, only the drain timeout
                    // breaks that.)
                    let method = if caller % 2 == 1 {
                        format!("relay-target-{}", made % 8)
                    } else {
                        "hit".to_owned()
                    };
                    let (status, body) = call(&first, &id, &method).await;
                    assert_eq!(status, 200, "{id} {method}: {body}");
                    made += 1;
                }
                made
            })
        })
        .collect();
    // Wait until the second app serves moving actors, then stop it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !two.calls().iter().any(|c| c.id.starts_with("moving")) {
        assert!(Instant::now() < deadline, "no moving actor on the second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_cleanly(second).await;
    let stopped_at = Instant::now();
    // Calls go on for a while with one runtime.
    let deadline = Instant::now() + Duration::from_secs(20);
    while one
        .calls()
        .iter()
        .filter(|c| c.start > stopped_at && c.id.starts_with("moving"))
        .count()
        < 100
    {
        assert!(
            Instant::now() < deadline,
            "calls stopped after the handover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for caller in callers {
        assert!(caller.await.unwrap() > 0);
    }
    let all: Vec<Call> = one.calls().into_iter().chain(two.calls()).collect();
    assert_one_at_a_time(&all);
    // Every actor the second hosted was deactivated there, after its last
    // call, before the first took it.
    assert!(
        two.calls().iter().all(|c| !c.id.starts_with("target")),
        "Target is hosted by the first app only"
    );
    for call in two.calls().iter().filter(|c| c.id.starts_with("moving")) {
        assert!(
            two.deactivated(&call.id),
            "{} was never deactivated",
            call.id
        );
        let gone = two
            .deactivated
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| *id == call.id)
            .map(|(_, at)| *at)
            .max()
            .unwrap();
        assert!(gone >= call.end);
        for later in one
            .calls()
            .iter()
            .filter(|c| c.id == call.id && c.start > call.end)
        {
            assert!(
                later.start >= gone,
                "{} ran on the first before the second let it go",
                call.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_deactivated_and_state_outlives_them_and_restarts() {
    let host = Host::new();
    let (app, port) = ActorApp::start("solo", "1s").await;
    let mut sidecar = host.runtime("solo", &app_args(port, "http"), &[]).await;
    app.sidecar.store(sidecar.http_port, Ordering::SeqCst);
    let (status, body) = call(&sidecar, "sleepy", "count").await;
    assert_eq!((status, body["n"].as_i64()), (200, Some(1)), "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !app.deactivated("sleepy") {
        assert!(
            Instant::now() < deadline,
            "the idle actor was never deactivated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = call(&sidecar, "sleepy", "count").await;
    assert_eq!((status, body["n"].as_i64()), (200, Some(2)), "{body}");

    // kill -9, and a new runtime on the same data directory.
    sidecar.signal("KILL");
    tokio::task::spawn_blocking(move || sidecar.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    let sidecar = host.runtime("solo", &app_args(port, "http"), &[]).await;
    app.sidecar.store(sidecar.http_port, Ordering::SeqCst);
    let (status, body) = call(&sidecar, "sleepy", "count").await;
    assert_eq!((status, body["n"].as_i64()), (200, Some(3)), "{body}");
}

/// Sends SIGTERM to `sidecar` and waits (up to 30 s) for a clean exit.
pub async fn stop_cleanly(mut sidecar: Sidecar) {
    sidecar.signal("TERM");
    let exited = tokio::task::spawn_blocking(move || {
        let status = sidecar.wait_exit(Duration::from_secs(30));
        (status, sidecar)
    });
    let (status, sidecar) = exited.await.unwrap();
    assert!(status.success(), "{}", sidecar.logs());
}

/// Waits up to `limit` for `done`.
pub async fn wait_for(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send(method: reqwest::Method, sidecar: &Sidecar, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, sidecar.http(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_and_reminders() {
    use reqwest::Method;
    let host = Host::new();
    let (app, port) = ActorApp::start("clock", "1h").await;
    let sidecar = host.runtime("clock", &app_args(port, "http"), &[]).await;
    app.sidecar.store(sidecar.http_port, Ordering::SeqCst);
    let (status, _) = call(&sidecar, "c1", "hit").await;
    assert_eq!(status, 200);

    // A timer fires with its data, and stops when the app says so.
    app.cancel_after
        .lock()
        .unwrap()
        .insert("timer/tick".into(), 3);
    let (status, body) = send(
        Method::POST,
        &sidecar,
        "/v1.0/actors/Counter/c1/timers/tick",
        json!({"dueTime": "0s", "period": "50ms", "callback": "onTick", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    wait_for(Duration::from_secs(10), "the timer fired 3 times", || {
        app.fires("c1", "timer/tick").len() >= 3
    })
    .await;
    let (first, _) = &app.fires("c1", "timer/tick")[0];
    assert_eq!(
        first,
        &json!({"data": {"n": 1}, "callback": "onTick", "dueTime": "0s", "period": "50ms"})
    );
    // A deleted timer fires no more (a fire in flight may still land).
    let (status, _) = send(
        Method::PUT,
        &sidecar,
        "/v1.0/actors/Counter/c1/timers/every",
        json!({"period": "40ms"}),
    )
    .await;
    assert_eq!(status, 204);
    wait_for(Duration::from_secs(10), "the second timer fired", || {
        !app.fires("c1", "timer/every").is_empty()
    })
    .await;
    let (status, _) = send(
        Method::DELETE,
        &sidecar,
        "/v1.0/actors/Counter/c1/timers/every",
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    let deleted_at = Instant::now();

    // A reminder fires with its data, reads back as registered, and ends
    // when the app cancels it.
    app.cancel_after
        .lock()
        .unwrap()
        .insert("remind/wake".into(), 2);
    let (status, body) = send(
        Method::POST,
        &sidecar,
        "/v1.0/actors/Counter/c1/reminders/wake",
        json!({"dueTime": "100ms", "period": "P1M", "data": {"r": 1}}),
    )
    .await;
    assert_eq!(
        (status, &body["errorCode"]),
        (500, &json!("ERR_ACTOR_REMINDER_CREATE")),
        "a period of calendar months, as daprd: {body}"
    );
    let (status, body) = send(
        Method::POST,
        &sidecar,
        "/v1.0/actors/Counter/c1/reminders/wake",
        json!({"dueTime": "1s", "period": "R5/PT1S", "data": {"r": 1}}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = send(
        Method::GET,
        &sidecar,
        "/v1.0/actors/Counter/c1/reminders/wake",
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"actorID": "c1", "actorType": "Counter", "data": {"r": 1},
                   "dueTime": "1s", "period": "R5/PT1S"})
        )
    );
    let (status, body) = send(
        Method::POST,
        &sidecar,
        "/v1.0/actors/Counter/c1/reminders/wake",
        json!({"dueTime": "1s", "overwrite": false}),
    )
    .await;
    assert_eq!(
        (status, &body["errorCode"]),
        (409, &json!("ERR_ACTOR_REMINDER_ALREADY_EXISTS"))
    );
    wait_for(Duration::from_secs(15), "the reminder fired twice", || {
        app.fires("c1", "remind/wake").len() >= 2
    })
    .await;
    let (first, _) = &app.fires("c1", "remind/wake")[0];
    assert_eq!(
        first,
        &json!({"data": {"r": 1}, "dueTime": "1s", "period": "R5/PT1S"})
    );
    let mut gone = false;
    for _ in 0..250 {
        let (status, body) = send(
            Method::GET,
            &sidecar,
            "/v1.0/actors/Counter/c1/reminders/wake",
            json!({}),
        )
        .await;
        if status == 404 {
            assert_eq!(body["errorCode"], "ERR_ACTOR_REMINDER_NOT_FOUND");
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the cancelled reminder was not deleted");
    // The deleted timer did not fire again after the fire in flight.
    let late = app
        .fires("c1", "timer/every")
        .iter()
        .filter(|(_, at)| *at > deleted_at + Duration::from_millis(500))
        .count();
    assert_eq!(late, 0, "a deleted timer went on firing");

    // daprd's errors.
    for (path, body, status, code) in [
        (
            "/v1.0/actors/Other/1/reminders/r",
            json!({"dueTime": "1s"}),
            403,
            "ERR_ACTOR_REMINDER_NON_HOSTED",
        ),
        (
            "/v1.0/actors/Counter/c1/reminders/r",
            json!({"period": "every day"}),
            500,
            "ERR_ACTOR_REMINDER_CREATE",
        ),
        (
            "/v1.0/actors/Counter/c1/timers/t",
            json!({"dueTime": "tomorrow"}),
            500,
            "ERR_ACTOR_TIMER_CREATE",
        ),
    ] {
        let (got, answer) = send(Method::POST, &sidecar, path, body).await;
        assert_eq!(
            (got, &answer["errorCode"]),
            (status, &json!(code)),
            "{path}"
        );
    }
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/actors/Counter/c1/timers/t"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400, "an empty body");

    // The same over gRPC, with ListActorReminders and
    // UnregisterActorRemindersByType, which only gRPC has.
    use mecha_proto::runtime as pb;
    let mut grpc = sidecar.grpc().await;
    for id in ["g1", "g2"] {
        grpc.register_actor_reminder(pb::RegisterActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: id.into(),
            name: "later".into(),
            due_time: "1h".into(),
            data: br#"{"from":"grpc"}"#.to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let listed = |id: Option<&str>| pb::ListActorRemindersRequest {
        actor_type: "Counter".into(),
        actor_id: id.map(str::to_owned),
    };
    let all = grpc.list_actor_reminders(listed(None)).await.unwrap();
    let mut ids: Vec<String> = all
        .into_inner()
        .reminders
        .into_iter()
        .filter(|r| r.name == "later")
        .map(|r| r.reminder.unwrap().actor_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["g1", "g2"]);
    let got = grpc
        .get_actor_reminder(pb::GetActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            name: "later".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.due_time.as_deref(), Some("1h"));
    assert_eq!(got.data.unwrap().value, br#"{"from":"grpc"}"#);
    grpc.unregister_actor_reminders_by_type(pb::UnregisterActorRemindersByTypeRequest {
        actor_type: "Counter".into(),
        actor_id: Some("g1".into()),
    })
    .await
    .unwrap();
    let one = grpc.list_actor_reminders(listed(Some("g2"))).await.unwrap();
    assert_eq!(one.into_inner().reminders.len(), 1);
    let none = grpc.list_actor_reminders(listed(Some("g1"))).await.unwrap();
    assert!(none.into_inner().reminders.is_empty());
    let err = grpc
        .register_actor_reminder(pb::RegisterActorReminderRequest {
            actor_type: "Other".into(),
            actor_id: "1".into(),
            name: "r".into(),
            due_time: "1s".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let answer = grpc
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            actor_id: "c1".into(),
            method: "hit".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let answer: Value = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!(answer["app"], "clock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_outlives_kill_9_and_a_timer_its_actor_does_not() {
    use reqwest::Method;
    let host = Host::new();
    let (app, port) = ActorApp::start("durable", "1s").await;
    let mut sidecar = host.runtime("durable", &app_args(port, "http"), &[]).await;
    app.sidecar.store(sidecar.http_port, Ordering::SeqCst);
    let (status, _) = call(&sidecar, "d1", "hit").await;
    assert_eq!(status, 200);
    let (status, body) = send(
        Method::POST,
        &sidecar,
        "/v1.0/actors/Counter/d1/reminders/later",
        json!({"dueTime": "6s", "data": "after the crash"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // A timer whose actor goes idle (1 s) stops with it.
    let (status, _) = send(
        Method::POST,
        &sidecar,
        "/v1.0/actors/Counter/d1/timers/slow",
        json!({"dueTime": "2s", "period": "500ms"}),
    )
    .await;
    assert_eq!(status, 204);
    let registered = Instant::now();
    wait_for(
        Duration::from_secs(15),
        "the idle actor was deactivated",
        || app.deactivated("d1"),
    )
    .await;
    assert!(
        registered.elapsed() < Duration::from_secs(2),
        "deactivated only after the timer's due time"
    );
    // Past the timer's due time and two of its periods: it never fired.
    tokio::time::sleep_until((registered + Duration::from_secs(3)).into()).await;
    assert!(
        app.fires("d1", "timer/slow").is_empty(),
        "the timer of a deactivated actor fired"
    );
    sidecar.signal("KILL");
    tokio::task::spawn_blocking(move || sidecar.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    let sidecar = host.runtime("durable", &app_args(port, "http"), &[]).await;
    app.sidecar.store(sidecar.http_port, Ordering::SeqCst);
    wait_for(
        Duration::from_secs(20),
        "the reminder fired after the restart",
        || !app.fires("d1", "remind/later").is_empty(),
    )
    .await;
    let fires = app.fires("d1", "remind/later");
    assert_eq!(fires.len(), 1, "a one-shot reminder fires once");
    assert_eq!(fires[0].0["data"], "after the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_chain_reenters_its_actor_within_its_depth() {
    let host = Host::new();
    // "2h": the app's configuration turns reentrancy on, maxStackDepth 3.
    let (app, port) = ActorApp::start("reentrant", "2h").await;
    let sidecar = host
        .runtime("reentrant", &app_args(port, "http"), &[])
        .await;
    app.sidecar.store(sidecar.http_port, Ordering::SeqCst);
    // Two calls back into the actor while it holds its turn: the chain
    // enters again instead of waiting for itself.
    let (status, body) = call(&sidecar, "r1", "nest2").await;
    assert_eq!((status, &body["depth"]), (200, &json!(0)), "{body}");
    let headers = app.headers.lock().unwrap().clone();
    let chains: std::collections::BTreeSet<_> = headers
        .iter()
        .filter_map(|h| h.get("dapr-reentrancy-id").cloned())
        .collect();
    assert_eq!(
        chains.len(),
        1,
        "one chain id, made by the runtime: {chains:?}"
    );
    // Deeper than maxStackDepth: daprd's error for the call too deep,
    // which each app up the chain passes back as its own failure.
    let (status, body) = call(&sidecar, "r2", "nest5").await;
    assert_eq!(status, 500, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("ERR_ACTOR_STACK_DEPTH") && text.contains("maximum stack depth exceeded"),
        "{body}"
    );
    // Another call to the actor is not part of the chain: it takes its turn.
    let (status, _) = call(&sidecar, "r1", "hit").await;
    assert_eq!(status, 200);
}

/// `mecha placement` on `port`, until dropped.
struct PlacementProcess(std::process::Child);

impl PlacementProcess {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new(crate::harness::MECHA)
            .args(["placement", "--port", &port.to_string()])
            .args(["--healthz-port", &crate::harness::free_port().to_string()])
            // Its metrics port would be 9090 for every test at once.
            .arg("--enable-metrics=false")
            .args(["--listen-address", "127.0.0.1", "--log-level", "warn"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for PlacementProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn placement_of(sidecar: &Sidecar) -> String {
    let meta: Value = reqwest::get(sidecar.http("/v1.0/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    meta["actorRuntime"]["placement"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits up to 30 s for the runtime's metadata to say `expected`.
async fn placement_becomes(sidecar: &Sidecar, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = placement_of(sidecar).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "placement is still {now:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtimes_outlive_placement_and_rejoin_it() {
    let port = crate::harness::free_port();
    let placement = PlacementProcess::start(port);
    let address = [
        "--placement-host-address".to_owned(),
        format!("127.0.0.1:{port}"),
    ];
    let host = Host::new();
    let (one, one_port) = ActorApp::start("p-one", "1h").await;
    let (two, two_port) = ActorApp::start("p-two", "1h").await;
    let mut args = app_args(one_port, "http");
    args.extend(address.clone());
    let first = host.runtime("placed", &args, &[]).await;
    let mut args = app_args(two_port, "http");
    args.extend(address.clone());
    let second = host.runtime("placed", &args, &[]).await;
    // Calls spread over both once both joined.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while one.calls().is_empty() || two.calls().is_empty() {
        assert!(Instant::now() < deadline, "the actors never spread");
        let (status, body) = call(&first, &format!("p-{}", i % 64), "hit").await;
        assert_eq!(status, 200, "{body}");
        i += 1;
    }
    assert_eq!(placement_of(&first).await, "placement: connected");

    // kill -9 of placement: both keep serving with the tables they have,
    // say so, and every id stays where it was.
    // Where each id lives now, by one call each.
    let mut owners = BTreeMap::new();
    for n in 0..32 {
        let id = format!("p-{n}");
        let (status, body) = call(&first, &id, "hit").await;
        assert_eq!(status, 200, "{body}");
        owners.insert(id, body["app"].as_str().unwrap().to_owned());
    }
    drop(placement);
    placement_becomes(&first, "placement: disconnected").await;
    for n in 0..32 {
        let id = format!("p-{n}");
        let (status, body) = call(&second, &id, "hit").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["app"].as_str(),
            owners.get(&id).map(String::as_str),
            "{id} moved while placement was away"
        );
    }

    // Placement returns (empty): the runtimes rejoin by themselves.
    let _placement = PlacementProcess::start(port);
    placement_becomes(&first, "placement: connected").await;
    placement_becomes(&second, "placement: connected").await;
    let (status, body) = call(&first, "after", "hit").await;
    assert_eq!(status, 200, "{body}");
    assert_one_at_a_time(
        &one.calls()
            .into_iter()
            .chain(two.calls())
            .collect::<Vec<_>>(),
    );
}

/// Writes a Configuration with `ActorStateTTL` into `dir`; its path.
fn ttl_configuration(dir: &std::path::Path) -> String {
    let path = dir.join("actor-ttl.yaml");
    std::fs::write(
        &path,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: actorttl\n\
         spec:\n  features:\n  - name: ActorStateTTL\n    enabled: true\n",
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_state_expires_with_ttl_only_when_the_feature_is_on() {
    use reqwest::Method;
    // Each on a host of its own: both host the type `Counter`.
    let (host, other_host) = (Host::new(), Host::new());
    let dir = tempfile::tempdir().unwrap();
    let (on_app, on_port) = ActorApp::start("ttl-on", "1h").await;
    let mut args = app_args(on_port, "http");
    args.extend(["--config".to_owned(), ttl_configuration(dir.path())]);
    let on = host.runtime("ttl-on", &args, &[]).await;
    on_app.sidecar.store(on.http_port, Ordering::SeqCst);
    let (off_app, off_port) = ActorApp::start("ttl-off", "1h").await;
    let off = other_host
        .runtime("ttl-off", &app_args(off_port, "http"), &[])
        .await;
    off_app.sidecar.store(off.http_port, Ordering::SeqCst);

    let state = "/v1.0/actors/Counter/short/state";
    let write = json!([
        {"operation": "upsert", "request": {"key": "brief", "value": {"v": 1}, "metadata": {"ttlInSeconds": "2"}}},
        {"operation": "upsert", "request": {"key": "kept", "value": {"v": 2}}},
    ]);

    // Without the feature, daprd's error, and nothing is written.
    let (status, _) = call(&off, "short", "hit").await;
    assert_eq!(status, 200);
    let (status, body) = send(Method::POST, &off, state, write.clone()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["errorCode"], "ERR_ACTOR_STATE_TRANSACTION_SAVE",
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("ActorStateTTL"),
        "{body}"
    );
    let (status, _) = send(Method::GET, &off, &format!("{state}/kept"), json!({})).await;
    assert_eq!(status, 204, "a refused transaction wrote nothing");

    // With it, the key expires and the other stays.
    let (status, _) = call(&on, "short", "hit").await;
    assert_eq!(status, 200);
    let writing = Instant::now();
    let (status, body) = send(Method::POST, &on, state, write).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = send(Method::GET, &on, &format!("{state}/brief"), json!({})).await;
    if status == 204 {
        // Gone already: only on a machine slow enough for its time to
        // have passed.
        assert!(writing.elapsed() >= Duration::from_secs(1), "expired early");
    } else {
        assert_eq!((status, &body), (200, &json!({"v": 1})));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = send(Method::GET, &on, &format!("{state}/brief"), json!({})).await;
        if status == 204 {
            break;
        }
        assert_eq!(status, 200);
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = send(Method::GET, &on, &format!("{state}/kept"), json!({})).await;
    assert_eq!((status, &body), (200, &json!({"v": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_fire_once_per_period_through_a_hand_over() {
    use reqwest::Method;
    const PERIOD: Duration = Duration::from_millis(500);
    let (_host, [(one, first), (two, second)]) = two_runtimes("1h").await;
    let ids: Vec<String> = (0..12).map(|i| format!("beat-{i}")).collect();
    let mut registered = BTreeMap::new();
    for id in &ids {
        registered.insert(id.clone(), Instant::now());
        let (status, body) = send(
            Method::POST,
            &first,
            &format!("/v1.0/actors/Counter/{id}/reminders/beat"),
            json!({"dueTime": "0s", "period": "500ms", "data": {"id": id}}),
        )
        .await;
        assert_eq!(status, 204, "{body}");
    }
    let fired = |id: &str| one.fires(id, "remind/beat").len() + two.fires(id, "remind/beat").len();
    wait_for(
        Duration::from_secs(15),
        "every reminder fired, some on the second",
        || {
            ids.iter().all(|id| fired(id) > 0)
                && ids
                    .iter()
                    .any(|id| !two.fires(id, "remind/beat").is_empty())
        },
    )
    .await;

    // The second runtime stops; its actors' reminders go on at the first.
    stop_cleanly(second).await;
    let stopped = Instant::now();
    let after = |id: &str| {
        one.fires(id, "remind/beat")
            .iter()
            .filter(|(_, at)| *at > stopped)
            .count()
    };
    wait_for(
        Duration::from_secs(20),
        "every reminder fires on after the hand-over",
        || ids.iter().all(|id| after(id) >= 3),
    )
    .await;
    let observed = Instant::now();

    // Never more fires than periods begun since each was registered (its
    // first fire is due at once): none fired twice in a period.
    for id in &ids {
        let fires: Vec<(Value, Instant)> = one
            .fires(id, "remind/beat")
            .into_iter()
            .chain(two.fires(id, "remind/beat"))
            .collect();
        let elapsed = observed.duration_since(registered[id]);
        let periods = elapsed.as_millis() / PERIOD.as_millis() + 1;
        assert!(
            fires.len() as u128 <= periods,
            "{id} fired {} times in {periods} periods",
            fires.len()
        );
        for (body, _) in &fires {
            assert_eq!(body["data"], json!({"id": id}), "{body}");
        }
        assert!(
            two.fires(id, "remind/beat")
                .iter()
                .all(|(_, at)| *at <= stopped),
            "{id} fired on the stopped runtime"
        );
    }
}
