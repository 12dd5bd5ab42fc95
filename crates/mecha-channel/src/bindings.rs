//! The app as the receiver of input bindings: the start-up check that it
//! takes a binding's events (`OPTIONS /{route}`, `ListInputBindings`) and
//! their delivery (`POST /{route}`, `OnBindingEvent`), read the way daprd
//! reads the app's answers. Deliveries wait while the app is unhealthy.

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use mecha_bindings::{AppAnswer, AppBindings, InputEvent, Refused};
use mecha_invoke::body;
use mecha_proto::runtime as pb;
use mecha_proto::runtime::app_callback_client::AppCallbackClient;

use crate::Channel;
use crate::discovery::{Asked, grpc_not_yet, http_not_yet, patiently};

/// How long the start-up check waits (daprd's `--app-binding-options-timeout`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of an app's answer that is read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

fn route(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl Channel {
    /// One question: `OPTIONS /{route}`, taken when it answers 2xx or 405.
    pub(crate) async fn subscribes_http(&self, route_path: &str) -> Asked<bool> {
        let Ok(uri) = self.uri(&route(route_path)) else {
            return Asked::Answered(false);
        };
        let request = Request::options(uri)
            .body(body::empty())
            .expect("a valid request");
        match tokio::time::timeout(PROBE_TIMEOUT, self.ask(request)).await {
            Ok(Ok(response)) if http_not_yet(response.status()) => {
                Asked::NotYet(format!("it answered {}", response.status()))
            }
            Ok(Ok(response)) => {
                let status = response.status();
                Asked::Answered(status.is_success() || status == StatusCode::METHOD_NOT_ALLOWED)
            }
            Ok(Err(err)) => Asked::NotYet(err.to_string()),
            Err(_) => {
                tracing::warn!(
                    route = route_path,
                    "the app did not answer OPTIONS within {PROBE_TIMEOUT:?}; its events are not read"
                );
                Asked::Answered(false)
            }
        }
    }

    /// One question: `ListInputBindings`.
    pub(crate) async fn subscribes_grpc(&self, name: &str) -> Asked<bool> {
        let mut client = AppCallbackClient::new(self.grpc_service());
        let listed = client.list_input_bindings(self.binding_grpc_request(()));
        match tokio::time::timeout(PROBE_TIMEOUT, listed).await {
            Ok(Ok(answer)) => {
                Asked::Answered(answer.into_inner().bindings.iter().any(|b| b == name))
            }
            Ok(Err(status)) if grpc_not_yet(&status) => {
                Asked::NotYet(format!("{:?}: {}", status.code(), status.message()))
            }
            Ok(Err(_)) => Asked::Answered(false),
            Err(_) => {
                tracing::warn!(
                    binding = name,
                    "the app did not list its input bindings within {PROBE_TIMEOUT:?}"
                );
                Asked::Answered(false)
            }
        }
    }

    fn binding_grpc_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.grpc_metadata(&http::HeaderMap::new());
        request
    }

    pub(crate) async fn deliver_binding_http(
        &self,
        route_path: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused> {
        let uri = self
            .uri(&route(route_path))
            .map_err(|err| Refused(err.to_string()))?;
        let mut request = Request::post(uri)
            .body(body::full(event.data.clone()))
            .map_err(|err| Refused(err.to_string()))?;
        let headers = request.headers_mut();
        for (key, value) in &event.metadata {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(http::header::CONTENT_LENGTH, event.data.len().into());
        let response = self
            .send(request)
            .await
            .map_err(|err| Refused(err.to_string()))?;
        let status = response.status();
        let answer = body::collect(response.into_body(), MAX_ANSWER)
            .await
            .unwrap_or_default();
        if status.is_success() {
            Ok(AppAnswer {
                data: answer,
                ..AppAnswer::default()
            })
        } else {
            Err(Refused(format!(
                "fails to send binding event to http app channel, status code: {} body: {}",
                status.as_u16(),
                String::from_utf8_lossy(&answer)
            )))
        }
    }

    pub(crate) async fn deliver_binding_grpc(
        &self,
        name: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused> {
        let message = pb::BindingEventRequest {
            name: name.to_owned(),
            data: event.data.clone(),
            metadata: event.metadata.clone().into_iter().collect(),
        };
        let mut client = AppCallbackClient::new(self.grpc_service());
        let request = self.binding_grpc_request(message);
        let (answer, _slot) = self
            .limit
            .run(async move { client.on_binding_event(request).await })
            .await
            .map_err(|err| Refused(err.to_string()))?;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                Ok(AppAnswer {
                    data: answer.data,
                    to: answer.to,
                    parallel: answer.concurrency == 1,
                })
            }
            Err(status) => Err(Refused(format!(
                "the app answered {:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}

#[async_trait]
impl AppBindings for Channel {
    async fn subscribes(&self, name: &str, route_path: &str) -> bool {
        let what = format!("whether it takes the events of input binding {name}");
        patiently(&what, false, || async {
            self.wait_healthy().await;
            self.speaks.takes_binding(self, name, route_path).await
        })
        .await
    }

    async fn deliver(
        &self,
        name: &str,
        route_path: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused> {
        self.wait_healthy().await;
        self.speaks
            .deliver_binding(self, name, route_path, event)
            .await
    }
}
