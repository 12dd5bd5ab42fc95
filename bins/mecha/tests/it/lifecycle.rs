//! Start, health, shutdown, draining and durability of the real binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mecha_proto::runtime as pb;

use crate::harness::{Options, Resources, Sidecar, http_status};
use crate::scenarios::two_stores;

fn save_http(sidecar: &Sidecar, store: &str, key: &str, json_value: &str) -> u16 {
    let body = format!(r#"[{{"key":"{key}","value":{json_value}}}]"#);
    raw_request(sidecar, "POST", &format!("/v1.0/state/{store}"), &body).0
}

/// A blocking HTTP/1.1 request; returns the status and the body.
pub fn raw_request(sidecar: &Sidecar, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", sidecar.http_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn embedded_defaults_start_healthy_and_durable() {
    // No resources path: the embedded SQLite `statestore` in the data dir.
    let mut sidecar = Sidecar::start(Options::default());
    assert_eq!(
        http_status(&sidecar.http("/v1.0/healthz/outbound")),
        Some(204)
    );
    assert_eq!(save_http(&sidecar, "statestore", "k", r#"{"v":1}"#), 204);
    assert!(
        sidecar.data_dir.join("state.db").exists(),
        "the store lives in the data dir"
    );
    let (status, body) = raw_request(&sidecar, "GET", "/v1.0/metadata", "");
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["components"][0]["name"], "statestore");
    assert_eq!(meta["components"][0]["type"], "state.sqlite");
    assert!(
        meta["components"][0]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "ACTOR")
    );
    sidecar.signal("TERM");
    assert!(sidecar.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let options = || Options {
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let mut first = Sidecar::start(options());
    for i in 0..50 {
        assert_eq!(
            save_http(&first, "statestore", &format!("k{i}"), &i.to_string()),
            204
        );
    }
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));
    let second = Sidecar::start(options());
    for i in 0..50 {
        let (status, body) =
            raw_request(&second, "GET", &format!("/v1.0/state/statestore/k{i}"), "");
        assert_eq!((status, body), (200, i.to_string()), "k{i} after kill -9");
    }
}

#[test]
fn sigint_and_sigterm_exit_zero() {
    for signal in ["INT", "TERM"] {
        let mut sidecar = Sidecar::start(Options::default());
        sidecar.signal(signal);
        let status = sidecar.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "{signal}: {status}\n{}", sidecar.logs());
    }
}

#[test]
fn shutdown_api_over_http_exits_zero() {
    let mut sidecar = Sidecar::start(Options::default());
    let (status, _) = raw_request(&sidecar, "POST", "/v1.0/shutdown", "");
    assert_eq!(status, 204);
    assert!(sidecar.wait_exit(Duration::from_secs(10)).success());
}

#[tokio::test]
async fn shutdown_api_over_grpc_exits_zero() {
    let mut sidecar = Sidecar::start(Options::default());
    sidecar
        .grpc()
        .await
        .shutdown(pb::ShutdownRequest {})
        .await
        .unwrap();
    assert!(sidecar.wait_exit(Duration::from_secs(10)).success());
}

/// A request in flight when SIGTERM arrives is completed, not cut off, and
/// new connections are refused while draining.
#[test]
fn in_flight_requests_drain_on_sigterm() {
    let mut sidecar = Sidecar::start(Options::default());
    let body = r#"[{"key":"drained","value":"done"}]"#;
    let mut stream = TcpStream::connect(("127.0.0.1", sidecar.http_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    sidecar.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(("127.0.0.1", sidecar.http_port)).is_err(),
        "no new connections while draining"
    );
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 204"), "{response}");
    assert!(sidecar.wait_exit(Duration::from_secs(10)).success());
    // The write that was drained is durable.
    let data_dir = sidecar.data_dir.clone();
    let restarted = Sidecar::start(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    });
    assert_eq!(
        raw_request(&restarted, "GET", "/v1.0/state/statestore/drained", "").1,
        "\"done\""
    );
}

