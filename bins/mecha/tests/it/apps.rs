//! Apps for end-to-end tests, running in the test process: an HTTP app
//! (axum) and a gRPC app (tonic) that report what reached them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::StreamExt;
use mecha_proto::common::{InvokeRequest, InvokeResponse};
use mecha_proto::runtime::app_callback_health_check_server::{
    AppCallbackHealthCheck, AppCallbackHealthCheckServer,
};
use mecha_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use mecha_proto::runtime::{
    BindingEventRequest, BindingEventResponse, HealthCheckResponse, JobEventRequest,
    JobEventResponse, ListInputBindingsResponse, ListTopicSubscriptionsResponse,
    TopicEventBulkRequest, TopicEventBulkResponse, TopicEventBulkResponseEntry, TopicEventRequest,
    TopicEventResponse, TopicSubscription,
};
use mecha_proto::testing::v1::echo_server::{Echo, EchoServer};
use mecha_proto::testing::v1::{EchoReply, EchoRequest};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Status, Streaming};

/// What an app observed and can be told to do.
#[derive(Default)]
pub struct AppState {
    pub healthy: AtomicBool,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub calls: AtomicUsize,
    /// Calls of `/slow` that reached the app.
    pub slow_calls: AtomicUsize,
    /// The length of the last body read to its end.
    pub last_complete: std::sync::atomic::AtomicU64,
    pub last_headers: Mutex<BTreeMap<String, String>>,
    /// What `GET /dapr/subscribe` answers (404 when `None`).
    pub subscriptions: Mutex<Option<serde_json::Value>>,
    /// Until when `GET /dapr/subscribe` answers 503 (an app warming up).
    pub warming_until: Mutex<Option<std::time::Instant>>,
    /// How many times `GET /dapr/subscribe` was asked.
    pub subscribe_asked: AtomicUsize,
    /// What `ListTopicSubscriptions` answers.
    pub grpc_subscriptions: Mutex<Vec<TopicSubscription>>,
    /// Every event delivered, in order.
    pub events: Mutex<Vec<Received>>,
    /// Deliveries per event id.
    pub deliveries: Mutex<BTreeMap<String, usize>>,
    /// The input bindings `ListInputBindings` names.
    pub input_bindings: Mutex<Vec<String>>,
    /// What the gRPC app answers binding events with: `data` sent on to
    /// these output bindings.
    pub forward_to: Mutex<Vec<String>>,
    /// The routes the app was asked about with `OPTIONS`.
    pub probed: Mutex<Vec<String>>,
}

/// An event as the app received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The route (HTTP path, or gRPC `path`).
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The CloudEvent (HTTP body; for gRPC, rebuilt from the request).
    pub event: serde_json::Value,
    /// How many entries came in the same delivery (bulk), else 1.
    pub batch: usize,
}

impl AppState {
    pub fn events(&self) -> Vec<Received> {
        self.events.lock().unwrap().clone()
    }

    /// The `data` of every event received, in order.
    pub fn data(&self) -> Vec<serde_json::Value> {
        self.events()
            .iter()
            .map(|e| e.event["data"].clone())
            .collect()
    }

    /// Records an event; returns how many times it came before.
    fn record(&self, received: Received) -> usize {
        let id = received.event["id"].as_str().unwrap_or_default().to_owned();
        let before = {
            let mut deliveries = self.deliveries.lock().unwrap();
            let count = deliveries.entry(id).or_default();
            *count += 1;
            *count - 1
        };
        self.events.lock().unwrap().push(received);
        before
    }
}

/// The answer an event asks for in `data.answer`: `RETRY`, `DROP`,
/// `SUCCESS`, `retry-once`, `404`, `500`, `unimplemented`, `error`; none is
/// success.
fn wanted_answer(event: &serde_json::Value, before: usize) -> String {
    let answer = event["data"]["answer"].as_str().unwrap_or_default();
    match answer {
        "retry-once" if before == 0 => "RETRY".into(),
        "retry-once" => "SUCCESS".into(),
        other => other.to_owned(),
    }
}

/// A binding event as recorded: its text is its id, so that `refuse-once`
/// in it is refused at its first delivery only.
fn binding_event(data: &[u8], metadata: serde_json::Value) -> serde_json::Value {
    let text = String::from_utf8_lossy(data).into_owned();
    serde_json::json!({ "id": text, "data": text, "metadata": metadata })
}

