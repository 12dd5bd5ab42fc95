//! `bindings.http` against the output binding conformance suite, on a real
//! HTTP server on loopback (this test's own axum server: it stores bodies
//! by path and echoes what it was sent), plus methods, headers, paths,
//! status handling and limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, put};
use mecha_bindings::conformance::OutputHarness;
use mecha_bindings::*;
use mecha_component_http::{HttpBinding, HttpBindingConfig};
use mecha_core::testing::unique;
use mecha_core::{MetadataReader, Properties};
use tokio::sync::OnceCell;

type Stored = Arc<Mutex<HashMap<String, Bytes>>>;

async fn store_body(
    State(stored): State<Stored>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    stored.lock().unwrap().insert(id, body);
    StatusCode::NO_CONTENT
}

async fn stored_body(
    State(stored): State<Stored>,
    Path(id): Path<String>,
) -> axum::response::Response {
    match stored.lock().unwrap().get(&id) {
        Some(body) => body.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Answers what it was sent: the method, path, headers and body as JSON.
async fn echo(
    method: Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> impl IntoResponse {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let status = if uri.path().ends_with("/teapot") {
        StatusCode::IM_A_TEAPOT
    } else {
        StatusCode::OK
    };
    (
        status,
        axum::response::AppendHeaders([("x-echo", "yes"), ("x-echo", "twice")]),
        serde_json::json!({
            "method": method.as_str(),
            "path": uri.path(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        })
        .to_string(),
    )
}

async fn big() -> String {
    "x".repeat(4096)
}

/// The server's base URL, started once.
async fn server() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        let app = Router::new()
            .route("/store/{id}", put(store_body).get(stored_body))
            .route("/big", any(big))
            .route("/echo", any(echo))
            .route("/echo/{*rest}", any(echo))
            .with_state(Stored::default());
        // The server outlives each test's runtime: it runs on its own, and
        // its socket is registered there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            })
        });
        format!("http://{address}")
    })
    .await
}

async fn binding(path: &str, extra: &[(&str, &str)]) -> HttpBinding {
    let mut props = Properties::new().with("url", &format!("{}{path}", server().await));
    for (k, v) in extra {
        props = props.with(k, v);
    }
    let reader = MetadataReader::new(&props);
    let config = HttpBindingConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    HttpBinding::new(config)
}

#[derive(Default)]
struct HttpOutput;

#[async_trait]
impl OutputHarness for HttpOutput {
    async fn component(&self) -> Option<Arc<dyn OutputBinding>> {
        Some(Arc::new(binding("/store", &[]).await))
    }

    fn operations(&self) -> &'static [&'static str] {
        &[
            "create", "get", "head", "post", "put", "patch", "delete", "options", "trace",
        ]
    }

    fn write_then_read(&self, data: &[u8]) -> Option<(InvokeRequest, InvokeRequest)> {
        let id = unique("item");
        Some((
            InvokeRequest::new("put", data.to_vec()).with("path", &id),
            InvokeRequest::new("get", "").with("path", &id),
        ))
    }
}

mecha_bindings::output_binding_conformance!(HttpOutput);

fn echoed(answer: &InvokeResponse) -> serde_json::Value {
    serde_json::from_slice(&answer.data).unwrap()
}

