//! Delivery of a subscription's messages to its subscriber, with daprd's
//! rules: the message is read as a CloudEvent (or wrapped, for raw
//! payloads), expired events are dropped, the routing rules choose the path,
//! and the subscriber's answer decides between acknowledging, redelivering
//! and the dead-letter topic.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::broker::{PubSubHandle, SubscribeError};
use crate::cloudevent::{self, CloudEvent};
use crate::component::{Handler, Message, Metadata, PublishRequest, Redeliver};
use crate::routing::Routes;
use crate::sink::{Event, Outcome, Sink};
use crate::subscription::SubscriptionSpec;

/// The metadata key daprd adds to every delivered message.
pub const PUBSUB_NAME_KEY: &str = "pubsubName";

/// What one subscription needs to deliver: shared by its single and bulk
/// deliverers.
pub struct SubscriptionContext {
    pub spec: Arc<SubscriptionSpec>,
    routes: Routes,
    raw_payload: bool,
    broker: PubSubHandle,
    stop: CancellationToken,
}

/// A message ready to deliver, or the reason it is acknowledged without
/// being delivered.
pub(crate) enum Prepared {
    Deliver {
        event: CloudEvent,
        body: Bytes,
        path: String,
        metadata: Metadata,
        /// `body` is `event` as JSON: the runtime added nothing to it.
        whole: bool,
    },
    Skip(Skip),
}

pub(crate) enum Skip {
    Expired,
    NoRoute,
    /// It cannot ever be delivered (not a CloudEvent).
    Poison(String),
}