/// `/bindings/...`: `OPTIONS` says the app takes the binding (404 for
/// routes holding `unwanted`); `POST` is an event, recorded, and refused
/// (500) the first time when it holds `refuse-once`.
async fn on_binding(State(state): State<Arc<AppState>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if parts.method == axum::http::Method::OPTIONS {
        state.probed.lock().unwrap().push(path.clone());
        return if path.contains("unwanted") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
    }
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let event = binding_event(&bytes, serde_json::Value::Null);
    let refuse = event["data"]
        .as_str()
        .unwrap_or_default()
        .contains("refuse-once");
    let before = state.record(Received {
        path,
        headers: headers_map(&parts.headers),
        event,
        batch: 1,
    });
    if refuse && before == 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A running test app; stops when dropped.
pub struct App {
    pub port: u16,
    pub state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn headers_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect()
}

/// A checksum that a streamed body can be folded into.
pub fn checksum(sum: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(sum, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(*b))
    })
}

async fn echo(State(state): State<Arc<AppState>>, request: Request) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    *state.last_headers.lock().unwrap() = headers_map(&parts.headers);
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let mut length = 0u64;
    let mut sum = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        length += chunk.len() as u64;
        sum = checksum(sum, &chunk);
    }
    state.last_complete.store(length, Ordering::SeqCst);
    let status = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("status="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let answer = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": query,
        "headers": headers_map(&parts.headers),
        "length": length,
        "checksum": sum,
    });
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json"), ("x-from-app", "yes")],
        answer.to_string(),
    )
        .into_response()
}

/// Streams `bytes` bytes of a known pattern back, in 64 KiB chunks; with
/// `&whole`, in one body of declared length; with `&fail`, declares that
/// length, sends half of it and fails.
async fn download(request: Request) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let total: usize = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if query.split('&').any(|kv| kv == "whole") {
        return Response::new(Body::from(vec![7u8; total]));
    }
    if query.split('&').any(|kv| kv == "fail") {
        // The failure comes a moment after the half, so that the head and
        // the half are on the wire first (else the app's server drops the
        // connection before it has answered at all).
        let half = futures::stream::once(async move { Ok(Bytes::from(vec![7u8; total / 2])) })
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::other("the app's body broke off"))
            }));
        return (
            [("content-length", total.to_string())],
            Body::from_stream(half),
        )
            .into_response();
    }
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let chunks = total / chunk.len();
    let rest = total % chunk.len();
    let stream =
        futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())))
            .chain(futures::stream::once(async move {
                Ok(Bytes::from(vec![7u8; rest]))
            }));
    Response::new(Body::from_stream(stream))
}

async fn slow(State(state): State<Arc<AppState>>) -> StatusCode {
    state.slow_calls.fetch_add(1, Ordering::SeqCst);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    StatusCode::OK
}