#[tokio::test]
async fn methods_paths_and_headers() {
    let binding = binding(
        "/echo",
        &[
            ("securityToken", "s3cret"),
            ("securityTokenHeader", "X-Token"),
        ],
    )
    .await;
    let answer = binding
        .invoke(
            &InvokeRequest::new("create", "{\"a\":1}")
                .with("path", "/orders/1")
                .with("X-Custom", "value")
                .with(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .with("lowercase", "not a header"),
        )
        .await
        .unwrap()
        .unwrap();
    let sent = echoed(&answer);
    assert_eq!(sent["method"], "POST", "create is POST");
    assert_eq!(sent["path"], "/echo/orders/1");
    assert_eq!(sent["body"], "{\"a\":1}");
    assert_eq!(sent["headers"]["x-custom"], "value");
    assert_eq!(sent["headers"]["x-token"], "s3cret");
    assert_eq!(
        sent["headers"]["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(
        sent["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(sent["headers"].get("lowercase").is_none());
    assert_eq!(answer.metadata["statusCode"], "200");
    assert_eq!(answer.metadata["status"], "200 OK");
    assert_eq!(answer.metadata["X-Echo"], "yes, twice");

    for (operation, method) in [
        ("get", "GET"),
        ("delete", "DELETE"),
        ("patch", "PATCH"),
        ("put", "PUT"),
        ("options", "OPTIONS"),
    ] {
        let answer = binding
            .invoke(&InvokeRequest::new(operation, "body"))
            .await
            .unwrap()
            .unwrap();
        let sent = echoed(&answer);
        assert_eq!(sent["method"], method);
        let with_body = matches!(method, "PATCH" | "PUT");
        assert_eq!(
            sent["body"],
            if with_body { "body" } else { "" },
            "{method}"
        );
    }
    let answer = binding
        .invoke(&InvokeRequest::new("head", ""))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.metadata["statusCode"], "200");
    assert!(answer.data.is_empty());
}

#[tokio::test]
async fn statuses_paths_and_limits() {
    let binding = binding("/echo", &[]).await;
    // Not 2xx: an error, with the response's metadata.
    let err = binding
        .invoke(&InvokeRequest::new("get", "").with("path", "teapot"))
        .await
        .unwrap_err();
    match err {
        BindingError::Answered { message, metadata } => {
            assert!(message.contains("418"), "{message}");
            assert_eq!(metadata["statusCode"], "418");
        }
        other => panic!("expected the server's answer, got {other}"),
    }
    // ... unless asked not to.
    let answer = binding
        .invoke(
            &InvokeRequest::new("get", "")
                .with("path", "teapot")
                .with("errorIfNot2XX", "false"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.metadata["statusCode"], "418");
    let lenient = self::binding("/echo", &[("errorIfNot2XX", "false")]).await;
    let answer = lenient
        .invoke(&InvokeRequest::new("get", "").with("path", "teapot"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.metadata["status"], "418 I'm a teapot");

    let err = binding
        .invoke(&InvokeRequest::new("get", "").with("path", "../admin"))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");
    let err = binding
        .invoke(&InvokeRequest::new("get", "").with("Bad Header", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");

    let small = self::binding("/big", &[("maxResponseBodySize", "1Ki")]).await;
    let err = small
        .invoke(&InvokeRequest::new("get", ""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("maxResponseBodySize"), "{err}");
    let roomy = self::binding("/big", &[("maxResponseBodySize", "8Ki")]).await;
    let answer = roomy
        .invoke(&InvokeRequest::new("get", ""))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.data.len(), 4096);

    // Nothing listening: an error, not a hang.
    let props = Properties::new()
        .with("url", "http://127.0.0.1:9")
        .with("responseTimeout", "2s");
    let reader = MetadataReader::new(&props);
    let down = HttpBinding::new(HttpBindingConfig::from_metadata(&reader));
    let err = down
        .invoke(&InvokeRequest::new("get", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Backend(_)), "{err}");
}

#[test]
fn metadata_is_checked() {
    for (props, problem) in [
        (Properties::new(), "url"),
        (Properties::new().with("url", "ftp://host/"), "url"),
        (
            Properties::new()
                .with("url", "http://h/")
                .with("securityToken", "t"),
            "securityToken",
        ),
        (
            Properties::new()
                .with("url", "http://h/")
                .with("maxResponseBodySize", "lots"),
            "maxResponseBodySize",
        ),
    ] {
        let reader = MetadataReader::new(&props);
        let _ = HttpBindingConfig::from_metadata(&reader);
        let errors = reader.errors();
        assert!(
            errors.iter().any(|e| e.contains(problem)),
            "{problem}: {errors:?}"
        );
    }
}
