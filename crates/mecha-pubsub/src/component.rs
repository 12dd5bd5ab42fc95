//! The contract between the pub/sub block and its components.
//!
//! A component moves opaque bytes (the CloudEvent the runtime built) between
//! publishers and subscribers. It owns what only the broker can do: storing,
//! consumer groups, acknowledgement and redelivery. Everything Dapr defines
//! above the broker (CloudEvents, scopes, routing, dead letters, the app's
//! answer) is the block's, in [`crate::delivery`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Request, message and subscription metadata.
pub type Metadata = BTreeMap<String, String>;

/// A capability a pub/sub component declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// The broker expires messages itself from `ttlInSeconds` (Dapr's
    /// `MESSAGE_TTL`); without it the runtime stamps `expiration` into the
    /// CloudEvent and drops expired events on delivery.
    MessageTtl,
    /// Topic wildcards in subscriptions (Dapr's `SUBSCRIBE_WILDCARDS`).
    SubscribeWildcards,
    /// Native bulk publish (Dapr's `BULK_PUBSUB`).
    BulkPublish,
    /// The broker is shared between processes and every consumer group
    /// (`consumerID`) gets every message. Mecha's own, for the conformance
    /// suite; not shown by the metadata API.
    ConsumerGroups,
    /// The subscribers of one consumer group share its messages, each
    /// message going to one of them.
    CompetingConsumers,
    /// A message a subscriber took but did not acknowledge is delivered
    /// again after the subscriber's process dies, and what is published
    /// while no subscriber runs waits for it.
    Durable,
    /// With one delivery in flight, the messages of one publisher on one
    /// topic arrive in the order they were published.
    Ordered,
}

impl Feature {
    /// The name Dapr's metadata API reports, for the features Dapr has.
    pub fn dapr_name(self) -> Option<&'static str> {
        match self {
            Feature::MessageTtl => Some("MESSAGE_TTL"),
            Feature::SubscribeWildcards => Some("SUBSCRIBE_WILDCARDS"),
            Feature::BulkPublish => Some("BULK_PUBSUB"),
            _ => None,
        }
    }
}

/// One message to publish: the bytes are the CloudEvent (or the raw
/// payload), stored as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishRequest {
    pub topic: String,
    pub data: Bytes,
    pub content_type: Option<String>,
    /// The request's metadata (`metadata.*`), for the keys a component
    /// understands (such as `ttlInSeconds` or `routingKey`).
    pub metadata: Metadata,
}

/// One message a component delivers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub data: Bytes,
    /// What the broker carries beside the bytes (headers, properties).
    pub metadata: Metadata,
}

/// What to subscribe to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub topic: String,
    /// The subscription's metadata.
    pub metadata: Metadata,
    /// The most handler calls the component may have running at once for
    /// this subscription; `None` leaves it to the component's settings.
    /// One means strictly one after the other.
    pub max_in_flight: Option<usize>,
}

/// The answer of a handler that did not take a message: the component must
/// deliver it again later, never drop it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Redeliver(pub String);

/// What receives the messages of one subscription (the block's delivery to
/// the app).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// `Ok`: the message is processed; acknowledge it to the broker.
    /// `Err`: it is not; deliver it again later, with a back-off.
    async fn handle(&self, message: Message) -> Result<(), Redeliver>;
}

/// A pub/sub component.
#[async_trait]
pub trait PubSub: Send + Sync {
    fn features(&self) -> &[Feature];

    /// Publishes one message. `Ok` means the broker has it: durably, for a
    /// component that declares [`Feature::Durable`].
    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()>;

    /// Publishes many messages, answering one result per message in order.
    /// By default each is published on its own, a few at a time.
    async fn bulk_publish(&self, requests: Vec<PublishRequest>) -> Vec<anyhow::Result<()>> {
        use futures::StreamExt;
        futures::stream::iter(requests)
            .map(|request| self.publish(request))
            .buffered(BULK_PUBLISH_PARALLELISM)
            .collect()
            .await
    }

    /// Starts delivering the topic's messages to `handler` until the
    /// returned subscription is closed.
    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription>;

    /// Releases the component's connections (at shutdown, after every
    /// subscription was closed).
    async fn close(&self) {}
}

/// How many messages the default bulk publish has in flight.
pub const BULK_PUBLISH_PARALLELISM: usize = 16;

/// A running subscription: the component's consumer task, stopped by
/// [`Subscription::close`] (or by dropping the handle).
pub struct Subscription {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Subscription {
    /// Runs `consume` as the subscription's task. It must return soon after
    /// its token is cancelled, once the handler calls it started are done.
    pub fn spawn<F, Fut>(consume: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(consume(stop.clone()));
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops consuming and waits, up to `grace`, for deliveries in flight.
    /// What was taken but not acknowledged is left to the broker.
    pub async fn close(mut self, grace: Duration) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && tokio::time::timeout(grace, task).await.is_err()
        {
            tracing::warn!(
                ?grace,
                "a subscription did not stop within its grace period"
            );
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("stopped", &self.stop.is_cancelled())
            .finish()
    }
}
