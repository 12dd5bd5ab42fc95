//! The app as a subscriber: the subscriptions it declares (`GET
//! /dapr/subscribe`, `ListTopicSubscriptions`) and the delivery of events to
//! it (`POST` to the route, `OnTopicEvent`, and their bulk forms), read the
//! way daprd reads the app's answers. Deliveries wait while health checks
//! find the app unhealthy.

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use mecha_invoke::body;
use mecha_proto::runtime as pb;
use mecha_proto::runtime::app_callback_alpha_client::AppCallbackAlphaClient;
use mecha_proto::runtime::app_callback_client::AppCallbackClient;
use mecha_pubsub::cloudevent::{self, CloudEvent};
use mecha_pubsub::routing::Rule;
use mecha_pubsub::sink::{
    BulkPayload, bulk_http_body, bulk_outcome_of_http_body, outcome_of_http_body,
    outcome_of_status_code,
};
use mecha_pubsub::subscription::{
    BulkSettings, Kind, SubscriptionSpec, parse_programmatic, rules_from,
};
use mecha_pubsub::{AppSubscriber, BulkEvent, BulkOutcome, Event, Metadata, Outcome, Sink};

use crate::Channel;
use crate::discovery::{Asked, grpc_not_yet, http_not_yet, patiently};

/// The most of an app's answer to a delivery that is read.
const MAX_ANSWER: usize = 1024 * 1024;
fn grpc_unavailable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unimplemented
}