impl SubscriptionContext {
    pub fn new(
        spec: SubscriptionSpec,
        broker: PubSubHandle,
        stop: CancellationToken,
    ) -> Result<Self, SubscribeError> {
        let routes = Routes::compile(&spec.rules).map_err(SubscribeError::Invalid)?;
        if spec.rules.is_empty() {
            return Err(SubscribeError::Invalid(format!(
                "the subscription to topic '{}' has no route",
                spec.topic
            )));
        }
        let raw_payload = spec.raw_payload().map_err(SubscribeError::Invalid)?;
        Ok(Self {
            spec: Arc::new(spec),
            routes,
            raw_payload,
            broker,
            stop,
        })
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub fn raw_payload(&self) -> bool {
        self.raw_payload
    }

    pub(crate) fn prepare(&self, message: &Message) -> Prepared {
        let mut metadata = message.metadata.clone();
        metadata.insert(PUBSUB_NAME_KEY.to_owned(), self.spec.pubsub.clone());
        let mut whole = true;
        let (event, body) = if self.raw_payload {
            let event = cloudevent::from_raw_payload(
                &message.data,
                &message.topic,
                &self.spec.pubsub,
                &message.metadata,
            );
            let body = Bytes::from(serde_json::to_vec(&event).expect("JSON values serialise"));
            (event, body)
        } else {
            match serde_json::from_slice::<Value>(&message.data) {
                Ok(Value::Object(mut event)) => {
                    for key in ["traceid", "traceparent", "tracestate"] {
                        if !event.contains_key(key)
                            && let Some(value) = message.metadata.get(key)
                        {
                            event.insert(key.to_owned(), value.clone().into());
                            whole = false;
                        }
                    }
                    (event, message.data.clone())
                }
                Ok(other) => {
                    return Prepared::Skip(Skip::Poison(format!(
                        "the message is a JSON {}, not a CloudEvent; subscribe with rawPayload: \"true\" to receive raw payloads",
                        cloudevent::json_kind(&other)
                    )));
                }
                Err(err) => {
                    return Prepared::Skip(Skip::Poison(format!(
                        "the message is not a CloudEvent ({err}); subscribe with rawPayload: \"true\" to receive raw payloads"
                    )));
                }
            }
        };
        if cloudevent::has_expired(&event, SystemTime::now()) {
            return Prepared::Skip(Skip::Expired);
        }
        let path = if self.routes.is_static() {
            self.spec.rules.first().map(|r| r.path.clone())
        } else {
            self.routes.route(&event).map(str::to_owned)
        };
        match path {
            Some(path) => Prepared::Deliver {
                event,
                body,
                path,
                metadata,
                whole,
            },
            None => Prepared::Skip(Skip::NoRoute),
        }
    }

    /// Acknowledges a message that is not delivered, dead-lettering it
    /// first when the subscription has a dead-letter topic.
    pub(crate) async fn skip(&self, message: &Message, skip: Skip) -> Result<(), Redeliver> {
        let spec = &self.spec;
        match &skip {
            Skip::Expired => {
                tracing::warn!(pubsub = %spec.pubsub, topic = %message.topic, "dropping an expired event");
            }
            Skip::NoRoute => {
                tracing::debug!(pubsub = %spec.pubsub, topic = %message.topic, "no route matches the event; skipping it");
            }
            Skip::Poison(reason) => {
                tracing::error!(pubsub = %spec.pubsub, topic = %message.topic, "dropping a message: {reason}");
            }
        }
        if self.spec.dead_letter_topic.is_some() {
            // daprd ignores a failed dead-lettering here: the event is
            // acknowledged either way.
            let _ = self.dead_letter(message).await;
        }
        Ok(())
    }

    /// Publishes the message as it came to the dead-letter topic, if the
    /// subscription has one. `Ok` means it is dealt with.
    pub(crate) async fn dead_letter(&self, message: &Message) -> Result<(), Redeliver> {
        let Some(topic) = &self.spec.dead_letter_topic else {
            return Ok(());
        };
        let request = PublishRequest {
            topic: topic.clone(),
            data: message.data.clone(),
            content_type: None,
            metadata: message.metadata.clone(),
        };
        match self.broker.publish(request).await {
            Ok(()) => {
                tracing::info!(pubsub = %self.spec.pubsub, topic = %message.topic, dead_letter_topic = %topic, "event sent to the dead-letter topic");
                Ok(())
            }
            Err(err) => {
                tracing::error!(pubsub = %self.spec.pubsub, dead_letter_topic = %topic, "sending to the dead-letter topic failed: {err}");
                Err(Redeliver(format!(
                    "sending to the dead-letter topic failed: {err}"
                )))
            }
        }
    }

    /// Publishes many messages to a dead-letter topic at once.
    pub(crate) async fn dead_letter_many(
        &self,
        topic: &str,
        requests: Vec<PublishRequest>,
    ) -> Vec<anyhow::Result<()>> {
        let count = requests.len();
        match self.broker.bulk_publish(topic, requests).await {
            Ok(results) => results,
            Err(err) => {
                let text = err.to_string();
                (0..count)
                    .map(|_| Err(anyhow::anyhow!(text.clone())))
                    .collect()
            }
        }
    }

    /// Acts on the subscriber's answer for one message.
    pub(crate) async fn settle(
        &self,
        message: &Message,
        outcome: Outcome,
    ) -> Result<(), Redeliver> {
        match outcome {
            Outcome::Success => Ok(()),
            Outcome::Discard(reason) => {
                tracing::warn!(pubsub = %self.spec.pubsub, topic = %message.topic, "event discarded: {reason}");
                Ok(())
            }
            Outcome::Drop(reason) => {
                tracing::warn!(pubsub = %self.spec.pubsub, topic = %message.topic, "event dropped: {reason}");
                self.dead_letter(message).await
            }
            // While closing, nothing is dead-lettered: the broker keeps it.
            Outcome::Retry(reason)
                if self.spec.dead_letter_topic.is_none() || self.is_stopping() =>
            {
                Err(Redeliver(reason))
            }
            Outcome::Retry(reason) => {
                tracing::warn!(pubsub = %self.spec.pubsub, topic = %message.topic, "delivery failed: {reason}");
                self.dead_letter(message).await
            }
        }
    }
}

/// Delivers each message on its own.
pub struct Deliverer {
    context: Arc<SubscriptionContext>,
    sink: Arc<dyn Sink>,
}

impl Deliverer {
    pub fn new(context: Arc<SubscriptionContext>, sink: Arc<dyn Sink>) -> Self {
        Self { context, sink }
    }
}

#[async_trait]
impl Handler for Deliverer {
    async fn handle(&self, message: Message) -> Result<(), Redeliver> {
        let context = &self.context;
        if context.is_stopping() {
            return Err(Redeliver("the subscription is closing".into()));
        }
        let (event, body, path, metadata) = match context.prepare(&message) {
            Prepared::Deliver {
                event,
                body,
                path,
                metadata,
                ..
            } => (event, body, path, metadata),
            Prepared::Skip(skip) => return context.skip(&message, skip).await,
        };
        let delivery = Event {
            pubsub: context.spec.pubsub.clone(),
            topic: message.topic.clone(),
            path,
            event,
            body,
            metadata,
        };
        let outcome = self.sink.deliver(&delivery).await;
        context.settle(&message, outcome).await
    }
}