async fn subscribe_list(State(state): State<Arc<AppState>>) -> Response {
    state.subscribe_asked.fetch_add(1, Ordering::SeqCst);
    if state
        .warming_until
        .lock()
        .unwrap()
        .is_some_and(|until| std::time::Instant::now() < until)
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match state.subscriptions.lock().unwrap().clone() {
        Some(list) => ([("content-type", "application/json")], list.to_string()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /events/...`: one event (a CloudEvent) to record and answer.
async fn on_event(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let event: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let before = state.record(Received {
        path: parts.uri.path().to_owned(),
        headers: headers_map(&parts.headers),
        event: event.clone(),
        batch: 1,
    });
    // A dead-letter route takes everything.
    let answer = if parts.uri.path().starts_with("/events/dead") {
        String::new()
    } else {
        wanted_answer(&event, before)
    };
    match answer.as_str() {
        "" => StatusCode::OK.into_response(),
        "404" => StatusCode::NOT_FOUND.into_response(),
        "500" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        status => (
            [("content-type", "application/json")],
            serde_json::json!({ "status": status }).to_string(),
        )
            .into_response(),
    }
}

/// `POST /bulk/...`: a bulk delivery; each entry is recorded and answered.
async fn on_bulk(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let bulk: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let entries = bulk["entries"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<serde_json::Value> = entries
        .iter()
        .map(|entry| {
            let event = entry["event"].clone();
            let before = state.record(Received {
                path: parts.uri.path().to_owned(),
                headers: headers_map(&parts.headers),
                event: event.clone(),
                batch: entries.len(),
            });
            let status = match wanted_answer(&event, before).as_str() {
                "" => "SUCCESS".to_owned(),
                other => other.to_owned(),
            };
            serde_json::json!({ "entryId": entry["entryId"], "status": status })
        })
        .collect();
    (
        [("content-type", "application/json")],
        serde_json::json!({ "statuses": statuses }).to_string(),
    )
        .into_response()
}

/// A fire of a job as recorded: its id is the job's name (so deliveries
/// are counted per job), its data as JSON (or as text when it is not).
fn job_event(name: &str, data: &[u8], content_type: &str) -> serde_json::Value {
    let data = serde_json::from_slice(data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into_owned()));
    serde_json::json!({ "id": name, "data": data, "contenttype": content_type })
}

/// `POST /job/{name}`: a fire of a job, recorded; refused (500) when the
/// name holds `fail`.
async fn on_job(State(state): State<Arc<AppState>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let name = parts.uri.path().trim_start_matches("/job/").to_owned();
    state.record(Received {
        path: parts.uri.path().to_owned(),
        headers: headers_map(&parts.headers),
        event: job_event(&name, &bytes, ""),
        batch: 1,
    });
    if name.contains("fail") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// `POST /configuration/{store}/{key}`: a configuration update, recorded
/// and taken (200).
async fn on_configuration(State(state): State<Arc<AppState>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    state.record(Received {
        path: parts.uri.path().to_owned(),
        headers: headers_map(&parts.headers),
        event: serde_json::from_slice(&bytes).unwrap_or_default(),
        batch: 1,
    });
    StatusCode::OK
}

async fn health(State(state): State<Arc<AppState>>) -> StatusCode {
    if state.healthy.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

async fn listen(port: u16) -> TcpListener {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // A port just given up may take a moment to be free again.
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot listen on {addr}");
}

impl App {
    /// An HTTP app on `port` (0: any).
    pub async fn http(port: u16) -> Self {
        let state = Arc::new(AppState::default());
        state.healthy.store(true, Ordering::SeqCst);
        let router = Router::new()
            .route("/download", get(download))
            .route("/slow", any(slow))
            .route("/healthz", get(health))
            .route("/dapr/subscribe", get(subscribe_list))
            // An app that hosts no actors (the runtime asks once).
            .route("/dapr/config", get(|| async { StatusCode::NOT_FOUND }))
            .route("/events/{*route}", axum::routing::post(on_event))
            .route("/bulk/{*route}", axum::routing::post(on_bulk))
            .route(
                "/configuration/{*route}",
                axum::routing::post(on_configuration),
            )
            .route("/bindings/{*route}", any(on_binding))
            .route("/job/{*name}", axum::routing::post(on_job))
            .fallback(echo)
            .with_state(state.clone());
        let listener = listen(port).await;
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { port, state, task }
    }

    /// A gRPC app on `port` (0: any): AppCallback, its health check and the
    /// Echo service.
    pub async fn grpc(port: u16) -> Self {
        let state = Arc::new(AppState::default());
        state.healthy.store(true, Ordering::SeqCst);
        let listener = listen(port).await;
        let port = listener.local_addr().unwrap().port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let app = GrpcApp(state.clone());
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(AppCallbackServer::new(app.clone()))
                .add_service(AppCallbackHealthCheckServer::new(app.clone()))
                .add_service(EchoServer::new(app))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        Self { port, state, task }
    }
}

#[derive(Clone)]
struct GrpcApp(Arc<AppState>);

fn metadata_map(metadata: &tonic::metadata::MetadataMap) -> BTreeMap<String, String> {
    headers_map(&metadata.clone().into_headers())
}

/// A gRPC event as the JSON CloudEvent it came from.
fn grpc_event(req: &TopicEventRequest) -> serde_json::Value {
    let data = if req.data_content_type.contains("json") {
        serde_json::from_slice(&req.data).unwrap_or_default()
    } else {
        serde_json::Value::String(String::from_utf8_lossy(&req.data).into_owned())
    };
    let mut event = serde_json::json!({
        "id": req.id,
        "source": req.source,
        "type": req.r#type,
        "specversion": req.spec_version,
        "datacontenttype": req.data_content_type,
        "data": data,
        "topic": req.topic,
        "pubsubname": req.pubsub_name,
    });
    for (key, value) in req.extensions.clone().unwrap_or_default().fields {
        if let Some(prost_types::value::Kind::StringValue(text)) = value.kind {
            event[key] = serde_json::Value::String(text);
        }
    }
    event
}

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn list_topic_subscriptions(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<ListTopicSubscriptionsResponse>, Status> {
        let subscriptions = self.0.grpc_subscriptions.lock().unwrap().clone();
        if subscriptions.is_empty() {
            return Err(Status::unimplemented("no subscriptions"));
        }
        Ok(tonic::Response::new(ListTopicSubscriptionsResponse {
            subscriptions,
        }))
    }

    async fn on_topic_event(
        &self,
        request: tonic::Request<TopicEventRequest>,
    ) -> Result<tonic::Response<TopicEventResponse>, Status> {
        let headers = metadata_map(request.metadata());
        let req = request.into_inner();
        let event = grpc_event(&req);
        let before = self.0.record(Received {
            path: req.path.clone(),
            headers,
            event: event.clone(),
            batch: 1,
        });
        let status = match wanted_answer(&event, before).as_str() {
            "RETRY" => 1,
            "DROP" => 2,
            "unimplemented" => return Err(Status::unimplemented("no handler")),
            "error" => return Err(Status::internal("failed on purpose")),
            _ => 0,
        };
        Ok(tonic::Response::new(TopicEventResponse { status }))
    }

    async fn on_bulk_topic_event(
        &self,
        request: tonic::Request<TopicEventBulkRequest>,
    ) -> Result<tonic::Response<TopicEventBulkResponse>, Status> {
        let headers = metadata_map(request.metadata());
        let req = request.into_inner();
        let count = req.entries.len();
        let statuses = req
            .entries
            .into_iter()
            .map(|entry| {
                use mecha_proto::runtime::topic_event_bulk_request_entry::Event as E;
                let event = match entry.event {
                    Some(E::CloudEvent(ce)) => grpc_event(&TopicEventRequest {
                        id: ce.id,
                        source: ce.source,
                        r#type: ce.r#type,
                        spec_version: ce.spec_version,
                        data_content_type: ce.data_content_type,
                        data: ce.data,
                        extensions: ce.extensions,
                        ..TopicEventRequest::default()
                    }),
                    Some(E::Bytes(bytes)) => {
                        serde_json::json!({"data": String::from_utf8_lossy(&bytes)})
                    }
                    None => serde_json::Value::Null,
                };
                let before = self.0.record(Received {
                    path: req.path.clone(),
                    headers: headers.clone(),
                    event: event.clone(),
                    batch: count,
                });
                let status = match wanted_answer(&event, before).as_str() {
                    "RETRY" => 1,
                    "DROP" => 2,
                    _ => 0,
                };
                TopicEventBulkResponseEntry {
                    entry_id: entry.entry_id,
                    status,
                }
            })
            .collect();
        Ok(tonic::Response::new(TopicEventBulkResponse { statuses }))
    }

    async fn list_input_bindings(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<ListInputBindingsResponse>, Status> {
        Ok(tonic::Response::new(ListInputBindingsResponse {
            bindings: self.0.input_bindings.lock().unwrap().clone(),
        }))
    }

    async fn on_job_event(
        &self,
        request: tonic::Request<JobEventRequest>,
    ) -> Result<tonic::Response<JobEventResponse>, Status> {
        let headers = metadata_map(request.metadata());
        let req = request.into_inner();
        let data = req.data.unwrap_or_default();
        let bytes = mecha_proto::wkt::any_json(&data.type_url, &data.value)
            .map(|json| json.to_string().into_bytes())
            .unwrap_or(data.value);
        let mut event = job_event(&req.name, &bytes, &req.content_type);
        event["method"] = serde_json::Value::String(req.method);
        event["verb"] = serde_json::json!(req.http_extension.map(|e| e.verb));
        self.0.record(Received {
            path: format!("job/{}", req.name),
            headers,
            event,
            batch: 1,
        });
        if req.name.contains("fail") {
            return Err(Status::internal("failing on purpose"));
        }
        Ok(tonic::Response::new(JobEventResponse {}))
    }

    async fn on_binding_event(
        &self,
        request: tonic::Request<BindingEventRequest>,
    ) -> Result<tonic::Response<BindingEventResponse>, Status> {
        let headers = metadata_map(request.metadata());
        let req = request.into_inner();
        let metadata: serde_json::Map<String, serde_json::Value> = req
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let event = binding_event(&req.data, serde_json::Value::Object(metadata));
        let refuse = event["data"]
            .as_str()
            .unwrap_or_default()
            .contains("refuse-once");
        let before = self.0.record(Received {
            path: req.name.clone(),
            headers,
            event,
            batch: 1,
        });
        if refuse && before == 0 {
            return Err(Status::internal("refused once, on purpose"));
        }
        Ok(tonic::Response::new(BindingEventResponse {
            to: self.0.forward_to.lock().unwrap().clone(),
            data: Bytes::from(format!("answer to {}", String::from_utf8_lossy(&req.data))),
            ..Default::default()
        }))
    }

    async fn on_invoke(
        &self,
        request: tonic::Request<InvokeRequest>,
    ) -> Result<tonic::Response<InvokeResponse>, Status> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let metadata = metadata_map(request.metadata());
        *self.0.last_headers.lock().unwrap() = metadata.clone();
        let req = request.into_inner();
        if req.method == "fail" {
            return Err(Status::not_found("no such thing"));
        }
        if req.method == "fail-detailed" {
            // An error as SDK servers send them: a code a round trip
            // through HTTP would change, a message, details and metadata.
            let mut details = tonic_types::ErrorDetails::new();
            details.add_bad_request_violation("n", "must be positive");
            let mut status = <Status as tonic_types::StatusExt>::with_error_details(
                tonic::Code::InvalidArgument,
                "bad input: n must be positive",
                details,
            );
            status
                .metadata_mut()
                .insert("x-app-said", "why".parse().unwrap());
            return Err(status);
        }
        let data = req.data.unwrap_or_default();
        let extension = req.http_extension.unwrap_or_default();
        let answer = serde_json::json!({
            "method": req.method,
            "contentType": req.content_type,
            "verb": extension.verb,
            "query": extension.querystring,
            "typeUrl": data.type_url,
            "data": String::from_utf8_lossy(&data.value),
            "metadata": metadata,
        });
        Ok(tonic::Response::new(InvokeResponse {
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: answer.to_string().into_bytes(),
            }),
            content_type: "application/json".into(),
        }))
    }
}

#[tonic::async_trait]
impl AppCallbackHealthCheck for GrpcApp {
    async fn health_check(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        if self.0.healthy.load(Ordering::SeqCst) {
            Ok(tonic::Response::new(HealthCheckResponse {}))
        } else {
            Err(Status::unavailable("unhealthy"))
        }
    }
}

fn fail(code: i32) -> Result<(), Status> {
    if code == 0 {
        Ok(())
    } else {
        Err(Status::new(
            tonic::Code::from_i32(code),
            format!("failed on purpose with {code}"),
        ))
    }
}

#[tonic::async_trait]
impl Echo for GrpcApp {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, Status> {
        let metadata = metadata_map(request.metadata());
        let req = request.into_inner();
        fail(req.fail_code)?;
        let mut response = tonic::Response::new(EchoReply {
            payload: req.payload,
            index: 0,
            metadata: metadata.into_iter().collect(),
        });
        response
            .metadata_mut()
            .insert("x-echo-header", "present".parse().unwrap());
        Ok(response)
    }

    async fn server_stream(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<EchoReply>>, Status> {
        let req = request.into_inner();
        fail(req.fail_code)?;
        let replies = (0..req.count).map(move |index| {
            Ok(EchoReply {
                payload: req.payload.clone(),
                index,
                metadata: Default::default(),
            })
        });
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(
            replies,
        ))))
    }

    async fn client_stream(
        &self,
        request: tonic::Request<Streaming<EchoRequest>>,
    ) -> Result<tonic::Response<EchoReply>, Status> {
        let mut stream = request.into_inner();
        let mut total = Vec::new();
        let mut count = 0;
        while let Some(message) = stream.message().await? {
            total.extend_from_slice(&message.payload);
            count += 1;
        }
        Ok(tonic::Response::new(EchoReply {
            payload: total.into(),
            index: count,
            metadata: Default::default(),
        }))
    }
}

/// A TLS acceptor with a fresh self-signed certificate, offering `alpn`.
fn tls_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Serves `router` over TLS (HTTP/1.1 and HTTP/2, by ALPN).
async fn serve_tls(listener: TcpListener, router: Router, acceptor: tokio_rustls::TlsAcceptor) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = TowerToHyperService::new(router);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

impl App {
    /// The HTTP app over TLS with a self-signed certificate (`https`).
    pub async fn https() -> Self {
        let state = Arc::new(AppState::default());
        state.healthy.store(true, Ordering::SeqCst);
        let router = Router::new().fallback(echo).with_state(state.clone());
        let listener = listen(0).await;
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(serve_tls(listener, router, tls_acceptor(&[b"http/1.1"])));
        Self { port, state, task }
    }

    /// The gRPC app over TLS with a self-signed certificate (`grpcs`).
    pub async fn grpcs() -> Self {
        let state = Arc::new(AppState::default());
        state.healthy.store(true, Ordering::SeqCst);
        let app = GrpcApp(state.clone());
        let router = tonic::service::Routes::new(AppCallbackServer::new(app.clone()))
            .add_service(AppCallbackHealthCheckServer::new(app.clone()))
            .add_service(EchoServer::new(app))
            .into_axum_router();
        let listener = listen(0).await;
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(serve_tls(listener, router, tls_acceptor(&[b"h2"])));
        Self { port, state, task }
    }
}
