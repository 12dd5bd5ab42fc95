//! Service invocation end to end: two runtimes and two apps (HTTP and
//! gRPC), over HTTP and gRPC, through the real binary.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mecha_proto::common::{HttpExtension, InvokeRequest};
use mecha_proto::runtime as pb;
use mecha_proto::testing::v1::EchoRequest;
use mecha_proto::testing::v1::echo_client::EchoClient;
use serde_json::Value;
use tonic::Code;

use crate::apps::{App, checksum};
use crate::harness::{Options, Sidecar};

/// Runtimes that share a data directory (and so the default registry).
pub struct Host {
    data: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Self {
        Self {
            data: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts a runtime for `app_id`, in the background of an async test.
    pub async fn runtime(&self, app_id: &str, args: &[String], env: &[(&str, &str)]) -> Sidecar {
        let options = Options {
            app_id: app_id.into(),
            data_dir: Some(self.data.path().to_owned()),
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Options::default()
        };
        tokio::task::spawn_blocking(move || Sidecar::start(options))
            .await
            .unwrap()
    }
}

pub fn app_args(port: u16, protocol: &str) -> Vec<String> {
    vec![
        "--app-port".into(),
        port.to_string(),
        "--app-protocol".into(),
        protocol.into(),
    ]
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Invokes `url` until it answers `want` (up to 6 s); false if it never does.
async fn answers(url: &str, want: u16) -> bool {
    for _ in 0..60 {
        if client().post(url).send().await.unwrap().status().as_u16() == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_invocation_carries_everything_both_ways() {
    let host = Host::new();
    let app = App::http(0).await;
    let _callee = host
        .runtime("orders", &app_args(app.port, "http"), &[])
        .await;
    let caller = host.runtime("frontend", &[], &[]).await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for verb in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let response = client()
            .request(
                verb.parse().unwrap(),
                caller.http("/v1.0/invoke/orders/method/api/items/42?sort=asc&page=2"),
            )
            .header("content-type", "text/plain; charset=utf-8")
            .header("x-custom", "kept")
            .header("connection", "x-hop")
            .header("x-hop", "dropped")
            .header("traceparent", traceparent)
            .header("dapr-caller-app-id", "forged")
            .body("hello app")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{verb}");
        assert_eq!(
            response.headers()["x-from-app"],
            "yes",
            "response headers come back"
        );
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["method"], verb);
        assert_eq!(seen["path"], "/api/items/42");
        assert_eq!(seen["query"], "sort=asc&page=2");
        let headers = &seen["headers"];
        assert_eq!(headers["x-custom"], "kept");
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert!(
            headers.get("x-hop").is_none(),
            "hop-by-hop headers are removed: {headers}"
        );
        assert_eq!(
            headers["dapr-caller-app-id"], "frontend",
            "set by the runtime, not the caller"
        );
        assert_eq!(headers["dapr-callee-app-id"], "orders");
        let propagated = headers["traceparent"].as_str().unwrap();
        assert!(
            propagated.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "same trace: {propagated}"
        );
        assert_ne!(propagated, traceparent, "a new parent id per hop");
        if verb != "GET" {
            assert_eq!(seen["length"], 9);
        }
    }
    // Non-2xx answers reach the caller as they are.
    for status in [201, 404, 409, 500, 503] {
        let response = client()
            .post(caller.http(&format!("/v1.0/invoke/orders/method/x?status={status}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["path"], "/x", "the app's own body");
    }
    // A traceparent is created when the caller sent none.
    client()
        .get(caller.http("/v1.0/invoke/orders/method/t"))
        .send()
        .await
        .unwrap();
    let created = app.state.last_headers.lock().unwrap()["traceparent"].clone();
    assert_eq!(created.len(), 55, "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_ways_to_name_the_target() {
    let host = Host::new();
    let app = App::http(0).await;
    let env = [("NAMESPACE", "prod")];
    let _callee = host
        .runtime("orders", &app_args(app.port, "http"), &env)
        .await;
    let caller = host.runtime("frontend", &[], &env).await;
    // dapr-app-id on any path: the path is the method.
    let response = client()
        .put(caller.http("/any/path?q=1"))
        .header("dapr-app-id", "orders")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(
        (seen["path"].as_str(), seen["query"].as_str()),
        (Some("/any/path"), Some("q=1"))
    );
    assert!(seen["headers"].get("dapr-app-id").is_none());
    // Basic auth naming the app id.
    let response = client()
        .get(caller.http("/basic"))
        .basic_auth("dapr-app-id", Some("orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // Namespaced ids.
    let ok = client()
        .get(caller.http("/v1.0/invoke/orders.prod/method/ns"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let other = client()
        .get(caller.http("/v1.0/invoke/orders.dev/method/ns"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 500);
    let invalid = client()
        .get(caller.http("/v1.0/invoke/a.b.c/method/ns"))
        .send()
        .await
        .unwrap();
    // daprd: an app id it cannot use fails the invocation, 500 (gRPC
    // INTERNAL), as does an empty one on InvokeService.
    assert_eq!(invalid.status().as_u16(), 500);
    let body: Value = invalid.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    let mut grpc = caller.grpc().await;
    for id in ["a.b.c", ""] {
        let err = grpc
            .invoke_service(pb::InvokeServiceRequest {
                id: id.into(),
                message: Some(InvokeRequest {
                    method: "ns".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{id:?}: {err:?}");
        assert!(
            err.message().starts_with("failed to invoke, id: "),
            "{err:?}"
        );
    }
    // Self-invocation goes straight to the local app.
    let myself = host
        .runtime("self-caller", &app_args(app.port, "http"), &env)
        .await;
    let response = client()
        .get(myself.http("/v1.0/invoke/self-caller/method/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_of_a_grpc_app() {
    let host = Host::new();
    let app = App::grpc(0).await;
    let _callee = host
        .runtime("grpc-app", &app_args(app.port, "grpc"), &[])
        .await;
    let caller = host.runtime("caller", &[], &[]).await;
    // Over HTTP: OnInvoke gets the method, verb, query, data and metadata.
    let response = client()
        .post(caller.http("/v1.0/invoke/grpc-app/method/compute?x=1"))
        .header("content-type", "application/json")
        .header("x-custom", "meta")
        .body(r#"{"n":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "compute");
    assert_eq!(seen["verb"], 3, "POST");
    assert_eq!(seen["query"], "x=1");
    assert_eq!(seen["data"], r#"{"n":5}"#);
    assert_eq!(seen["contentType"], "application/json");
    assert_eq!(seen["metadata"]["x-custom"], "meta");
    assert_eq!(seen["metadata"]["dapr-caller-app-id"], "caller");
    // A gRPC error of the app becomes the HTTP status of its code.
    let failed = client()
        .post(caller.http("/v1.0/invoke/grpc-app/method/fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status().as_u16(), 404);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["code"], 5);
    assert_eq!(body["message"], "no such thing");
    let failed = client()
        .post(caller.http("/v1.0/invoke/grpc-app/method/fail-detailed"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status().as_u16(), 400);
    assert_eq!(failed.headers()["x-app-said"], "why");
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert_eq!(body["message"], "bad input: n must be positive");
    assert_eq!(
        body["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );

    // Over gRPC InvokeService (the Python SDK's gRPC path).
    let mut grpc = caller.grpc().await;
    let request = pb::InvokeServiceRequest {
        id: "grpc-app".into(),
        message: Some(InvokeRequest {
            method: "compute".into(),
            data: Some(prost_types::Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: b"raw".to_vec(),
            }),
            content_type: String::new(),
            http_extension: Some(HttpExtension {
                verb: 4,
                querystring: "a=b".into(),
            }),
        }),
    };
    let answer = grpc.invoke_service(request).await.unwrap().into_inner();
    let seen: Value = serde_json::from_slice(&answer.data.unwrap().value).unwrap();
    assert_eq!(
        (seen["verb"].as_i64(), seen["typeUrl"].as_str()),
        (Some(4), Some("type.googleapis.com/x.Y"))
    );
    assert_eq!(seen["data"], "raw");
    // The app's error reaches the caller whole, as daprd passes it: the
    // code (INVALID_ARGUMENT, which a trip through HTTP would turn into
    // INTERNAL), the message, the details and the metadata.
    for method in ["fail", "fail-detailed"] {
        let err = grpc
            .invoke_service(pb::InvokeServiceRequest {
                id: "grpc-app".into(),
                message: Some(InvokeRequest {
                    method: method.into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        if method == "fail" {
            assert_eq!(err.code(), Code::NotFound);
            assert_eq!(err.message(), "no such thing");
            continue;
        }
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(err.message(), "bad input: n must be positive");
        let violations = tonic_types::StatusExt::get_details_bad_request(&err)
            .expect("the app's details")
            .field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(
            (
                violations[0].field.as_str(),
                violations[0].description.as_str()
            ),
            ("n", "must be positive")
        );
        assert!(
            tonic_types::StatusExt::get_details_error_info(&err).is_none(),
            "nothing of the runtime's is added"
        );
        assert_eq!(err.metadata().get("x-app-said").unwrap(), "why");
        assert!(err.metadata().get("dapr-http-status").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_service_to_an_http_app() {
    let host = Host::new();
    let app = App::http(0).await;
    let _callee = host.runtime("web", &app_args(app.port, "http"), &[]).await;
    let caller = host.runtime("caller", &[], &[]).await;
    let mut grpc = caller.grpc().await;
    let request = |query: &str| pb::InvokeServiceRequest {
        id: "web".into(),
        message: Some(InvokeRequest {
            method: "things".into(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: b"abc".to_vec(),
            }),
            content_type: "text/plain".into(),
            http_extension: Some(HttpExtension {
                verb: 3,
                querystring: query.into(),
            }),
        }),
    };
    let response = grpc.invoke_service(request("k=v")).await.unwrap();
    assert_eq!(response.metadata().get("dapr-http-status").unwrap(), "200");
    let answer = response.into_inner();
    assert_eq!(answer.content_type, "application/json");
    let seen: Value = serde_json::from_slice(&answer.data.unwrap().value).unwrap();
    assert_eq!(
        (seen["method"].as_str(), seen["query"].as_str()),
        (Some("POST"), Some("k=v"))
    );
    assert_eq!(seen["headers"]["content-type"], "text/plain");
    assert_eq!(seen["length"], 3);
    // A non-2xx answer is a gRPC error with daprd's code and the status.
    let err = grpc
        .invoke_service(request("status=404"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.metadata().get("dapr-http-status").unwrap(), "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_proxying_unary_and_streaming() {
    let host = Host::new();
    let app = App::grpc(0).await;
    let _callee = host.runtime("echo", &app_args(app.port, "grpc"), &[]).await;
    let caller = host.runtime("caller", &[], &[]).await;
    let mut echo = EchoClient::new(caller.channel().await);
    let request = |payload: &str, count: u32, fail_code: i32| {
        let mut request = tonic::Request::new(EchoRequest {
            payload: payload.as_bytes().to_vec().into(),
            count,
            fail_code,
        });
        request
            .metadata_mut()
            .insert("dapr-app-id", "echo".parse().unwrap());
        request
            .metadata_mut()
            .insert("x-user-meta", "carried".parse().unwrap());
        request
    };
    let response = echo.unary(request("ping", 0, 0)).await.unwrap();
    assert_eq!(
        response.metadata().get("x-echo-header").unwrap(),
        "present",
        "response metadata"
    );
    let reply = response.into_inner();
    assert_eq!(&reply.payload[..], b"ping");
    assert_eq!(reply.metadata["x-user-meta"], "carried");
    assert_eq!(reply.metadata["dapr-caller-app-id"], "caller");
    // Server streaming.
    let mut stream = echo
        .server_stream(request("tick", 25, 0))
        .await
        .unwrap()
        .into_inner();
    let mut indexes = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        indexes.push(reply.index);
    }
    assert_eq!(indexes, (0..25).collect::<Vec<_>>());
    // Client streaming.
    let messages: Vec<EchoRequest> = (0..10)
        .map(|_| EchoRequest {
            payload: b"ab".to_vec().into(),
            count: 0,
            fail_code: 0,
        })
        .collect();
    let mut streaming = tonic::Request::new(futures::stream::iter(messages));
    streaming
        .metadata_mut()
        .insert("dapr-app-id", "echo".parse().unwrap());
    let reply = echo.client_stream(streaming).await.unwrap().into_inner();
    assert_eq!((reply.index, reply.payload.len()), (10, 20));
    // The app's status comes back as it is.
    let err = echo
        .unary(request("x", 0, Code::PermissionDenied as i32))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "failed on purpose with 7");
    // An unknown target is an error, at once.
    let mut unknown = tonic::Request::new(EchoRequest::default());
    unknown
        .metadata_mut()
        .insert("dapr-app-id", "nobody".parse().unwrap());
    let err = echo.unary(unknown).await.unwrap_err();
    // daprd's proxy: a target it cannot find is UNKNOWN.
    assert_eq!(err.code(), Code::Unknown);
    assert!(
        err.message().contains("couldn't find service"),
        "{}",
        err.message()
    );
    // So is a call to a service the runtime does not serve, with no target.
    let err = echo
        .unary(tonic::Request::new(EchoRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(
        err.message(),
        "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found"
    );
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_with_flat_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    let host = Host::new();
    let app = App::http(0).await;
    let big = ["--max-body-size".to_owned(), "200Mi".to_owned()];
    let mut callee_args = app_args(app.port, "http");
    callee_args.extend(big.iter().cloned());
    let callee = host.runtime("store", &callee_args, &[]).await;
    let caller = host.runtime("uploader", &big, &[]).await;
    let before = [caller.pid(), callee.pid()].map(|pid| rss_mb(pid, "VmRSS:"));

    // Upload: 100 MB generated as it is sent, never held whole.
    let chunk = bytes::Bytes::from(vec![3u8; 1024 * 1024]);
    let expected = (0..100).fold(0u64, |sum, _| checksum(sum, &chunk));
    let body = futures::stream::iter((0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let response = client()
        .post(caller.http("/v1.0/invoke/store/method/upload"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["length"], SIZE as u64);
    assert_eq!(seen["checksum"], expected);

    // Download: 100 MB streamed back.
    let response = client()
        .get(caller.http(&format!("/v1.0/invoke/store/method/download?bytes={SIZE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let mut received = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        received += chunk.unwrap().len();
    }
    assert_eq!(received, SIZE);
    for ((name, pid), before) in [("caller", caller.pid()), ("callee", callee.pid())]
        .into_iter()
        .zip(before)
    {
        // A body held whole would add 100 MB. What streaming adds is the
        // HTTP/2 windows (5 MB a connection, 2 MB a stream), the HTTP/1
        // buffers, and pages the allocator has not returned yet: 8-18 MB
        // on the caller, in release and debug builds alike, before and
        // after the small-call path; once 28 MB in a debug build.
        let peak = rss_mb(pid, "VmHWM:");
        assert!(
            peak - before < 40.0,
            "the {name} runtime's memory stayed flat: peak {peak:.1} MB from {before:.1} MB for 100 MB bodies"
        );
    }

    // At the default limit (4Mi), a bigger body is refused with Dapr's error.
    let small_limit = host.runtime("limited", &[], &[]).await;
    let response = client()
        .post(small_limit.http("/v1.0/invoke/store/method/upload"))
        .body(vec![1u8; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    // daprd: the read fails, and a failed invocation is a 500.
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("stream too large"),
        "{body}"
    );
    // Also when the length is not declared (chunked): the body is cut off
    // at the limit, never delivered whole; the sender gets the 500 or, if it
    // keeps writing after the answer, a closed connection.
    app.state.last_complete.store(0, Ordering::SeqCst);
    let chunk = bytes::Bytes::from(vec![1u8; 1024 * 1024]);
    let body = futures::stream::iter((0..6).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let outcome = client()
        .post(small_limit.http("/v1.0/invoke/store/method/upload"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    if let Ok(response) = outcome {
        assert_eq!(response.status().as_u16(), 500);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.state.last_complete.load(Ordering::SeqCst),
        0,
        "the app never receives the oversized body whole"
    );
}

/// Server-side connections established on 127.0.0.1:`port`.
fn established_on(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// A small call goes over HTTP/2 to a runtime first; its answer says that
/// the runtime's internal port takes small calls over HTTP/1.1, and later
/// ones go over one pooled HTTP/1.1 connection. That port takes nothing
/// else over HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_calls_move_to_http1_once_the_callee_says_it_takes_them() {
    use mecha_proto::internal::v1::{RequestHead, ResponseHead};
    use prost::Message;

    let host = Host::new();
    let app = App::http(0).await;
    let callee = host
        .runtime("h1-orders", &app_args(app.port, "http"), &[])
        .await;
    let caller = host.runtime("h1-frontend", &[], &[]).await;
    let port = crate::auth::internal_port(&callee);
    let call = || async {
        let response = client()
            .post(caller.http("/v1.0/invoke/h1-orders/method/small"))
            .body("small")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["headers"]["dapr-caller-app-id"], "h1-frontend");
        assert_eq!(seen["length"], 5);
    };
    assert_eq!(established_on(port), 0);
    call().await;
    assert_eq!(established_on(port), 1, "the first call: HTTP/2");
    for _ in 0..5 {
        call().await;
    }
    assert_eq!(
        established_on(port),
        2,
        "the HTTP/2 connection, and one HTTP/1.1 connection for every later call"
    );

    // The port's side of it, asked directly.
    let head = RequestHead {
        target_app_id: "h1-orders".into(),
        method: "direct".into(),
        verb: "POST".into(),
        caller_app_id: "tester".into(),
        body: Some(b"hi".to_vec().into()),
        ..RequestHead::default()
    };
    let whole = format!("http://127.0.0.1:{port}/mecha.internal.v1.Invocation/Whole");
    let response = client()
        .post(&whole)
        .header("content-type", "application/x-mecha-whole")
        .body(head.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.headers()["x-mecha-http1"], "1");
    let bytes = response.bytes().await.unwrap();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 4 + len, "the head holds the whole answer");
    let answer = ResponseHead::decode(&bytes[4..]).unwrap();
    assert_eq!(answer.status, 200);
    let seen: Value = serde_json::from_slice(&answer.body.unwrap()).unwrap();
    assert_eq!(seen["path"], "/direct");
    assert_eq!(seen["headers"]["dapr-caller-app-id"], "tester");
    assert_eq!(seen["length"], 2);

    // gRPC needs HTTP/2: over HTTP/1.1 the port refuses it.
    let grpc = client()
        .post(format!(
            "http://127.0.0.1:{port}/dapr.proto.runtime.v1.Dapr/GetMetadata"
        ))
        .header("content-type", "application/grpc")
        .body(vec![0, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.status().as_u16(), 400);
}

/// Bodies of known length up to 64 KiB travel between runtimes whole in
/// one message each way; longer ones, and any of unknown length, in
/// frames. Every size either side of that line arrives whole and intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_either_side_of_the_one_message_limit() {
    const WHOLE_MAX: usize = 64 * 1024;
    let host = Host::new();
    let app = App::http(0).await;
    let _callee = host
        .runtime("sizes", &app_args(app.port, "http"), &[])
        .await;
    let caller = host.runtime("sizer", &[], &[]).await;
    for size in [0, 1, WHOLE_MAX - 1, WHOLE_MAX, WHOLE_MAX + 1, 300 * 1024] {
        let body = vec![5u8; size];
        let response = client()
            .post(caller.http("/v1.0/invoke/sizes/method/up"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "request of {size} bytes");
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["length"], size as u64, "request of {size} bytes");
        assert_eq!(
            seen["checksum"],
            checksum(0, &body),
            "request of {size} bytes"
        );
        // Answers of declared length, and in chunks of unknown length.
        for shape in ["&whole", ""] {
            let response = client()
                .get(caller.http(&format!(
                    "/v1.0/invoke/sizes/method/download?bytes={size}{shape}"
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "answer of {size}{shape}");
            let answer = response.bytes().await.unwrap();
            assert_eq!(answer.len(), size, "answer of {size}{shape}");
            assert!(answer.iter().all(|b| *b == 7), "answer of {size}{shape}");
        }
    }
    // An answer of declared length whose body fails reaches the caller as
    // a broken answer (before or after its head, as the caller's HTTP
    // server manages), never as an error of the runtimes; and the next
    // call goes through.
    for size in [1000, 300 * 1024] {
        let sent = client()
            .get(caller.http(&format!(
                "/v1.0/invoke/sizes/method/download?bytes={size}&fail"
            )))
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            let body = response.bytes().await;
            assert_eq!(status, 200, "failing answer of {size}: {body:?}");
            assert!(
                body.is_err(),
                "a failing answer of {size} bytes reads as a failure"
            );
        }
        let next = client()
            .get(caller.http("/v1.0/invoke/sizes/method/download?bytes=10&whole"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            next.status().as_u16(),
            200,
            "the call after a failing answer"
        );
        assert_eq!(next.bytes().await.unwrap().len(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_down_then_recovered() {
    let host = Host::new();
    let app = App::http(0).await;
    let port = app.port;
    let _callee = host.runtime("flaky", &app_args(port, "http"), &[]).await;
    let caller = host.runtime("caller", &[], &[]).await;
    let call = || {
        client()
            .get(caller.http("/v1.0/invoke/flaky/method/ping"))
            .send()
    };
    assert_eq!(call().await.unwrap().status().as_u16(), 200);
    drop(app);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = call().await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("error invoking app channel"),
        "{body}"
    );
    let _app = App::http(port).await;
    let mut recovered = false;
    for _ in 0..50 {
        if call().await.unwrap().status().as_u16() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "calls succeed again once the app is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_enforced_both_ways() {
    let host = Host::new();
    let http_app = App::http(0).await;
    let grpc_app = App::grpc(0).await;
    let app_token = [("APP_API_TOKEN", "to-the-app")];
    let _web = host
        .runtime("web", &app_args(http_app.port, "http"), &app_token)
        .await;
    let _svc = host
        .runtime("svc", &app_args(grpc_app.port, "grpc"), &app_token)
        .await;
    let caller = host
        .runtime("caller", &[], &[("DAPR_API_TOKEN", "to-the-runtime")])
        .await;
    let without = client()
        .get(caller.http("/v1.0/invoke/web/method/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status().as_u16(), 401);
    let with = client()
        .get(caller.http("/v1.0/invoke/web/method/x"))
        .header("dapr-api-token", "to-the-runtime")
        .send()
        .await
        .unwrap();
    assert_eq!(with.status().as_u16(), 200);
    let seen: Value = with.json().await.unwrap();
    assert_eq!(
        seen["headers"]["dapr-api-token"], "to-the-app",
        "APP_API_TOKEN, never the caller's token"
    );
    let with = client()
        .post(caller.http("/v1.0/invoke/svc/method/m"))
        .header("dapr-api-token", "to-the-runtime")
        .send()
        .await
        .unwrap();
    let seen: Value = with.json().await.unwrap();
    assert_eq!(seen["metadata"]["dapr-api-token"], "to-the-app");
    // gRPC proxying needs the runtime's token too.
    let mut echo = EchoClient::new(caller.channel().await);
    let mut request = tonic::Request::new(EchoRequest::default());
    request
        .metadata_mut()
        .insert("dapr-app-id", "svc".parse().unwrap());
    assert_eq!(
        echo.unary(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut request = tonic::Request::new(EchoRequest::default());
    request
        .metadata_mut()
        .insert("dapr-app-id", "svc".parse().unwrap());
    request
        .metadata_mut()
        .insert("dapr-api-token", "to-the-runtime".parse().unwrap());
    let reply = echo.unary(request).await.unwrap().into_inner();
    assert_eq!(reply.metadata["dapr-api-token"], "to-the-app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_queues_then_refuses() {
    let host = Host::new();
    let app = App::http(0).await;
    let mut args = app_args(app.port, "http");
    args.extend(["--app-max-concurrency".to_owned(), "1".to_owned()]);
    let _callee = host.runtime("narrow", &args, &[]).await;
    let caller = host.runtime("caller", &[], &[]).await;
    let calls: Vec<_> = (0..14)
        .map(|_| {
            let url = caller.http("/v1.0/invoke/narrow/method/slow");
            tokio::spawn(async move { client().get(url).send().await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for call in calls {
        let response = call.await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                refused += 1;
                let body: Value = response.json().await.unwrap();
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("--app-max-concurrency of 1"),
                    "{body}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        app.state.max_in_flight.load(Ordering::SeqCst),
        1,
        "never more than one call in the app"
    );
    assert!(ok >= 9, "one in the app and eight waiting are served: {ok}");
    assert!(refused >= 1, "the rest are refused: {refused}");
}

/// A slot stands for work in the app: callers that hang up never let more
/// than `--app-max-concurrency` calls run in the app, and a call whose
/// caller left while it waited in line never reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_when_callers_hang_up() {
    let host = Host::new();
    let app = App::http(0).await;
    let mut args = app_args(app.port, "http");
    args.extend(["--app-max-concurrency".to_owned(), "2".to_owned()]);
    let callee = host.runtime("narrow2", &args, &[]).await;
    let url = callee.http("/v1.0/invoke/narrow2/method/slow");
    // Five rounds of four waiters who hang up: more than the line holds
    // (16), so a line that kept them would refuse the last rounds.
    for round in 1..=5 {
        // Six callers that give up long before the app (300 ms) answers.
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    client()
                        .get(url)
                        .timeout(Duration::from_millis(100))
                        .send()
                        .await
                })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_err(), "the caller gave up");
        }
        // The two calls in the app end; the four that waited never start.
        let deadline = Instant::now() + Duration::from_secs(5);
        while app.state.in_flight.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "the app's calls never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(app.state.slow_calls.load(Ordering::SeqCst), 2 * round);
    }
    assert_eq!(app.state.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_stop_and_resume_delivery() {
    let host = Host::new();
    let app = App::http(0).await;
    let mut args = app_args(app.port, "http");
    args.extend(
        [
            "--enable-app-health-check",
            "--app-health-check-path",
            "/healthz",
            "--app-health-probe-interval",
            "1",
            "--app-health-threshold",
            "1",
        ]
        .map(String::from),
    );
    let _callee = host.runtime("checked", &args, &[]).await;
    let caller = host.runtime("caller", &[], &[]).await;
    let url = caller.http("/v1.0/invoke/checked/method/x");
    let status = || async { client().post(&url).send().await.unwrap().status().as_u16() };
    let wait_for = |want: u16| answers(&url, want);
    assert!(wait_for(200).await, "healthy at first");
    app.state.healthy.store(false, Ordering::SeqCst);
    assert!(wait_for(500).await, "refused while unhealthy");
    let calls_before = app.state.calls.load(Ordering::SeqCst);
    assert_eq!(status().await, 500);
    assert_eq!(
        app.state.calls.load(Ordering::SeqCst),
        calls_before,
        "nothing reaches an unhealthy app"
    );
    app.state.healthy.store(true, Ordering::SeqCst);
    assert!(wait_for(200).await, "delivered again once it recovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_waits_for_the_app_port() {
    let port = crate::harness::free_port();
    let options = Options {
        app_id: "late".into(),
        args: app_args(port, "http"),
        wait_healthy: false,
        ..Options::default()
    };
    let mut sidecar = tokio::task::spawn_blocking(move || Sidecar::start(options))
        .await
        .unwrap();
    let outbound = sidecar.http("/v1.0/healthz/outbound");
    let healthz = sidecar.http("/v1.0/healthz");
    let mut outbound_ready = false;
    for _ in 0..100 {
        if crate::harness::http_status(&outbound) == Some(204) {
            outbound_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(outbound_ready, "outbound health does not wait for the app");
    assert_eq!(
        crate::harness::http_status(&healthz),
        Some(500),
        "not ready without its app"
    );
    let _app = App::http(port).await;
    tokio::task::spawn_blocking(move || {
        sidecar.wait_healthy();
        sidecar
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_over_instances_of_an_app() {
    let host = Host::new();
    let (one, two) = (App::http(0).await, App::http(0).await);
    let _first = host
        .runtime("scaled", &app_args(one.port, "http"), &[])
        .await;
    let _second = host
        .runtime("scaled", &app_args(two.port, "http"), &[])
        .await;
    let caller = host.runtime("caller", &[], &[]).await;
    for _ in 0..20 {
        let response = client()
            .get(caller.http("/v1.0/invoke/scaled/method/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let (a, b) = (
        one.state.calls.load(Ordering::SeqCst),
        two.state.calls.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 20);
    assert!(a >= 5 && b >= 5, "both instances served calls: {a} and {b}");
}

/// Runtimes that find each other with mDNS (`nameResolution: mdns` in
/// their Configuration) instead of the default registry: each has its own
/// data directory, so only multicast can connect them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_through_mdns_name_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::harness::mdns_configuration(dir.path());
    let app = App::http(0).await;
    let app_id = format!("lan-app-{}", std::process::id());
    let mut args = app_args(app.port, "http");
    args.extend(["--config".to_owned(), config.to_string_lossy().into_owned()]);
    let (callee_host, caller_host) = (Host::new(), Host::new());
    let _callee = callee_host.runtime(&app_id, &args, &[]).await;
    let caller = caller_host
        .runtime(
            "lan-caller",
            &["--config".to_owned(), config.to_string_lossy().into_owned()],
            &[],
        )
        .await;
    let url = caller.http(&format!("/v1.0/invoke/{app_id}/method/found"));
    let mut status = 0;
    for _ in 0..50 {
        status = client().get(&url).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "found over mDNS");
    assert_eq!(
        app.state.last_headers.lock().unwrap()["dapr-caller-app-id"],
        "lan-caller"
    );
}

/// The other app protocols: h2c (HTTP/2 without TLS), https and grpcs (TLS,
/// certificates not verified, as daprd does), and health checks of a gRPC
/// app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_protocol() {
    let host = Host::new();
    let h2c_app = App::http(0).await;
    let https_app = App::https().await;
    let grpcs_app = App::grpcs().await;
    let _h2c = host
        .runtime("h2c-app", &app_args(h2c_app.port, "h2c"), &[])
        .await;
    let _https = host
        .runtime("https-app", &app_args(https_app.port, "https"), &[])
        .await;
    let _grpcs = host
        .runtime("grpcs-app", &app_args(grpcs_app.port, "grpcs"), &[])
        .await;
    let caller = host.runtime("caller", &[], &[]).await;
    for app in ["h2c-app", "https-app"] {
        let response = client()
            .post(caller.http(&format!("/v1.0/invoke/{app}/method/p?q=1")))
            .body("over the wire")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{app}");
        let seen: Value = response.json().await.unwrap();
        assert_eq!(
            (seen["path"].as_str(), seen["length"].as_u64()),
            (Some("/p"), Some(13)),
            "{app}"
        );
    }
    let response = client()
        .post(caller.http("/v1.0/invoke/grpcs-app/method/secure"))
        .body("tls")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(
        (seen["method"].as_str(), seen["data"].as_str()),
        (Some("secure"), Some("tls"))
    );
    // Proxied gRPC to a grpcs app.
    let mut echo = EchoClient::new(caller.channel().await);
    let mut request = tonic::Request::new(EchoRequest {
        payload: b"sealed".to_vec().into(),
        count: 0,
        fail_code: 0,
    });
    request
        .metadata_mut()
        .insert("dapr-app-id", "grpcs-app".parse().unwrap());
    assert_eq!(
        &echo.unary(request).await.unwrap().into_inner().payload[..],
        b"sealed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_of_a_grpc_app() {
    let host = Host::new();
    let app = App::grpc(0).await;
    let mut args = app_args(app.port, "grpc");
    args.extend(
        [
            "--enable-app-health-check",
            "--app-health-probe-interval",
            "1",
            "--app-health-threshold",
            "1",
        ]
        .map(String::from),
    );
    let _callee = host.runtime("checked-grpc", &args, &[]).await;
    let caller = host.runtime("caller", &[], &[]).await;
    let url = caller.http("/v1.0/invoke/checked-grpc/method/m");
    let wait_for = |want: u16| answers(&url, want);
    assert!(wait_for(200).await, "healthy at first");
    app.state.healthy.store(false, Ordering::SeqCst);
    assert!(
        wait_for(500).await,
        "AppCallbackHealthCheck failing marks it unhealthy"
    );
    app.state.healthy.store(true, Ordering::SeqCst);
    assert!(wait_for(200).await, "and it recovers");
}
