//! Pub/sub end to end: publishing over HTTP and gRPC, programmatic,
//! declarative and streaming subscriptions, routing rules, dead letters,
//! bulk, the errors of bad requests, and the embedded broker shared by the
//! runtimes of one host.

use std::time::{Duration, Instant};

use mecha_proto::runtime as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::apps::App;
use crate::harness::{Options, Resources, Sidecar};
use crate::invoke::{Host, app_args};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Waits until `done` holds (up to 20 s).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a sidecar on `resources` for an app, in an async test.
async fn sidecar(resources: Resources, app_id: &str, args: Vec<String>) -> Sidecar {
    let options = Options {
        app_id: app_id.into(),
        args,
        ..Options::default()
    };
    tokio::task::spawn_blocking(move || Sidecar::start_with(resources, options))
        .await
        .unwrap()
}

fn in_memory() -> Resources {
    Resources::new().component("pubsub", "pubsub.in-memory", &[])
}

/// The runtime's running subscriptions, from the metadata API.
async fn subscriptions(sidecar: &Sidecar) -> Vec<Value> {
    let meta: Value = client()
        .get(sidecar.http("/v1.0/metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    meta["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the runtime runs `count` subscriptions.
async fn subscribed(sidecar: &Sidecar, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while subscriptions(sidecar).await.len() < count {
        assert!(
            Instant::now() < deadline,
            "the subscriptions never started:\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish(
    sidecar: &Sidecar,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    client()
        .post(sidecar.http(&format!("/v1.0/publish/{path}")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn publish_json(sidecar: &Sidecar, path: &str, data: Value) {
    let response = publish(sidecar, path, "application/json", data.to_string()).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

/// An app that answers 503 to `GET /dapr/subscribe` while it warms up is
/// asked again until it answers, and gets its events within a second of
/// being ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_warming_up_gets_its_subscriptions_once_ready() {
    let app = App::http(0).await;
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "late", "route": "/events/late"},
    ]));
    let ready_at = Instant::now() + Duration::from_secs(3);
    *app.state.warming_until.lock().unwrap() = Some(ready_at);
    let runtime = sidecar(in_memory(), "warming", app_args(app.port, "http")).await;
    subscribed(&runtime, 1).await;
    let late = Instant::now().saturating_duration_since(ready_at);
    assert!(
        late < Duration::from_millis(1500),
        "subscribed {late:?} after the app was ready"
    );
    assert!(
        app.state
            .subscribe_asked
            .load(std::sync::atomic::Ordering::SeqCst)
            > 2,
        "asked again while the app answered 503"
    );
    assert!(
        runtime
            .logs()
            .contains("waiting for the app to answer with its subscriptions"),
        "{}",
        runtime.logs()
    );
    publish_json(&runtime, "pubsub/late", json!({"n": 1})).await;
    eventually("the event", || app.state.events().len() == 1).await;
    assert_eq!(app.state.events()[0].path, "/events/late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_app_gets_cloudevents_by_its_routes() {
    let app = App::http(0).await;
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "orders", "route": "/events/orders"},
        {"pubsubname": "pubsub", "topic": "routed",
         "routes": {"rules": [{"match": "event.type == \"widget\"", "path": "/events/widgets"},
                              {"match": "event.data.price > 100", "path": "/events/expensive"}],
                    "default": "/events/other"}},
        {"pubsubname": "pubsub", "topic": "raw", "route": "/events/raw",
         "metadata": {"rawPayload": "true"}},
    ]));
    let runtime = sidecar(in_memory(), "shop", app_args(app.port, "http")).await;
    subscribed(&runtime, 3).await;

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let response = client()
        .post(runtime.http("/v1.0/publish/pubsub/orders"))
        .header("content-type", "application/json")
        .header("traceparent", traceparent)
        .body(r#"{"order":1,"items":["a"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    eventually("the order", || app.state.events().len() == 1).await;
    let received = &app.state.events()[0];
    assert_eq!(received.path, "/events/orders");
    assert_eq!(
        received.headers["content-type"],
        "application/cloudevents+json"
    );
    assert_eq!(received.headers["pubsubname"], "pubsub");
    let event = &received.event;
    assert_eq!(event["data"], json!({"order": 1, "items": ["a"]}));
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["source"], "shop");
    assert_eq!(event["type"], "com.dapr.event.sent");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], "pubsub");
    assert_eq!(event["traceid"], event["traceparent"]);
    let trace = event["traceparent"].as_str().unwrap();
    assert!(
        trace.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "the caller's trace continues: {trace}"
    );
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(event["id"].as_str().unwrap().len(), 36);

    // Text stays text.
    let response = publish(&runtime, "pubsub/orders", "text/plain", "hello").await;
    assert_eq!(response.status(), 204);
    eventually("the text", || app.state.events().len() == 2).await;
    assert_eq!(app.state.data()[1], "hello");

    // Routing rules, by the type of an app's own CloudEvent, by the
    // `cloudevent.type` override, by data, and the default route.
    let own = json!({"id": "my-id", "source": "me", "specversion": "1.0", "type": "widget", "data": {"x": 1}});
    let response = publish(
        &runtime,
        "pubsub/routed",
        "application/cloudevents+json",
        own.to_string(),
    )
    .await;
    assert_eq!(response.status(), 204);
    let response = client()
        .post(runtime.http(
            "/v1.0/publish/pubsub/routed?metadata.cloudevent.type=widget&metadata.cloudevent.id=overridden",
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    publish_json(&runtime, "pubsub/routed", json!({"price": 150})).await;
    publish_json(&runtime, "pubsub/routed", json!({"price": 5})).await;
    eventually("four routed events", || app.state.events().len() == 6).await;
    let routed: Vec<(String, Value)> = app.state.events()[2..]
        .iter()
        .map(|e| (e.path.clone(), e.event["id"].clone()))
        .collect();
    assert_eq!(routed[0], ("/events/widgets".to_owned(), json!("my-id")));
    assert_eq!(
        routed[1],
        ("/events/widgets".to_owned(), json!("overridden"))
    );
    assert_eq!(routed[2].0, "/events/expensive");
    assert_eq!(routed[3].0, "/events/other");
    assert_eq!(
        app.state.events()[2].event["source"],
        "me",
        "an app's event keeps its fields"
    );

    // A raw payload: published as it is, wrapped for the raw subscriber.
    let response = client()
        .post(runtime.http("/v1.0/publish/pubsub/raw?metadata.rawPayload=true"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    eventually("the raw payload", || app.state.events().len() == 7).await;
    let raw = &app.state.events()[6];
    assert_eq!(raw.path, "/events/raw");
    assert_eq!(raw.event["data_base64"], "AAEC");
    assert_eq!(raw.event["datacontenttype"], "application/octet-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_answers_decide_redelivery_and_dead_letters() {
    let app = App::http(0).await;
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "work", "route": "/events/work", "deadLetterTopic": "work-dead"},
        {"pubsubname": "pubsub", "topic": "work-dead", "route": "/events/dead"},
        {"pubsubname": "pubsub", "topic": "plain", "route": "/events/plain"},
    ]));
    let runtime = sidecar(in_memory(), "worker", app_args(app.port, "http")).await;
    subscribed(&runtime, 3).await;
    for answer in ["DROP", "404", "RETRY", "SUCCESS"] {
        publish_json(&runtime, "pubsub/work", json!({"answer": answer})).await;
    }
    let dead = |app: &App| {
        app.state
            .events()
            .iter()
            .filter(|e| e.path == "/events/dead")
            .map(|e| e.event["data"]["answer"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    eventually("three dead letters", || dead(&app).len() == 3).await;
    let mut letters = dead(&app);
    letters.sort();
    assert_eq!(letters, ["404", "DROP", "RETRY"]);
    for event in app
        .state
        .events()
        .iter()
        .filter(|e| e.path == "/events/dead")
    {
        assert_eq!(
            event.event["topic"], "work",
            "the event as it was published"
        );
    }

    // Without a dead-letter topic: RETRY comes again, DROP and 404 do not.
    publish_json(&runtime, "pubsub/plain", json!({"answer": "retry-once"})).await;
    publish_json(&runtime, "pubsub/plain", json!({"answer": "DROP"})).await;
    publish_json(&runtime, "pubsub/plain", json!({"answer": "404"})).await;
    let plain = |app: &App| {
        app.state
            .events()
            .iter()
            .filter(|e| e.path == "/events/plain")
            .map(|e| e.event["data"]["answer"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    eventually("the retried event twice", || {
        plain(&app).iter().filter(|a| *a == "retry-once").count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen = plain(&app);
    seen.sort();
    assert_eq!(seen, ["404", "DROP", "retry-once", "retry-once"]);
    assert_eq!(dead(&app).len(), 3, "nothing else was dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarative_subscriptions_with_scopes_and_app_overrides() {
    let app = App::http(0).await;
    // The app declares one topic itself, which wins over the file.
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "both", "route": "/events/from-app"},
    ]));
    let resources = in_memory().file(
        "subscriptions.yaml",
        r#"apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders-sub
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: 'event.data.kind == "special"'
      path: /events/special
    default: /events/orders
  deadLetterTopic: orders-dead
scopes: [subscriber]
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: both-sub
spec:
  pubsubname: pubsub
  topic: both
  route: /events/from-file
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: not-mine
spec:
  pubsubname: pubsub
  topic: elsewhere
  routes:
    default: /events/elsewhere
scopes: [another-app]
"#,
    );
    let runtime = sidecar(resources, "subscriber", app_args(app.port, "http")).await;
    subscribed(&runtime, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut listed = subscriptions(&runtime).await;
    listed.sort_by_key(|s| s["topic"].as_str().unwrap().to_owned());
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["topic"], "both");
    assert_eq!(listed[0]["type"], "PROGRAMMATIC");
    assert_eq!(listed[1]["topic"], "orders");
    assert_eq!(listed[1]["type"], "DECLARATIVE");
    assert_eq!(listed[1]["deadLetterTopic"], "orders-dead");
    assert_eq!(
        listed[1]["rules"],
        json!([{"match": "event.data.kind == \"special\"", "path": "/events/special"},
               {"path": "/events/orders"}]),
        "rules are flattened on HTTP"
    );
    publish_json(&runtime, "pubsub/orders", json!({"kind": "special"})).await;
    publish_json(&runtime, "pubsub/orders", json!({"kind": "usual"})).await;
    publish_json(&runtime, "pubsub/both", json!({})).await;
    publish_json(&runtime, "pubsub/elsewhere", json!({})).await;
    eventually("three events", || app.state.events().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut paths: Vec<String> = app.state.events().iter().map(|e| e.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/events/from-app", "/events/orders", "/events/special"]
    );

    // gRPC's metadata keeps the rules nested.
    let mut grpc = runtime.grpc().await;
    let meta = grpc
        .get_metadata(pb::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    let orders = meta
        .subscriptions
        .iter()
        .find(|s| s.topic == "orders")
        .unwrap();
    assert_eq!(orders.r#type, 1, "DECLARATIVE");
    assert_eq!(orders.rules.as_ref().unwrap().rules.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_app_gets_events_and_its_answers_count() {
    let app = App::grpc(0).await;
    *app.state.grpc_subscriptions.lock().unwrap() = vec![
        pb::TopicSubscription {
            pubsub_name: "pubsub".into(),
            topic: "grpc-orders".into(),
            ..Default::default()
        },
        pb::TopicSubscription {
            pubsub_name: "pubsub".into(),
            topic: "grpc-routed".into(),
            routes: Some(pb::TopicRoutes {
                rules: vec![pb::TopicRule {
                    r#match: "event.type == \"special\"".into(),
                    path: "special_handler".into(),
                }],
                default: String::new(),
            }),
            ..Default::default()
        },
    ];
    let runtime = sidecar(in_memory(), "grpc-shop", app_args(app.port, "grpc")).await;
    subscribed(&runtime, 2).await;
    let mut dapr = runtime.grpc().await;
    let publish = |topic: &str, data: Value, metadata: &[(&str, &str)]| pb::PublishEventRequest {
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        data: data.to_string().into(),
        data_content_type: "application/json".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    dapr.publish_event(publish("grpc-orders", json!({"n": 1}), &[]))
        .await
        .unwrap();
    eventually("the event", || app.state.events().len() == 1).await;
    let received = &app.state.events()[0];
    assert_eq!(received.path, "", "a plain subscription's path is empty");
    assert_eq!(received.event["data"], json!({"n": 1}));
    assert_eq!(received.event["datacontenttype"], "application/json");
    assert_eq!(received.event["source"], "grpc-shop");
    assert_eq!(
        received.event["topic"], "grpc-orders",
        "from the extensions"
    );
    assert!(received.event["traceparent"].as_str().is_some());

    // RETRY comes again; Unimplemented is not retried.
    dapr.publish_event(publish("grpc-orders", json!({"answer": "retry-once"}), &[]))
        .await
        .unwrap();
    dapr.publish_event(publish(
        "grpc-orders",
        json!({"answer": "unimplemented"}),
        &[],
    ))
    .await
    .unwrap();
    dapr.publish_event(publish(
        "grpc-routed",
        json!({}),
        &[("cloudevent.type", "special")],
    ))
    .await
    .unwrap();
    dapr.publish_event(publish("grpc-routed", json!({"unrouted": true}), &[]))
        .await
        .unwrap();
    eventually("the retried event again", || {
        app.state
            .data()
            .iter()
            .filter(|d| d["answer"] == "retry-once")
            .count()
            == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let data = app.state.data();
    assert_eq!(
        data.iter()
            .filter(|d| d["answer"] == "unimplemented")
            .count(),
        1
    );
    let special: Vec<_> = app
        .state
        .events()
        .into_iter()
        .filter(|e| e.event["type"] == "special")
        .collect();
    assert_eq!(special.len(), 1);
    assert_eq!(special[0].path, "special_handler");
    assert!(
        !data.iter().any(|d| d["unrouted"] == true),
        "no rule matches it, and there is no default route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_publish_and_bulk_subscribe() {
    let app = App::http(0).await;
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "batch", "route": "/bulk/batch",
         "bulkSubscribe": {"enabled": true, "maxMessagesCount": 5, "maxAwaitDurationMs": 200}},
    ]));
    let resources = Resources::new().component(
        "pubsub",
        "pubsub.in-memory",
        &[("concurrencyMode", "parallel")],
    );
    let runtime = sidecar(resources, "bulk-app", app_args(app.port, "http")).await;
    subscribed(&runtime, 1).await;
    let mut entries: Vec<Value> = (0..8)
        .map(|n| json!({"entryId": format!("e{n}"), "event": {"n": n}, "contentType": "application/json"}))
        .collect();
    // The JS SDK's spelling, and a text entry.
    entries.push(
        json!({"entryID": "e8", "event": "text", "contentType": "text/plain", "metadata": {}}),
    );
    let response = client()
        .post(runtime.http("/v1.0-alpha1/publish/bulk/pubsub/batch"))
        .json(&entries)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    eventually("nine entries", || app.state.events().len() == 9).await;
    let batches: Vec<usize> = app.state.events().iter().map(|e| e.batch).collect();
    assert!(batches.iter().all(|b| *b <= 5), "{batches:?}");
    assert!(batches.iter().any(|b| *b > 1), "{batches:?}");
    assert!(app.state.data().contains(&json!("text")));
    let received = &app.state.events()[0];
    assert_eq!(received.headers["content-type"], "application/json");
    assert_eq!(
        received.event["source"], "bulk-app",
        "each entry is a CloudEvent"
    );

    // The stable route and gRPC.
    let response = client()
        .put(runtime.http("/v1.0/publish/bulk/pubsub/batch"))
        .json(&json!([{"entryId": "s1", "event": {"stable": true}, "contentType": "application/json"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut dapr = runtime.grpc().await;
    let answer = dapr
        .bulk_publish_event(pb::BulkPublishRequest {
            pubsub_name: "pubsub".into(),
            topic: "batch".into(),
            entries: vec![pb::BulkPublishRequestEntry {
                entry_id: "g1".into(),
                event: br#"{"grpc":true}"#.to_vec().into(),
                content_type: "application/json".into(),
                metadata: Default::default(),
            }],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.failed_entries.is_empty());
    eventually("the stable and gRPC entries", || {
        app.state.events().len() == 11
    })
    .await;

    // Entry ids must be present and unique.
    let response = client()
        .post(runtime.http("/v1.0/publish/bulk/pubsub/batch"))
        .json(
            &json!([{"entryId": "x", "event": 1, "contentType": "application/json"},
                      {"entryId": "x", "event": 2, "contentType": "application/json"}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_PUBSUB_EVENTS_SER");
    let response = client()
        .post(runtime.http("/v1.0/publish/bulk/pubsub/batch"))
        .json(&json!([{"entryId": "y", "event": {"not": "text"}, "contentType": "text/plain"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = client()
        .post(runtime.http("/v1.0/publish/bulk/pubsub/batch"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_subscription_over_grpc() {
    use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Req;
    use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Resp;
    let runtime = sidecar(in_memory(), "streamer", vec![]).await;
    let mut dapr = runtime.grpc().await;
    let (requests, rx) = tokio::sync::mpsc::channel(16);
    requests
        .send(pb::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Req::InitialRequest(
                pb::SubscribeTopicEventsRequestInitialAlpha1 {
                    pubsub_name: "pubsub".into(),
                    topic: "live".into(),
                    metadata: Default::default(),
                    dead_letter_topic: Some(String::new()),
                },
            )),
        })
        .await
        .unwrap();
    let mut stream = dapr
        .subscribe_topic_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        first.subscribe_topic_events_response_type,
        Some(Resp::InitialResponse(_))
    ));
    subscribed(&runtime, 1).await;
    assert_eq!(subscriptions(&runtime).await[0]["type"], "STREAMING");
    publish_json(&runtime, "pubsub/live", json!({"n": 1})).await;
    let next = |message: Option<pb::SubscribeTopicEventsResponseAlpha1>| match message
        .and_then(|m| m.subscribe_topic_events_response_type)
    {
        Some(Resp::EventMessage(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    };
    let event = next(stream.message().await.unwrap());
    assert_eq!(event.topic, "live");
    assert_eq!(event.path, "/");
    assert_eq!(
        serde_json::from_slice::<Value>(&event.data).unwrap(),
        json!({"n": 1})
    );
    // RETRY: the same event comes again; then SUCCESS settles it.
    let answer = |id: &str, status: i32| pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Req::EventProcessed(
            pb::SubscribeTopicEventsRequestProcessedAlpha1 {
                id: id.to_owned(),
                status: Some(pb::TopicEventResponse { status }),
            },
        )),
    };
    requests.send(answer(&event.id, 1)).await.unwrap();
    let again = next(stream.message().await.unwrap());
    assert_eq!(again.id, event.id);
    requests.send(answer(&again.id, 0)).await.unwrap();
    publish_json(&runtime, "pubsub/live", json!({"n": 2})).await;
    let second = next(stream.message().await.unwrap());
    assert_eq!(
        serde_json::from_slice::<Value>(&second.data).unwrap(),
        json!({"n": 2})
    );
    requests.send(answer(&second.id, 0)).await.unwrap();
    // Closing our side ends the subscription.
    drop(requests);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !subscriptions(&runtime).await.is_empty() {
        assert!(Instant::now() < deadline, "the subscription did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An unknown pubsub is refused before the stream starts.
    let (requests, rx) = tokio::sync::mpsc::channel(1);
    requests
        .send(pb::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Req::InitialRequest(
                pb::SubscribeTopicEventsRequestInitialAlpha1 {
                    pubsub_name: "nope".into(),
                    topic: "live".into(),
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap();
    let err = dapr
        .subscribe_topic_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "pubsub nope is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_get_dapr_errors() {
    let resources = Resources::new().component(
        "pubsub",
        "pubsub.in-memory",
        &[
            ("publishingScopes", "scoped-app=allowed"),
            ("protectedTopics", "secret"),
        ],
    );
    let runtime = sidecar(resources, "scoped-app", vec![]).await;
    let cases: [(&str, &str, &str, u16, &str); 5] = [
        (
            "pubsub/forbidden",
            "application/json",
            "{}",
            403,
            "ERR_PUBSUB_FORBIDDEN",
        ),
        (
            "nope/allowed",
            "application/json",
            "{}",
            404,
            "ERR_PUBSUB_NOT_FOUND",
        ),
        (
            "pubsub/allowed?metadata.rawPayload=maybe",
            "application/json",
            "{}",
            400,
            "ERR_PUBSUB_REQUEST_METADATA",
        ),
        (
            "pubsub/allowed",
            "application/cloudevents+json",
            "{not json",
            500,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
        ),
        (
            "pubsub/",
            "application/json",
            "{}",
            404,
            "ERR_TOPIC_NAME_EMPTY",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let response = publish(&runtime, path, content_type, body).await;
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], code, "{path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let response = publish(&runtime, "pubsub/allowed", "application/json", "{}").await;
    assert_eq!(response.status(), 204);
    // As daprd, a ttlInSeconds it cannot read means no expiry, not an error.
    let response = publish(
        &runtime,
        "pubsub/allowed?metadata.ttlInSeconds=soon",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(response.status(), 204);
    let forbidden: Value = publish(&runtime, "pubsub/forbidden", "text/plain", "x")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        forbidden["message"],
        "topic forbidden is not allowed for app id scoped-app"
    );
    assert_eq!(forbidden["details"][0]["reason"], "DAPR_PUBSUB_FORBIDDEN");

    let mut dapr = runtime.grpc().await;
    let grpc_publish = |pubsub: &str, topic: &str| pb::PublishEventRequest {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        data: b"x".to_vec().into(),
        ..Default::default()
    };
    let err = dapr
        .publish_event(grpc_publish("pubsub", "secret"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = dapr
        .publish_event(grpc_publish("nope", "t"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "pubsub nope is not found");
    let err = dapr
        .publish_event(grpc_publish("pubsub", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = dapr.publish_event(grpc_publish("", "t")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    dapr.publish_event(grpc_publish("pubsub", "allowed"))
        .await
        .unwrap();

    // No pub/sub component at all.
    let bare = sidecar(
        Resources::new().component("statestore", "state.in-memory", &[]),
        "bare",
        vec![],
    )
    .await;
    // daprd always has its pub/sub registry: an unknown name is 404.
    let response = publish(&bare, "pubsub/t", "application/json", "{}").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_PUBSUB_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_is_shared_on_the_host_and_survives_restarts() {
    let host = Host::new();
    let app = App::http(0).await;
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "shared", "route": "/events/shared"},
    ]));
    let subscriber = host
        .runtime("subscriber", &app_args(app.port, "http"), &[])
        .await;
    subscribed(&subscriber, 1).await;
    let publisher = host.runtime("publisher", &[], &[]).await;
    for n in 0..3 {
        publish_json(&publisher, "pubsub/shared", json!({"n": n})).await;
    }
    eventually("three events from another runtime", || {
        app.state.events().len() == 3
    })
    .await;
    assert_eq!(app.state.events()[0].event["source"], "publisher");

    // The subscriber goes away; what is published meanwhile waits for it.
    drop(subscriber);
    for n in 3..5 {
        publish_json(&publisher, "pubsub/shared", json!({"n": n})).await;
    }
    let app = App::http(0).await;
    *app.state.subscriptions.lock().unwrap() = Some(json!([
        {"pubsubname": "pubsub", "topic": "shared", "route": "/events/shared"},
    ]));
    let _subscriber = host
        .runtime("subscriber", &app_args(app.port, "http"), &[])
        .await;
    eventually("the two events published while it was down", || {
        app.state.events().len() >= 2
    })
    .await;
    let mut got: Vec<i64> = app
        .state
        .data()
        .iter()
        .filter_map(|d| d["n"].as_i64())
        .collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, [3, 4]);
}

/// The real brokers, loaded from Dapr component files with Dapr's metadata
/// keys: an HTTP app subscribed through each gets what is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_brokers_from_dapr_component_files() {
    use mecha_core::testing::{service_available, service_url};
    let redis = service_url("redis", "127.0.0.1:6379");
    let rabbit = service_url("rabbitmq", "amqp://guest:guest@127.0.0.1:5672");
    let rabbit_address = rabbit.rsplit('@').next().unwrap().to_owned();
    let mqtt = service_url("mqtt", "127.0.0.1:1883");
    let brokers = [
        (
            "redis",
            "pubsub.redis",
            redis.clone(),
            vec![
                ("redisHost", redis.clone()),
                ("processingTimeout", "2s".into()),
            ],
        ),
        (
            "rabbitmq",
            "pubsub.rabbitmq",
            rabbit_address,
            vec![("connectionString", rabbit.clone())],
        ),
        (
            "mqtt",
            "pubsub.mqtt3",
            mqtt.clone(),
            vec![("url", format!("tcp://{mqtt}")), ("qos", "1".into())],
        ),
    ];
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut resources = Resources::new();
    let mut names = Vec::new();
    for (name, type_name, address, metadata) in &brokers {
        if !service_available(name, address) {
            continue;
        }
        let metadata: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
        resources = resources.component(name, type_name, &metadata);
        names.push(*name);
    }
    if names.is_empty() {
        return;
    }
    let app = App::http(0).await;
    let topic = format!("e2e-{suffix}");
    *app.state.subscriptions.lock().unwrap() = Some(Value::Array(
        names
            .iter()
            .map(|name| json!({"pubsubname": name, "topic": topic, "route": format!("/events/{name}")}))
            .collect(),
    ));
    let runtime = sidecar(
        resources,
        &format!("brokers-{suffix}"),
        app_args(app.port, "http"),
    )
    .await;
    subscribed(&runtime, names.len()).await;
    for name in &names {
        publish_json(&runtime, &format!("{name}/{topic}"), json!({"via": name})).await;
    }
    eventually("an event through every broker", || {
        app.state.events().len() >= names.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received: Vec<(String, Value)> = app
        .state
        .events()
        .iter()
        .map(|e| (e.path.clone(), e.event["data"]["via"].clone()))
        .collect();
    received.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected: Vec<(String, Value)> = names
        .iter()
        .map(|name| (format!("/events/{name}"), json!(name)))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(received, expected, "{}", runtime.logs());
}
