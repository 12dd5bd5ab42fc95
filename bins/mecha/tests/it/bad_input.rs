//! Bad input gets Dapr's error, never a panic or a hang.

use std::time::Duration;

use mecha_proto::runtime as pb;
use tonic::Code;

use crate::harness::{Options, Sidecar};
use crate::lifecycle::raw_request;

fn error_code(body: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    json["errorCode"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn malformed_bodies_and_keys() {
    let sidecar = Sidecar::start(Options::default());
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            "/v1.0/state/statestore",
            "{not json",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            r#"{"key":"k","value":1}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"","value":1}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            r#"[{"value":1}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"k","value":1,"options":{"concurrency":"sometimes"}}]"#,
            // daprd's stores refuse an unknown option: the save fails.
            500,
            "ERR_STATE_SAVE",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"k","metadata":{"a":[1]}}]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            "key=k&value=1",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            "",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore/bulk",
            r#"{"keys":"k"}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore/transaction",
            "[]",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore/transaction",
            r#"{"operations":[["upsert",{}]]}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore",
            r#"[["k",1]]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/state/statestore/bulk",
            r#"[["k"]]"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        // The store is checked before the body, as in daprd.
        (
            "POST",
            "/v1.0/state/nostore",
            "{not json",
            400,
            "ERR_STATE_STORE_NOT_FOUND",
        ),
        (
            "GET",
            "/v1.0/state/nostore/k",
            "",
            400,
            "ERR_STATE_STORE_NOT_FOUND",
        ),
        (
            "GET",
            "/v1.0/state/statestore/a%7C%7Cb",
            "",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        ("GET", "/no/such/route", "", 404, "ERR_DIRECT_INVOKE"),
        (
            "PATCH",
            "/v1.0/state/statestore/k",
            "",
            404,
            "ERR_DIRECT_INVOKE",
        ),
        (
            "POST",
            "/v1.0/publish/pubsub/topic?metadata.rawPayload=maybe",
            "{}",
            400,
            "ERR_PUBSUB_REQUEST_METADATA",
        ),
        (
            "POST",
            "/v1.0/publish/nosuchpubsub/topic",
            "{}",
            404,
            "ERR_PUBSUB_NOT_FOUND",
        ),
        (
            "GET",
            "/v1.0/secrets/store/key",
            "",
            500,
            "ERR_SECRET_STORES_NOT_CONFIGURED",
        ),
        (
            "POST",
            "/v1.0-alpha1/state/statestore/query",
            "{not json",
            500,
            "ERR_STATE_QUERY",
        ),
        (
            "POST",
            "/v1.0-alpha1/state/statestore/query",
            r#"{"filter":{"EQ":{"a":1},"IN":{"b":[1]}}}"#,
            500,
            "ERR_STATE_QUERY",
        ),
        (
            "POST",
            "/v1.0-alpha1/lock/lockstore",
            r#"{"resourceId":"r","lockOwner":"o","expiryInSeconds":"soon"}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/bindings/nope",
            r#"{"operation":"create","data":1}"#,
            500,
            "ERR_INVOKE_OUTPUT_BINDING",
        ),
        (
            "PUT",
            "/v1.0/bindings/nope",
            r#"{"operation":"create","metadata":{"k":["v"]}}"#,
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "POST",
            "/v1.0/bindings/nope",
            "[]",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "PUT",
            "/v1.0/actors/A/a%3Fb/method/m",
            "",
            400,
            "ERR_BAD_REQUEST",
        ),
        (
            "POST",
            "/v1.0-beta1/workflows/dapr/w/start",
            "",
            501,
            "ERR_API_UNIMPLEMENTED",
        ),
        // A known path with another method is service invocation, as in daprd.
        ("GET", "/v1.0/shutdown", "", 404, "ERR_DIRECT_INVOKE"),
        ("POST", "/v1.0/metadata", "", 404, "ERR_DIRECT_INVOKE"),
        (
            "GET",
            "/v1.0/state/statestore",
            "",
            404,
            "ERR_DIRECT_INVOKE",
        ),
        // Percent-encoding that is not UTF-8.
        (
            "GET",
            "/v1.0/state/statestore/%FF",
            "",
            400,
            "ERR_MALFORMED_REQUEST",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got_status, got_body) = raw_request(&sidecar, method, path, body);
        assert_eq!(
            (got_status, error_code(&got_body).as_str()),
            (*status, *code),
            "{method} {path} {body}: {got_body}"
        );
    }
    // Keys and lock resource ids beyond the ceiling (64 KiB): a 1 MB one is
    // refused before any store sees it, on every operation; so is a key
    // with NUL (which PostgreSQL cannot store), on every store.
    let huge = "k".repeat(1024 * 1024);
    let mut oversized: Vec<(&str, String, String)> = vec![
        (
            "POST",
            "/v1.0/state/statestore".to_owned(),
            format!(r#"[{{"key":"{huge}","value":1}}]"#),
        ),
        (
            "POST",
            "/v1.0/state/statestore/bulk".to_owned(),
            format!(r#"{{"keys":["a","{huge}"]}}"#),
        ),
        (
            "POST",
            "/v1.0/state/statestore/transaction".to_owned(),
            format!(
                r#"{{"operations":[{{"operation":"upsert","request":{{"key":"{huge}","value":1}}}}]}}"#
            ),
        ),
        (
            "POST",
            "/v1.0-alpha1/lock/lockstore".to_owned(),
            format!(r#"{{"resourceId":"{huge}","lockOwner":"o","expiryInSeconds":10}}"#),
        ),
        (
            "POST",
            "/v1.0-alpha1/unlock/lockstore".to_owned(),
            format!(r#"{{"resourceId":"{huge}","lockOwner":"o"}}"#),
        ),
    ];
    oversized.push((
        "POST",
        "/v1.0/state/statestore".to_owned(),
        r#"[{"key":"a\u0000b","value":1}]"#.to_owned(),
    ));
    for (method, path, body) in &oversized {
        let (status, got) = raw_request(&sidecar, method, path, body);
        assert_eq!(
            (status, error_code(&got).as_str()),
            (400, "ERR_MALFORMED_REQUEST"),
            "{method} {path} with a 1 MB key (or a NUL in it): {got}"
        );
    }
    let (status, got) = raw_request(
        &sidecar,
        "GET",
        &format!("/v1.0/state/statestore/{}", "k".repeat(70 * 1024)),
        "",
    );
    assert!(
        (400..500).contains(&status),
        "a 70 KiB key in the path: {status} {got}"
    );
    // A key named like a sub-route is still readable with GET.
    let (status, _) = raw_request(
        &sidecar,
        "POST",
        "/v1.0/state/statestore",
        r#"[{"key":"bulk","value":"b"}]"#,
    );
    assert_eq!(status, 204);
    assert_eq!(
        raw_request(&sidecar, "GET", "/v1.0/state/statestore/bulk", ""),
        (200, "\"b\"".to_owned())
    );
    // The runtime is still healthy after all of it.
    assert_eq!(raw_request(&sidecar, "GET", "/v1.0/healthz", "").0, 204);
}

/// A query within the block's limits runs on SQLite (whose limits are the
/// tightest); one beyond them is refused before the store sees it, as a
/// failed query naming the limit.
#[test]
fn queries_at_and_beyond_the_limits() {
    let sidecar = Sidecar::start(Options::default());
    let or = |n: usize| {
        let units: Vec<String> = (0..n).map(|i| format!(r#"{{"EQ":{{"a":{i}}}}}"#)).collect();
        format!(r#"{{"filter":{{"OR":[{}]}}}}"#, units.join(","))
    };
    let within = |n: usize| {
        let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        format!(r#"{{"filter":{{"IN":{{"a":[{}]}}}}}}"#, values.join(","))
    };
    let sort = |n: usize| {
        let keys: Vec<String> = (0..n).map(|i| format!(r#"{{"key":"k{i}"}}"#)).collect();
        format!(r#"{{"sort":[{}]}}"#, keys.join(","))
    };
    let (status, _) = raw_request(
        &sidecar,
        "POST",
        "/v1.0/state/statestore",
        r#"[{"key":"found","value":{"a":0}}]"#,
    );
    assert_eq!(status, 204);
    let path = "/v1.0-alpha1/state/statestore/query";
    for (query, limit) in [
        (or(499), "500"),
        (within(10_000), "10000"),
        (sort(32), "32"),
    ] {
        let (status, body) = raw_request(&sidecar, "POST", path, &query);
        assert_eq!(status, 200, "at the limit of {limit}: {body}");
        assert!(body.contains(r#""key":"found""#), "{body}");
    }
    for (query, limit) in [
        (or(500), "500"),
        (within(10_001), "10000"),
        (sort(33), "32"),
    ] {
        let (status, body) = raw_request(&sidecar, "POST", path, &query);
        assert_eq!(
            (status, error_code(&body).as_str()),
            (500, "ERR_STATE_QUERY"),
            "{body}"
        );
        assert!(body.contains(&format!("limit of {limit}")), "{body}");
    }
}

#[tokio::test]
async fn invocation_of_an_unknown_app_fails_quickly() {
    let sidecar = Sidecar::start(Options::default());
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .get(sidecar.http("/some/method"))
        .header("dapr-app-id", "nobody-runs-this")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body = response.text().await.unwrap();
    assert_eq!(error_code(&body), "ERR_DIRECT_INVOKE");
    assert!(
        body.contains("couldn't find service: nobody-runs-this"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "no hang");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let sidecar = Sidecar::start(Options {
        args: vec!["--max-body-size".into(), "64Ki".into()],
        ..Options::default()
    });
    let client = reqwest::Client::new();
    let big = format!(r#"[{{"key":"big","value":"{}"}}]"#, "x".repeat(70 * 1024));
    let response = client
        .post(sidecar.http("/v1.0/state/statestore"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body = response.text().await.unwrap();
    assert_eq!(error_code(&body), "ERR_MALFORMED_REQUEST");
    assert!(body.contains("--max-body-size"), "{body}");

    // A chunked body of unknown length is cut off at the limit too.
    let port = sidecar.http_port;
    let status = tokio::task::spawn_blocking(move || chunked_post(port, 20, 8 * 1024))
        .await
        .unwrap();
    assert_eq!(status, 400);

    // gRPC: the same limit, as RESOURCE_EXHAUSTED.
    let mut grpc = sidecar.grpc().await;
    let item = mecha_proto::common::StateItem {
        key: "big".into(),
        value: big.into_bytes().into(),
        ..Default::default()
    };
    let err = grpc
        .save_state(pb::SaveStateRequest {
            store_name: "statestore".into(),
            states: vec![item],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // A body just under the limit is fine.
    let ok = format!(r#"[{{"key":"ok","value":"{}"}}]"#, "x".repeat(60 * 1024));
    let response = client
        .post(sidecar.http("/v1.0/state/statestore"))
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

/// Posts `count` chunks of `size` bytes with chunked encoding (no declared
/// length); returns the status. Stops sending once an answer arrives.
fn chunked_post(port: u16, count: usize, size: usize) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
    for _ in 0..count {
        let chunk = "y".repeat(size);
        if write!(stream, "{size:x}\r\n{chunk}\r\n").is_err() {
            break;
        }
    }
    let _ = write!(stream, "0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A huge bulk request within the body limit is answered, not hung on.
#[tokio::test]
async fn huge_bulk_requests_are_answered() {
    let sidecar = Sidecar::start(Options::default());
    // As many keys as a bulk get takes (mecha_core::limits::MAX_BULK_ITEMS).
    let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        reqwest::Client::new()
            .post(sidecar.http("/v1.0/state/statestore/bulk"))
            .json(&serde_json::json!({ "keys": keys, "parallelism": 0 }))
            .send(),
    )
    .await
    .expect("answered in time")
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let items: Vec<serde_json::Value> = response.json().await.unwrap();
    assert_eq!(items.len(), 10_000);

    let items: Vec<String> = (0..5_000)
        .map(|i| format!(r#"{{"key":"k{i}","value":{i}}}"#))
        .collect();
    let body = format!("[{}]", items.join(","));
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/state/statestore"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

/// A value saved over gRPC that looks like JSON but is not UTF-8 is still
/// answered by an HTTP bulk get (as base64), never by a dropped connection.
#[tokio::test]
async fn bulk_get_of_values_that_are_not_json() {
    let sidecar = Sidecar::start(Options::default());
    let mut grpc = sidecar.grpc().await;
    let items = [
        ("bad-utf8", &b"\"\xff\""[..]),
        ("text", &b"plain text"[..]),
        ("json", &b"{\"a\":1}"[..]),
    ];
    let states = items
        .iter()
        .map(|(key, value)| mecha_proto::common::StateItem {
            key: (*key).into(),
            value: value.to_vec().into(),
            ..Default::default()
        })
        .collect();
    let request = pb::SaveStateRequest {
        store_name: "statestore".into(),
        states,
    };
    grpc.save_state(request).await.unwrap();
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/state/statestore/bulk"))
        .body(r#"{"keys":["bad-utf8","text","json"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let items: Vec<serde_json::Value> = response.json().await.unwrap();
    assert_eq!(items[0]["data"], "Iv8i", "base64 of the raw bytes");
    assert_eq!(items[1]["data"], "plain text");
    assert_eq!(items[2]["data"], serde_json::json!({"a": 1}));
}

#[tokio::test]
async fn grpc_bad_input() {
    let sidecar = Sidecar::start(Options::default());
    let mut grpc = sidecar.grpc().await;
    let err = grpc
        .get_state(pb::GetStateRequest {
            store_name: "statestore".into(),
            key: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = grpc
        .get_state(pb::GetStateRequest {
            store_name: "nope".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = grpc
        .get_actor_state(pb::GetActorStateRequest {
            actor_type: "A".into(),
            actor_id: String::new(),
            key: "k".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Methods not built yet are UNIMPLEMENTED.
    let err = grpc
        .get_workflow_beta1(pb::GetWorkflowRequest {
            instance_id: "i".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let err = grpc
        .invoke_binding(pb::InvokeBindingRequest {
            name: "nope".into(),
            operation: "create".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Internal,
        "daprd: INTERNAL for an unknown binding"
    );
    assert!(
        err.message().contains("error invoking output binding nope"),
        "{err:?}"
    );
    // An empty query is no JSON at all: a failed query, as in daprd.
    let err = grpc
        .query_state_alpha1(pb::QueryStateRequest {
            store_name: "statestore".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
}
