//! `pubsub.in-memory`: topics inside one process. Every subscription gets
//! every message (no consumer groups, nothing shared between processes,
//! nothing kept across restarts, and a message published while nobody
//! subscribes is gone), as in Dapr.
//!
//! Unlike Dapr's, a publisher waits only when a subscriber's queue is full,
//! a refused message is redelivered with a back-off until it is taken (Dapr
//! gives up after ten tries), and the publish metadata travels with the
//! message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use mecha_core::{ComponentContext, ComponentFactory, MetadataReader};
use mecha_pubsub::redelivery::{Backoff, deliver_until_taken};
use mecha_pubsub::*;
use tokio::sync::mpsc;

/// How many messages wait for one subscriber before publishers wait.
const QUEUE: usize = 1024;
/// Deliveries in flight per subscription with `concurrencyMode: parallel`
/// when `concurrency` does not say.
const DEFAULT_PARALLEL: usize = 16;

const FEATURES: &[Feature] = &[Feature::Ordered];

pub const PUBSUB_IN_MEMORY: ComponentFactory<dyn PubSub, usize> =
    ComponentFactory::new("pubsub.in-memory", configure, |in_flight| {
        Box::pin(connect(in_flight))
    });

fn configure(_version: &str, metadata: &MetadataReader<'_>, _ctx: &ComponentContext) -> usize {
    // The runtime sets consumerID on every pub/sub component; with no
    // consumer groups here it means nothing.
    let _ = metadata.string("consumerID");
    match metadata.string_or("concurrencyMode", "single").as_str() {
        "single" => 1,
        "parallel" => usize::try_from(metadata.i64_or("concurrency", DEFAULT_PARALLEL as i64))
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PARALLEL),
        other => {
            metadata.error(format!(
                "metadata field 'concurrencyMode': '{other}' is neither single nor parallel"
            ));
            1
        }
    }
}

async fn connect(in_flight: usize) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(Arc::new(MemoryPubSub::new(in_flight)))
}

/// The `pubsub.in-memory` component.
pub struct MemoryPubSub {
    topics: Mutex<HashMap<String, Vec<mpsc::Sender<Message>>>>,
    in_flight: usize,
}

impl MemoryPubSub {
    /// A bus delivering up to `in_flight` messages at once per subscription.
    pub fn new(in_flight: usize) -> Self {
        Self {
            topics: Mutex::default(),
            in_flight: in_flight.max(1),
        }
    }

    fn subscribers(&self, topic: &str) -> Vec<mpsc::Sender<Message>> {
        let mut topics = self.topics.lock().expect("lock");
        match topics.get_mut(topic) {
            Some(queues) => {
                queues.retain(|q| !q.is_closed());
                queues.clone()
            }
            None => Vec::new(),
        }
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()> {
        let message = Message {
            topic: request.topic,
            data: request.data,
            metadata: request.metadata,
        };
        for queue in self.subscribers(&message.topic) {
            // A subscriber that just went away does not fail the publish.
            let _ = queue.send(message.clone()).await;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription> {
        let (queue, mut rx) = mpsc::channel::<Message>(QUEUE);
        self.topics
            .lock()
            .expect("lock")
            .entry(request.topic)
            .or_default()
            .push(queue);
        let in_flight = request.max_in_flight.unwrap_or(self.in_flight).max(1);
        Ok(Subscription::spawn(move |stop| async move {
            let messages = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                .take_until(stop.clone().cancelled_owned());
            messages
                .for_each_concurrent(in_flight, |message| {
                    let (handler, stop) = (handler.clone(), stop.clone());
                    async move {
                        deliver_until_taken(handler.as_ref(), message, Backoff::default(), &stop)
                            .await;
                    }
                })
                .await;
        }))
    }
}
