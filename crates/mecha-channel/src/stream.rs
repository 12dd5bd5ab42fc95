//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`): the app dialled
//! in, and its events go out on that stream. Each delivery waits for the
//! app's `event_processed` answer, matched by event id; when the stream
//! ends, every delivery still waiting is retried.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use mecha_proto::runtime as pb;
use mecha_pubsub::{BulkEvent, BulkOutcome, Event, Outcome, Sink};
use tokio::sync::{mpsc, oneshot, watch};

use crate::pubsub::{outcome_of_grpc_status, topic_event_request};

/// The app on the other end of a streaming subscription.
pub struct StreamSink {
    events: mpsc::Sender<pb::TopicEventRequest>,
    pending: Mutex<HashMap<String, oneshot::Sender<i32>>>,
    /// Closed until the stream's initial answer went out, so no event goes
    /// before it.
    open: watch::Sender<bool>,
}

impl StreamSink {
    pub fn new(events: mpsc::Sender<pb::TopicEventRequest>) -> Self {
        Self {
            events,
            pending: Mutex::default(),
            open: watch::Sender::new(false),
        }
    }

    /// Lets events out (after the initial answer).
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// The app's answer for event `id`.
    pub fn processed(&self, id: &str, status: i32) {
        if let Some(waiting) = self.pending.lock().expect("lock").remove(id) {
            let _ = waiting.send(status);
        } else {
            tracing::debug!(id, "an answer for an event that is not waiting");
        }
    }

    /// The stream ended: whatever waits is retried.
    pub fn close(&self) {
        self.pending.lock().expect("lock").clear();
    }
}

#[async_trait]
impl Sink for StreamSink {
    async fn deliver(&self, event: &Event) -> Outcome {
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        let message = match topic_event_request(event) {
            Ok(message) => message,
            Err(err) => return Outcome::Retry(err),
        };
        let id = message.id.clone();
        let (answer, waiting) = oneshot::channel();
        {
            let mut pending = self.pending.lock().expect("lock");
            if pending.contains_key(&id) {
                return Outcome::Retry(format!("event {id} is already waiting for an answer"));
            }
            pending.insert(id.clone(), answer);
        }
        if self.events.send(message).await.is_err() {
            self.pending.lock().expect("lock").remove(&id);
            return Outcome::Retry("the subscription stream is closed".into());
        }
        match waiting.await {
            Ok(status) => outcome_of_grpc_status(status),
            Err(_) => {
                Outcome::Retry("the subscription stream ended before the app answered".into())
            }
        }
    }

    async fn deliver_bulk(&self, _event: &BulkEvent) -> BulkOutcome {
        BulkOutcome::All(Outcome::Retry(
            "streaming subscriptions take events one at a time".into(),
        ))
    }
}
