//! The runtime's running subscriptions: started from their specs, listed by
//! the metadata API, stopped one by one (streaming subscriptions) or all at
//! once at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::broker::{PubSubHandle, SubscribeError};
use crate::bulk::BulkDeliverer;
use crate::component::{Handler, SubscribeRequest, Subscription};
use crate::delivery::{Deliverer, SubscriptionContext};
use crate::sink::Sink;
use crate::subscription::SubscriptionSpec;

struct Active {
    id: u64,
    spec: Arc<SubscriptionSpec>,
    stop: CancellationToken,
    subscription: Subscription,
}

/// Identifies a started subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

#[derive(Default)]
pub struct Subscriptions {
    active: Mutex<Vec<Active>>,
    next: AtomicU64,
}

impl Subscriptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes `sink` to `spec`'s topic on `broker`.
    pub async fn start(
        &self,
        spec: SubscriptionSpec,
        broker: &PubSubHandle,
        sink: Arc<dyn Sink>,
    ) -> Result<SubscriptionId, SubscribeError> {
        let stop = CancellationToken::new();
        let topic = spec.topic.clone();
        let metadata = spec.metadata.clone();
        let bulk = spec.bulk;
        let context = Arc::new(SubscriptionContext::new(
            spec,
            broker.clone(),
            stop.clone(),
        )?);
        let spec = context.spec.clone();
        let (handler, max_in_flight): (Arc<dyn Handler>, Option<usize>) = match bulk {
            // A batch can only fill when the component hands over that
            // many messages at once, and the next one while it is out;
            // batches of one stay one message at a time.
            Some(settings) => (
                BulkDeliverer::start(context, sink, settings),
                Some(match settings.max_messages {
                    0 | 1 => 1,
                    many => many * 2,
                }),
            ),
            None => (Arc::new(Deliverer::new(context, sink)), None),
        };
        let request = SubscribeRequest {
            topic,
            metadata,
            max_in_flight,
        };
        let subscription = broker.subscribe(request, handler).await?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        tracing::info!(pubsub = %spec.pubsub, topic = %spec.topic, kind = spec.kind.as_str(), "subscribed");
        self.active.lock().expect("lock").push(Active {
            id,
            spec,
            stop,
            subscription,
        });
        Ok(SubscriptionId(id))
    }

    /// Every running subscription, in start order.
    pub fn list(&self) -> Vec<Arc<SubscriptionSpec>> {
        self.active
            .lock()
            .expect("lock")
            .iter()
            .map(|a| a.spec.clone())
            .collect()
    }

    /// Stops one subscription, waiting up to `grace` for its deliveries.
    pub async fn stop(&self, id: SubscriptionId, grace: Duration) {
        let active = {
            let mut list = self.active.lock().expect("lock");
            list.iter()
                .position(|a| a.id == id.0)
                .map(|at| list.remove(at))
        };
        if let Some(active) = active {
            close(active, grace).await;
        }
    }

    /// Stops every subscription (at shutdown).
    pub async fn close_all(&self, grace: Duration) {
        let all = std::mem::take(&mut *self.active.lock().expect("lock"));
        futures::future::join_all(all.into_iter().map(|a| close(a, grace))).await;
    }
}

async fn close(active: Active, grace: Duration) {
    // First: answers that come back now are not dead-lettered.
    active.stop.cancel();
    active.subscription.close(grace).await;
    tracing::debug!(pubsub = %active.spec.pubsub, topic = %active.spec.topic, "unsubscribed");
}