/// As daprd's, the API serves only once every component is built: a
/// request made while a component initialises waits (in the listen
/// backlog) and is answered by the ready runtime, never with an error of a
/// half-started one; the same for gRPC.
#[test]
fn the_api_serves_only_once_components_are_built() {
    let resources = Resources::new();
    let db = resources.path().join("locked.db");
    // Hold an exclusive lock so the store's initialisation waits.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=DELETE; CREATE TABLE x(a); BEGIN EXCLUSIVE; INSERT INTO x VALUES (1);",
    )
    .unwrap();
    let resources = resources.component(
        "slow",
        "state.sqlite",
        &[
            ("connectionString", &db.to_string_lossy()),
            ("busyTimeout", "10s"),
            ("disableWAL", "true"),
        ],
    );
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            wait_healthy: false,
            ..Options::default()
        },
    );
    // The port is bound before anything starts: a connection is taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", sidecar.http_port)) {
            break stream;
        }
        assert!(std::time::Instant::now() < deadline, "{}", sidecar.logs());
        std::thread::sleep(Duration::from_millis(20));
    };
    write!(
        stream,
        "GET /v1.0/state/slow/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let grpc_port = sidecar.grpc_port;
    let grpc = std::thread::spawn(move || grpc_health(grpc_port));
    // While the store waits for its lock, the request is not answered.
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut first = [0u8; 1];
    let waiting = stream.read(&mut first);
    assert!(
        waiting.is_err(),
        "answered before the components were built: {waiting:?}\n{}",
        sidecar.logs()
    );
    assert!(
        !grpc.is_finished(),
        "gRPC answered before the components were built"
    );
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    // Then the waiting request gets the ready runtime's answer.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 204"),
        "{response}\n{}",
        sidecar.logs()
    );
    // The waiting gRPC check got an answer only now (its status follows the
    // runtime's readiness in a task of its own, so it may be a moment late).
    assert!(grpc.join().unwrap().is_some(), "gRPC answered");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while grpc_health(sidecar.grpc_port) != Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "gRPC health never SERVING"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        http_status(&sidecar.http("/v1.0/healthz/outbound")),
        Some(204)
    );
    assert_eq!(
        http_status(&sidecar.http("/v1.0/healthz?appid=e2e-app")),
        Some(204)
    );
    assert_eq!(
        http_status(&sidecar.http("/v1.0/healthz?appid=other")),
        Some(500)
    );
}

/// Right after start, requests get the ready runtime's answers: a publish
/// and a state save made as soon as the port takes connections succeed
/// (before, a publish could be refused as not configured for a few
/// milliseconds).
#[test]
fn no_request_meets_a_half_started_runtime() {
    let sidecar = Sidecar::start(Options {
        wait_healthy: false,
        ..Options::default()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", sidecar.http_port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", sidecar.logs());
        std::thread::sleep(Duration::from_millis(1));
    }
    let (status, body) = raw_request(&sidecar, "POST", "/v1.0/publish/pubsub/early", "{}");
    assert_eq!(status, 204, "{body}\n{}", sidecar.logs());
    assert_eq!(save_http(&sidecar, "statestore", "early", "1"), 204);
}

/// Whether gRPC health reports SERVING (on a runtime of its own, as the
/// callers are plain tests).
fn grpc_health(port: u16) -> Option<bool> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = crate::harness::channel(port).await.ok()?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        let status = client.check(request).await.ok()?.into_inner().status;
        Some(status == ServingStatus::Serving as i32)
    })
}

/// A component that cannot start stops the runtime with a clear error,
/// unless it sets `ignoreErrors`.
#[test]
fn failing_components_stop_the_start_unless_ignored() {
    let broken = |ignore: bool| {
        Resources::new().file(
            "broken.yaml",
            &format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  type: state.sqlite\n  ignoreErrors: {ignore}\n  metadata:\n  - name: connectionString\n    value: /nonexistent-dir/x/state.db\n"
            ),
        )
    };
    let logs = Sidecar::expect_failure(broken(false));
    assert!(
        logs.contains("component 'broken'") && logs.contains("does not exist"),
        "{logs}"
    );

    let sidecar = Sidecar::with_resources(broken(true));
    let (status, body) = raw_request(&sidecar, "GET", "/v1.0/metadata", "");
    assert_eq!(status, 200);
    // Only the embedded scheduler store, which resources never declare.
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        metadata["components"],
        serde_json::json!([{"capabilities": ["DURABLE"], "name": "scheduler", "type": "scheduler.sqlite", "version": "v1"}]),
        "{body}"
    );
}