/// Message metadata as HTTP headers: names lower-cased, `content-type`
/// left to the delivery, gRPC's reserved names prefixed with `dapr-`, and
/// what is not a valid header skipped.
fn metadata_headers(metadata: &Metadata, headers: &mut http::HeaderMap) {
    for (key, value) in metadata {
        let key = key.to_ascii_lowercase();
        if key == "content-type" || key == "content-length" {
            continue;
        }
        let key = if key.starts_with("grpc-") || key.starts_with(':') {
            format!("dapr-{}", key.trim_start_matches(':'))
        } else {
            key
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// The event's trace context, on the delivery.
fn trace_headers(event: &CloudEvent, headers: &mut http::HeaderMap) {
    for key in ["traceparent", "tracestate"] {
        let value = cloudevent::attribute(event, key);
        if !value.is_empty()
            && let Ok(value) = HeaderValue::from_str(value)
        {
            headers.insert(HeaderName::from_static(key), value);
        }
    }
}

fn route(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// An event as gRPC apps receive it in `OnTopicEvent`.
fn topic_event_request(event: &Event) -> Result<pb::TopicEventRequest, String> {
    let fields = event.fields()?;
    Ok(pb::TopicEventRequest {
        id: fields.id,
        source: fields.source,
        r#type: fields.kind,
        spec_version: fields.spec_version,
        data_content_type: fields.data_content_type,
        data: fields.data,
        topic: fields.topic,
        pubsub_name: fields.pubsub_name,
        path: fields.path,
        extensions: Some(mecha_proto::wkt::json_struct(&fields.extensions)),
    })
}

impl Channel {
    /// Resolves once health checks (if any) find the app healthy.
    pub async fn wait_healthy(&self) {
        self.health.wait_healthy().await;
    }

    async fn post(
        &self,
        path: &str,
        content_type: &'static str,
        body: Bytes,
        metadata: &Metadata,
        event: Option<&CloudEvent>,
    ) -> Result<(StatusCode, Bytes), String> {
        let uri = self.uri(&route(path)).map_err(|err| err.to_string())?;
        let mut request = Request::post(uri)
            .body(body::full(body.clone()))
            .map_err(|err| err.to_string())?;
        let headers = request.headers_mut();
        metadata_headers(metadata, headers);
        if let Some(event) = event {
            trace_headers(event, headers);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        headers.insert(http::header::CONTENT_LENGTH, body.len().into());
        let response = self.send(request).await.map_err(|err| err.to_string())?;
        let status = response.status();
        let answer = body::collect(response.into_body(), MAX_ANSWER)
            .await
            .unwrap_or_default();
        Ok((status, answer))
    }

    pub(crate) async fn deliver_http(&self, event: &Event) -> Outcome {
        let answer = self
            .post(
                &event.path,
                cloudevent::CONTENT_TYPE,
                event.body.clone(),
                &event.metadata,
                Some(&event.event),
            )
            .await;
        match answer {
            Ok((status, body)) if status.is_success() => outcome_of_http_body(&body),
            Ok((StatusCode::NOT_FOUND, _)) => {
                Outcome::Drop(format!("the app answered 404 for {}", route(&event.path)))
            }
            Ok((status, _)) => Outcome::Retry(format!("the app answered {status}")),
            Err(err) => Outcome::Retry(err),
        }
    }

    pub(crate) async fn deliver_bulk_http(&self, event: &BulkEvent) -> BulkOutcome {
        let body = Bytes::from(bulk_http_body(event));
        let answer = self
            .post(&event.path, "application/json", body, &event.metadata, None)
            .await;
        match answer {
            Ok((status, body)) if status.is_success() => bulk_outcome_of_http_body(&body),
            Ok((StatusCode::NOT_FOUND, _)) => BulkOutcome::All(Outcome::Discard(format!(
                "the app answered 404 for {}",
                route(&event.path)
            ))),
            Ok((status, _)) => {
                BulkOutcome::All(Outcome::Retry(format!("the app answered {status}")))
            }
            Err(err) => BulkOutcome::All(Outcome::Retry(err)),
        }
    }

    fn grpc_request<T>(
        &self,
        message: T,
        metadata: &Metadata,
        event: Option<&CloudEvent>,
    ) -> tonic::Request<T> {
        let mut headers = http::HeaderMap::new();
        metadata_headers(metadata, &mut headers);
        if let Some(event) = event {
            trace_headers(event, &mut headers);
        }
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.grpc_metadata(&headers);
        request
    }

    pub(crate) async fn deliver_grpc(&self, event: &Event) -> Outcome {
        let message = match topic_event_request(event) {
            Ok(message) => message,
            Err(err) => return Outcome::Retry(err),
        };
        let request = self.grpc_request(message, &event.metadata, Some(&event.event));
        let mut client = AppCallbackClient::new(self.grpc_service());
        let answer = self
            .limit
            .run(async move { client.on_topic_event(request).await })
            .await;
        let answer = match answer {
            Ok((answer, _slot)) => answer,
            Err(err) => return Outcome::Retry(err.to_string()),
        };
        match answer {
            Ok(answer) => outcome_of_status_code(answer.into_inner().status),
            Err(status) if grpc_unavailable(&status) => Outcome::Discard(format!(
                "the app does not handle topic {} ({})",
                event.topic,
                status.message()
            )),
            Err(status) => Outcome::Retry(format!(
                "the app answered {:?}: {}",
                status.code(),
                status.message()
            )),
        }
    }

    pub(crate) async fn deliver_bulk_grpc(&self, event: &BulkEvent) -> BulkOutcome {
        let mut entries = Vec::with_capacity(event.entries.len());
        for entry in &event.entries {
            let payload = match &entry.payload {
                BulkPayload::Raw(bytes) => {
                    pb::topic_event_bulk_request_entry::Event::Bytes(bytes.clone())
                }
                BulkPayload::CloudEvent(ce) => {
                    let data = match cloudevent::data_bytes(ce) {
                        Ok(data) => data,
                        Err(err) => return BulkOutcome::All(Outcome::Retry(err)),
                    };
                    let attribute = |name| cloudevent::attribute(ce, name).to_owned();
                    pb::topic_event_bulk_request_entry::Event::CloudEvent(pb::TopicEventCeRequest {
                        id: attribute("id"),
                        source: attribute("source"),
                        r#type: attribute("type"),
                        spec_version: attribute("specversion"),
                        data_content_type: attribute("datacontenttype"),
                        data: data.into(),
                        extensions: Some(mecha_proto::wkt::json_struct(&cloudevent::extensions(
                            ce,
                        ))),
                    })
                }
            };
            entries.push(pb::TopicEventBulkRequestEntry {
                entry_id: entry.entry_id.clone(),
                content_type: entry.content_type.clone(),
                metadata: entry.metadata.clone().into_iter().collect(),
                event: Some(payload),
            });
        }
        let message = pb::TopicEventBulkRequest {
            id: event.id.clone(),
            entries,
            metadata: event.metadata.clone().into_iter().collect(),
            topic: event.topic.clone(),
            pubsub_name: event.pubsub.clone(),
            r#type: cloudevent::DEFAULT_BULK_TYPE.to_owned(),
            path: event.path.clone(),
        };
        let service = self.grpc_service();
        let request = self.grpc_request(message.clone(), &event.metadata, None);
        let metadata = request.metadata().clone();
        let call = async move {
            match AppCallbackClient::new(service.clone())
                .on_bulk_topic_event(request)
                .await
            {
                // Older apps (the JS SDK) have only the alpha method.
                Err(status) if grpc_unavailable(&status) => {
                    let mut request = tonic::Request::new(message);
                    *request.metadata_mut() = metadata;
                    #[allow(deprecated)]
                    AppCallbackAlphaClient::new(service)
                        .on_bulk_topic_event_alpha1(request)
                        .await
                }
                other => other,
            }
        };
        let answer = match self.limit.run(call).await {
            Ok((answer, _slot)) => answer,
            Err(err) => return BulkOutcome::All(Outcome::Retry(err.to_string())),
        };
        match answer {
            Ok(answer) => BulkOutcome::PerEntry(
                answer
                    .into_inner()
                    .statuses
                    .into_iter()
                    .map(|s| (s.entry_id, outcome_of_status_code(s.status)))
                    .collect(),
            ),
            Err(status) if grpc_unavailable(&status) => {
                BulkOutcome::All(Outcome::Discard(format!(
                    "the app does not handle bulk events of topic {}",
                    event.topic
                )))
            }
            Err(status) => BulkOutcome::All(Outcome::Retry(format!(
                "the app answered {:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }

    /// One question for the app's subscriptions: `GET /dapr/subscribe`.
    pub(crate) async fn subscriptions_http(&self) -> Asked<Result<Vec<SubscriptionSpec>, String>> {
        let uri = match self.uri("/dapr/subscribe") {
            Ok(uri) => uri,
            Err(err) => return Asked::Answered(Err(err.to_string())),
        };
        let mut request = Request::get(uri)
            .body(body::empty())
            .expect("a valid request");
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let response = match self.ask(request).await {
            Ok(response) => response,
            Err(err) => return Asked::NotYet(err.to_string()),
        };
        let status = response.status();
        if http_not_yet(status) {
            return Asked::NotYet(format!("it answered {status}"));
        }
        let answer = match body::collect(response.into_body(), MAX_ANSWER).await {
            Ok(answer) => answer,
            Err(err) => return Asked::NotYet(format!("reading its answer: {err}")),
        };
        Asked::Answered(match status {
            StatusCode::OK => parse_programmatic(&answer),
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            other => {
                tracing::error!(
                    "the app answered {other} from its subscription endpoint; no programmatic subscriptions"
                );
                Ok(Vec::new())
            }
        })
    }

    /// One question for the app's subscriptions: `ListTopicSubscriptions`.
    pub(crate) async fn subscriptions_grpc(&self) -> Asked<Result<Vec<SubscriptionSpec>, String>> {
        let mut client = AppCallbackClient::new(self.grpc_service());
        let request = self.grpc_request((), &Metadata::new(), None);
        let answer = match client.list_topic_subscriptions(request).await {
            Ok(answer) => answer.into_inner(),
            Err(status) if grpc_unavailable(&status) => return Asked::Answered(Ok(Vec::new())),
            Err(status) if grpc_not_yet(&status) => {
                return Asked::NotYet(format!("{:?}: {}", status.code(), status.message()));
            }
            Err(status) => {
                return Asked::Answered(Err(format!(
                    "listing the app's subscriptions: {}",
                    status.message()
                )));
            }
        };
        Asked::Answered(Ok(answer
            .subscriptions
            .into_iter()
            .map(|subscription| {
                let routes = subscription.routes.unwrap_or_default();
                let rules = routes
                    .rules
                    .into_iter()
                    .map(|rule| Rule {
                        matches: rule.r#match,
                        path: rule.path,
                    })
                    .collect();
                let mut rules = rules_from(rules, &routes.default, "");
                if rules.is_empty() {
                    // As daprd: no route means the empty path, which SDK
                    // apps take as the topic's handler.
                    rules.push(Rule::default_route(""));
                }
                SubscriptionSpec {
                    pubsub: subscription.pubsub_name,
                    topic: subscription.topic,
                    metadata: subscription.metadata.into_iter().collect(),
                    rules,
                    dead_letter_topic: Some(subscription.dead_letter_topic)
                        .filter(|t| !t.is_empty()),
                    bulk: subscription
                        .bulk_subscribe
                        .filter(|bulk| bulk.enabled)
                        .map(|bulk| {
                            BulkSettings::from_dapr(
                                i64::from(bulk.max_messages_count),
                                i64::from(bulk.max_await_duration_ms),
                            )
                        }),
                    kind: Kind::Programmatic,
                }
            })
            .collect()))
    }
}

#[async_trait]
impl Sink for Channel {
    async fn deliver(&self, event: &Event) -> Outcome {
        self.wait_healthy().await;
        self.speaks.deliver(self, event).await
    }

    async fn deliver_bulk(&self, event: &BulkEvent) -> BulkOutcome {
        self.wait_healthy().await;
        self.speaks.deliver_bulk(self, event).await
    }
}

#[async_trait]
impl AppSubscriber for Channel {
    async fn subscriptions(&self) -> Result<Vec<SubscriptionSpec>, String> {
        patiently("with its subscriptions", Ok(Vec::new()), || async {
            self.wait_healthy().await;
            self.speaks.subscriptions(self).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_becomes_headers() {
        let metadata: Metadata = [
            ("pubsubName", "pubsub"),
            ("Content-Type", "text/plain"),
            ("grpc-timeout", "1s"),
            ("bad header", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut headers = http::HeaderMap::new();
        metadata_headers(&metadata, &mut headers);
        assert_eq!(headers["pubsubname"], "pubsub");
        assert_eq!(headers["dapr-grpc-timeout"], "1s");
        assert!(!headers.contains_key("content-type"));
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn routes_keep_one_leading_slash() {
        assert_eq!(route("orders"), "/orders");
        assert_eq!(route("/orders"), "/orders");
        assert_eq!(route(""), "/");
    }
}
