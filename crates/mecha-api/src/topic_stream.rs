//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`): the app dialled
//! in, and the topic's events go out on its stream. Each delivery waits for
//! the app's answer, matched by event id; when the stream ends, every
//! delivery still waiting is retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mecha_pubsub::{BulkEvent, BulkOutcome, Event, Outcome, Sink, SubscriptionId};
use tokio::sync::{mpsc, oneshot};

use crate::Api;

/// Events waiting to go out on one stream.
const EVENTS_WAITING: usize = 64;

/// A streaming subscription: its events, one at a time, until the runtime
/// shuts down. Dropping it ends the subscription (deliveries waiting for an
/// answer are retried).
pub struct TopicEvents {
    api: Api,
    id: SubscriptionId,
    events: mpsc::Receiver<Event>,
    answers: EventAnswers,
}

/// Where the app's answers to a [`TopicEvents`]' events go.
#[derive(Clone)]
pub struct EventAnswers(Arc<StreamSink>);

impl EventAnswers {
    /// The app's answer for event `id`.
    pub fn processed(&self, id: &str, outcome: Outcome) {
        let waiting = self.0.pending.lock().expect("lock").remove(id);
        match waiting {
            Some(waiting) => {
                let _ = waiting.send(outcome);
            }
            None => tracing::debug!(id, "an answer for an event that is not waiting"),
        }
    }
}

impl TopicEvents {
    /// The next event; `None` once the runtime shuts down.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::select! {
            event = self.events.recv() => event,
            () = self.api.runtime().shutdown_requested() => None,
        }
    }

    /// Takes no more events: a delivery not yet queued fails at once (and
    /// is retried); those waiting for the app's answer still take it,
    /// until this is dropped.
    pub fn close_queue(&mut self) {
        self.events.close();
    }

    /// Where the app's answers go (usable while events are awaited).
    pub fn answers(&self) -> EventAnswers {
        self.answers.clone()
    }
}

impl Drop for TopicEvents {
    fn drop(&mut self) {
        // Whatever waits for an answer is retried.
        self.answers.0.pending.lock().expect("lock").clear();
        let (api, id) = (self.api.clone(), self.id);
        tokio::spawn(async move { api.unsubscribe(id).await });
    }
}

/// The subscription's side: hands each event to the stream and waits for
/// its answer.
pub(crate) struct StreamSink {
    events: mpsc::Sender<Event>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
}

impl StreamSink {
    pub(crate) fn new() -> (Arc<Self>, mpsc::Receiver<Event>) {
        let (events, receiver) = mpsc::channel(EVENTS_WAITING);
        let sink = Arc::new(Self {
            events,
            pending: Mutex::default(),
        });
        (sink, receiver)
    }

    pub(crate) fn into_events(
        self: Arc<Self>,
        api: Api,
        id: SubscriptionId,
        events: mpsc::Receiver<Event>,
    ) -> TopicEvents {
        TopicEvents {
            api,
            id,
            events,
            answers: EventAnswers(self),
        }
    }
}

#[async_trait]
impl Sink for StreamSink {
    async fn deliver(&self, event: &Event) -> Outcome {
        let id = event.id().to_owned();
        let (answer, waiting) = oneshot::channel();
        {
            let mut pending = self.pending.lock().expect("lock");
            if pending.contains_key(&id) {
                return Outcome::Retry(format!("event {id} is already waiting for an answer"));
            }
            pending.insert(id.clone(), answer);
        }
        if self.events.send(event.clone()).await.is_err() {
            self.pending.lock().expect("lock").remove(&id);
            return Outcome::Retry("the subscription stream is closed".into());
        }
        match waiting.await {
            Ok(outcome) => outcome,
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