#[tokio::test]
async fn metadata_agrees_on_both_transports() {
    // An app port something listens on, so the runtime becomes ready.
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_port = app.local_addr().unwrap().port().to_string();
    let sidecar = Sidecar::start_with(
        two_stores(),
        Options {
            args: vec![
                "--app-port".into(),
                app_port.clone(),
                "--enable-app-health-check".into(),
            ],
            ..Options::default()
        },
    );
    let (_, body) = raw_request(&sidecar, "PUT", "/v1.0/metadata/color", "blue");
    assert!(body.is_empty());
    let http: serde_json::Value =
        serde_json::from_str(&raw_request(&sidecar, "GET", "/v1.0/metadata", "").1).unwrap();
    let grpc = sidecar
        .grpc()
        .await
        .get_metadata(pb::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(http["id"], grpc.id);
    assert_eq!(http["runtimeVersion"], grpc.runtime_version);
    assert_eq!(http["extended"]["color"], "blue");
    assert_eq!(grpc.extended_metadata["color"], "blue");
    let http_components: Vec<(String, String, Vec<String>)> = http["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let caps = c["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
                caps,
            )
        })
        .collect();
    let mut grpc_components: Vec<(String, String, Vec<String>)> = grpc
        .registered_components
        .into_iter()
        .map(|c| (c.name, c.r#type, c.capabilities))
        .collect();
    let mut sorted_http = http_components.clone();
    sorted_http.sort();
    grpc_components.sort();
    assert_eq!(sorted_http, grpc_components);
    // The two declared, and the embedded scheduler store.
    assert_eq!(sorted_http.len(), 3);
    let app = grpc.app_connection_properties.unwrap();
    assert_eq!(app.port.to_string(), app_port);
    assert_eq!(
        http["appConnectionProperties"]["port"].to_string(),
        app_port
    );
    assert_eq!(
        http["appConnectionProperties"]["health"]["healthProbeInterval"],
        "5s"
    );
    assert_eq!(app.health.unwrap().health_probe_timeout, "500ms");
}

/// Two runtimes on one host share the embedded store through the data
/// directory; each app id sees only its own keys.
#[test]
fn runtimes_on_one_host_share_the_embedded_store() {
    let data = tempfile::tempdir().unwrap();
    let start = |app_id: &str| {
        Sidecar::start(Options {
            app_id: app_id.into(),
            data_dir: Some(data.path().to_owned()),
            ..Options::default()
        })
    };
    let (a, b) = (start("app-a"), start("app-b"));
    assert_eq!(save_http(&a, "statestore", "k", r#""from a""#), 204);
    assert_eq!(save_http(&b, "statestore", "k", r#""from b""#), 204);
    assert_eq!(
        raw_request(&a, "GET", "/v1.0/state/statestore/k", "").1,
        "\"from a\""
    );
    assert_eq!(
        raw_request(&b, "GET", "/v1.0/state/statestore/k", "").1,
        "\"from b\""
    );
    let conn = rusqlite::Connection::open(data.path().join("state.db")).unwrap();
    let mut keys: Vec<String> = conn
        .prepare("SELECT key FROM state ORDER BY key")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["app-a||k", "app-b||k"]);
}

/// With `keyPrefix: none`, two apps read each other's keys.
#[test]
fn key_prefix_none_shares_keys_between_apps() {
    let db = tempfile::tempdir().unwrap();
    let db_path = db.path().join("shared.db").to_string_lossy().into_owned();
    let start = |app_id: &str| {
        let resources = Resources::new().component(
            "shared",
            "state.sqlite",
            &[("connectionString", &db_path), ("keyPrefix", "none")],
        );
        Sidecar::start_with(
            resources,
            Options {
                app_id: app_id.into(),
                ..Options::default()
            },
        )
    };
    let (a, b) = (start("app-a"), start("app-b"));
    assert_eq!(save_http(&a, "shared", "common", "42"), 204);
    assert_eq!(
        raw_request(&b, "GET", "/v1.0/state/shared/common", ""),
        (200, "42".to_owned())
    );
}

/// `--config` is read: its feature flags show in the metadata.
#[test]
fn configuration_features_show_in_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec:\n  features:\n  - name: HotReload\n    enabled: true\n  - name: ActorStateTTL\n    enabled: false\n",
    )
    .unwrap();
    let sidecar = Sidecar::start(Options {
        args: vec!["--config".into(), config.to_string_lossy().into_owned()],
        ..Options::default()
    });
    let meta: serde_json::Value =
        serde_json::from_str(&raw_request(&sidecar, "GET", "/v1.0/metadata", "").1).unwrap();
    assert_eq!(meta["enabledFeatures"], serde_json::json!(["HotReload"]));
}
