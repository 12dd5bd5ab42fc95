//! Bindings through the real binary, loaded from Dapr component files:
//! input bindings delivered to HTTP apps (`OPTIONS` probe, `route`,
//! `direction`, a refused event coming again) and to gRPC apps
//! (`ListInputBindings`, `OnBindingEvent`, the answer sent on with `to`);
//! output bindings over HTTP and gRPC, with daprd's shapes and errors.

use std::time::Duration;

use mecha_core::testing::{service_available, service_url, unique};
use mecha_proto::runtime as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::apps::App;
use crate::harness::{Options, Resources, Sidecar};

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn invoke(sidecar: &Sidecar, name: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(sidecar.http(&format!("/v1.0/bindings/{name}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errorCode"].as_str().unwrap_or_default().to_owned(),
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn rabbit_url() -> String {
    service_url("rabbitmq", "amqp://guest:guest@127.0.0.1:5672")
}

fn rabbit_address() -> String {
    let url = rabbit_url();
    let rest = url.split("://").nth(1).unwrap_or(&url).to_owned();
    let host = rest.rsplit('@').next().unwrap_or(&rest).to_owned();
    host.split('/').next().unwrap_or(&host).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_bindings_reach_an_http_app() {
    let mqtt = service_url("mqtt", "127.0.0.1:1883");
    if !service_available("RabbitMQ", &rabbit_address()) || !service_available("MQTT", &mqtt) {
        return;
    }
    let app = App::http(0).await;
    let queue = unique("e2e-binding");
    let topic = format!("mecha/e2e/{}", unique("unwanted"));
    let resources = Resources::new()
        .component(
            "queue",
            "bindings.rabbitmq",
            &[
                ("host", &rabbit_url()),
                ("queueName", &queue),
                ("deleteWhenUnused", "true"),
                ("route", "/bindings/queue"),
            ],
        )
        .component(
            "ticks",
            "bindings.cron",
            &[
                ("schedule", "@every 1s"),
                ("direction", "input"),
                ("route", "/bindings/ticks"),
            ],
        )
        .component(
            "unwanted",
            "bindings.mqtt3",
            &[
                ("url", &format!("tcp://{mqtt}")),
                ("topic", &topic),
                ("consumerID", &unique("e2e")),
                ("cleanSession", "true"),
                ("route", "/bindings/unwanted"),
            ],
        );
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            args: vec!["--app-port".into(), app.port.to_string()],
            ..Options::default()
        },
    );
    // Output to the queue, input from it: the data as JSON, a refused
    // event again until taken.
    for data in [json!({"n": 1}), json!("refuse-once please")] {
        let response = invoke(
            &sidecar,
            "queue",
            json!({"operation": "create", "data": data}),
        )
        .await;
        assert_eq!(response.status(), 204);
    }
    let state = app.state.clone();
    eventually("the queue's events", || {
        let data: Vec<String> = state
            .events()
            .iter()
            .filter(|e| e.path == "/bindings/queue")
            .map(|e| e.event["data"].as_str().unwrap_or_default().to_owned())
            .collect();
        data.iter().any(|d| d == r#"{"n":1}"#)
            && data
                .iter()
                .filter(|d| *d == r#""refuse-once please""#)
                .count()
                == 2
    })
    .await;
    let first = state
        .events()
        .into_iter()
        .find(|e| e.path == "/bindings/queue")
        .unwrap();
    assert_eq!(first.headers["content-type"], "application/json");
    // The cron ticks, without being asked about (direction: input).
    eventually("a tick", || {
        state.events().iter().any(|e| e.path == "/bindings/ticks")
    })
    .await;
    let probed = state.probed.lock().unwrap().clone();
    assert!(probed.contains(&"/bindings/queue".to_owned()), "{probed:?}");
    assert!(
        !probed.contains(&"/bindings/ticks".to_owned()),
        "{probed:?}"
    );
    // The app said no to `unwanted` (404): what its topic gets is not
    // delivered.
    assert!(
        probed.contains(&"/bindings/unwanted".to_owned()),
        "{probed:?}"
    );
    let response = invoke(
        &sidecar,
        "unwanted",
        json!({"operation": "create", "data": "hi"}),
    )
    .await;
    assert_eq!(response.status(), 204);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !state
            .events()
            .iter()
            .any(|e| e.path == "/bindings/unwanted"),
        "not delivered to an app that did not take it"
    );
    // An input-only binding cannot be invoked.
    let (status, code, _) =
        error_of(invoke(&sidecar, "ticks", json!({"operation": "create"})).await).await;
    assert_eq!((status, code.as_str()), (500, "ERR_INVOKE_OUTPUT_BINDING"));
    drop(sidecar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_bindings_over_http_and_grpc() {
    let redis = service_url("redis", "127.0.0.1:6379");
    let postgres = service_url("postgres", "127.0.0.1:5432");
    if !service_available("Redis", &redis) || !service_available("PostgreSQL", &postgres) {
        return;
    }
    let (pg_host, pg_port) = postgres.rsplit_once(':').unwrap();
    let files = tempfile::tempdir().unwrap();
    // A plain HTTP server for bindings.http (not the sidecar's app).
    let web = App::http(0).await;
    let resources = Resources::new()
        .component(
            "web",
            "bindings.http",
            &[("url", &format!("http://127.0.0.1:{}/hooks", web.port))],
        )
        .component("kv", "bindings.redis", &[("redisHost", &redis)])
        .component(
            "sql",
            "bindings.postgresql",
            &[(
                "connectionString",
                &format!("host={pg_host} port={pg_port} user=postgres dbname=test sslmode=disable"),
            )],
        )
        .component(
            "files",
            "bindings.localstorage",
            &[("rootPath", files.path().to_str().unwrap())],
        );
    let sidecar = Sidecar::with_resources(resources);
    let key = unique("e2e-binding");
    // `data` reaches the binding as JSON: a string keeps its quotes.
    let response = invoke(
        &sidecar,
        "kv",
        json!({"operation": "create", "data": "hello", "metadata": {"key": key}}),
    )
    .await;
    assert_eq!(response.status(), 204);
    let response = invoke(
        &sidecar,
        "kv",
        json!({"operation": "get", "metadata": {"key": key}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#""hello""#);
    // PUT too; metadata values may be numbers.
    let response = reqwest::Client::new()
        .put(sidecar.http("/v1.0/bindings/kv"))
        .json(&json!({"operation": "create", "data": {"a": [1, 2]}, "metadata": {"key": key, "ttlInSeconds": 60}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let response = invoke(
        &sidecar,
        "files",
        json!({"operation": "create", "data": {"doc": 1}, "metadata": {"fileName": "a/b.json"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"fileName": "a/b.json"})
    );
    assert_eq!(
        std::fs::read_to_string(files.path().join("a/b.json")).unwrap(),
        r#"{"doc":1}"#
    );

    // Response metadata as `metadata.<k>` headers.
    let response = invoke(
        &sidecar,
        "sql",
        json!({"operation": "query", "metadata": {"sql": "SELECT $1::int + 1, 'x'", "params": "[41]"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["metadata.operation"], "query");
    assert!(response.headers().contains_key("metadata.duration"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!([[42, "x"]]));

    // bindings.http gets the caller's trace context, as the next hop.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/bindings/web"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"operation": "post", "data": {"order": 7}, "metadata": {"path": "orders", "X-Tenant": "t1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["metadata.statuscode"], "200");
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/hooks/orders");
    assert_eq!(echoed["headers"]["x-tenant"], "t1");
    let traceparent = echoed["headers"]["traceparent"].as_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{trace}-")),
        "{traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "a new span: {traceparent}"
    );

    // Errors, as daprd answers them: 500 whoever is to blame.
    let cases = [
        ("nope", json!({"operation": "get"}), 500),
        (
            "kv",
            json!({"operation": "list", "metadata": {"key": key}}),
            500,
        ),
        ("kv", json!({"data": 1}), 500),
        ("kv", json!({"operation": "get"}), 500),
        (
            "files",
            json!({"operation": "get", "metadata": {"fileName": "../../etc/passwd"}}),
            500,
        ),
        (
            "files",
            json!({"operation": "get", "metadata": {"fileName": "no-such-file.txt"}}),
            500,
        ),
    ];
    for (name, body, want) in cases {
        let (status, code, message) = error_of(invoke(&sidecar, name, body.clone()).await).await;
        assert_eq!(status, want, "{name} {body}: {message}");
        assert_eq!(code, "ERR_INVOKE_OUTPUT_BINDING", "{name} {body}");
        assert!(
            message.starts_with(&format!("error invoking output binding {name}: ")),
            "{message}"
        );
    }
    let (status, _, message) = error_of(
        invoke(
            &sidecar,
            "kv",
            json!({"operation": "list", "metadata": {"key": key}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        message.contains(
            "does not support operation list. supported operations:create get delete increment"
        ),
        "{message}"
    );
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/bindings/kv"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "ERR_MALFORMED_REQUEST"));
    // Baggage that is not W3C baggage is refused, as daprd refuses it:
    // 400 over HTTP, UNKNOWN over gRPC.
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/bindings/files"))
        .header("baggage", "not baggage")
        .json(&json!({"operation": "list"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "ERR_MALFORMED_REQUEST"));
    assert!(message.starts_with("invalid baggage header: "), "{message}");

    // gRPC: raw bytes, both ways.
    let mut grpc = sidecar.grpc().await;
    // The binding's answer metadata also comes back as `metadata.<k>`
    // headers, as daprd sets them.
    let answered = grpc
        .invoke_binding(pb::InvokeBindingRequest {
            name: "sql".into(),
            operation: "query".into(),
            metadata: [("sql".to_owned(), "SELECT 1".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        answered.metadata().get("metadata.operation").unwrap(),
        "query"
    );
    assert_eq!(answered.into_inner().metadata["operation"], "query");
    let mut bad_baggage = tonic::Request::new(pb::InvokeBindingRequest {
        name: "files".into(),
        operation: "list".into(),
        ..Default::default()
    });
    bad_baggage
        .metadata_mut()
        .insert("baggage", "k=v,,".parse().unwrap());
    let err = grpc.invoke_binding(bad_baggage).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    let raw_key = unique("e2e-raw");
    grpc.invoke_binding(pb::InvokeBindingRequest {
        name: "kv".into(),
        data: vec![0u8, 159, 146, 150].into(),
        metadata: [
            ("key".to_owned(), raw_key.clone()),
            ("ttlInSeconds".to_owned(), "60".to_owned()),
        ]
        .into(),
        operation: "create".into(),
    })
    .await
    .unwrap();
    let answer = grpc
        .invoke_binding(pb::InvokeBindingRequest {
            name: "kv".into(),
            metadata: [("key".to_owned(), raw_key.clone())].into(),
            operation: "get".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.data.as_ref(), &[0u8, 159, 146, 150]);
    // daprd answers every failure with INTERNAL, in its words.
    let failures = [
        (
            "kv",
            "explode",
            None,
            "error invoking output binding kv: binding kv does not support operation explode. supported operations:",
        ),
        (
            "missing",
            "get",
            None,
            "error invoking output binding missing: couldn't find output binding missing",
        ),
        // A component's failure: a file that is not there.
        (
            "files",
            "get",
            Some("no-such-file.txt"),
            "error invoking output binding files: file not found: ",
        ),
    ];
    for (name, operation, file, message) in failures {
        let err = grpc
            .invoke_binding(pb::InvokeBindingRequest {
                name: name.into(),
                operation: operation.into(),
                metadata: file
                    .map(|f| [("fileName".to_owned(), f.to_owned())].into())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{name} {operation}");
        assert!(err.message().starts_with(message), "{err:?}");
    }
    // `list` of `.` lists the root folder, as in daprd.
    let listed = grpc
        .invoke_binding(pb::InvokeBindingRequest {
            name: "files".into(),
            metadata: [("fileName".to_owned(), ".".to_owned())].into(),
            operation: "list".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<String> = serde_json::from_slice(&listed.data).unwrap();
    assert!(!listed.is_empty(), "the files written above are listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_bindings_reach_a_grpc_app_and_its_answer_goes_on() {
    if !service_available("RabbitMQ", &rabbit_address()) {
        return;
    }
    let app = App::grpc(0).await;
    app.state
        .input_bindings
        .lock()
        .unwrap()
        .push("queue".into());
    app.state.forward_to.lock().unwrap().push("files".into());
    let files = tempfile::tempdir().unwrap();
    let queue = unique("e2e-grpc-binding");
    let resources = Resources::new()
        .component(
            "queue",
            "bindings.rabbitmq",
            &[
                ("host", &rabbit_url()),
                ("queueName", &queue),
                ("deleteWhenUnused", "true"),
            ],
        )
        // Listed by nobody: not read.
        .component("ignored", "bindings.cron", &[("schedule", "@every 1s")])
        .component(
            "files",
            "bindings.localstorage",
            &[
                ("rootPath", files.path().to_str().unwrap()),
                ("direction", "output"),
            ],
        );
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            args: vec![
                "--app-port".into(),
                app.port.to_string(),
                "--app-protocol".into(),
                "grpc".into(),
            ],
            ..Options::default()
        },
    );
    let mut grpc = sidecar.grpc().await;
    for data in ["first", "refuse-once second"] {
        grpc.invoke_binding(pb::InvokeBindingRequest {
            name: "queue".into(),
            data: data.as_bytes().to_vec().into(),
            operation: "create".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let state = app.state.clone();
    eventually("both events, the refused one twice", || {
        let events = state.events();
        events.iter().filter(|e| e.event["data"] == "first").count() == 1
            && events
                .iter()
                .filter(|e| e.event["data"] == "refuse-once second")
                .count()
                == 2
    })
    .await;
    assert!(
        state.events().iter().all(|e| e.path == "queue"),
        "only the listed binding"
    );
    // Each answer went on to `files` (create, a new file each).
    let dir = files.path().to_owned();
    eventually("the answers in files", || {
        let contents: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        contents.contains(&"answer to first".to_owned())
            && contents.contains(&"answer to refuse-once second".to_owned())
    })
    .await;
}
