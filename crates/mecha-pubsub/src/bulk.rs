//! Bulk subscribe: messages are gathered into batches (up to
//! `maxMessagesCount`, waiting at most `maxAwaitDurationMs` after the first)
//! and each batch is delivered in one call per route. Each message is
//! settled by its own entry's answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cloudevent;
use crate::component::{Handler, Message, Metadata, PublishRequest, Redeliver};
use crate::delivery::{PUBSUB_NAME_KEY, Prepared, SubscriptionContext};
use crate::sink::{BulkEntry, BulkEvent, BulkPayload, Outcome, Sink};
use crate::subscription::BulkSettings;

struct Pending {
    message: Message,
    done: oneshot::Sender<Result<(), Redeliver>>,
}

/// The handler of a bulk subscription: each call waits for its batch.
pub struct BulkDeliverer {
    queue: mpsc::Sender<Pending>,
}

impl BulkDeliverer {
    /// Starts the batching task; it ends once the component dropped the
    /// handler.
    pub fn start(
        context: Arc<SubscriptionContext>,
        sink: Arc<dyn Sink>,
        settings: BulkSettings,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(settings.max_messages.max(1) * 2);
        tokio::spawn(batches(rx, context, sink, settings));
        Arc::new(Self { queue })
    }
}

#[async_trait]
impl Handler for BulkDeliverer {
    async fn handle(&self, message: Message) -> Result<(), Redeliver> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Pending { message, done })
            .await
            .map_err(|_| Redeliver("the bulk subscription is closed".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(Redeliver("the bulk subscription is closed".into())))
    }
}

async fn batches(
    mut rx: mpsc::Receiver<Pending>,
    context: Arc<SubscriptionContext>,
    sink: Arc<dyn Sink>,
    settings: BulkSettings,
) {
    let mut sending: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + settings.max_await;
        while batch.len() < settings.max_messages {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(pending)) => batch.push(pending),
                Ok(None) | Err(_) => break,
            }
        }
        let prepared = prepare_batch(&context, batch).await;
        // One batch at a time goes to the subscriber, in order; the next
        // one is gathered and read while it is out.
        if let Some(previous) = sending.take() {
            let _ = previous.await;
        }
        let (context, sink) = (context.clone(), sink.clone());
        sending = Some(tokio::spawn(async move {
            send_batch(&context, sink.as_ref(), prepared).await;
        }));
    }
    if let Some(last) = sending {
        let _ = last.await;
    }
}

/// A batch read and routed, ready to send.
struct PreparedBatch {
    batch: Vec<Pending>,
    /// By message: its result when it is settled without being sent.
    results: Vec<Option<Result<(), Redeliver>>>,
    /// Route by route, the entries and the index of their message.
    by_path: BTreeMap<String, Vec<(usize, BulkEntry)>>,
}

async fn prepare_batch(context: &SubscriptionContext, batch: Vec<Pending>) -> PreparedBatch {
    let mut results: Vec<Option<Result<(), Redeliver>>> = Vec::with_capacity(batch.len());
    let mut by_path: BTreeMap<String, Vec<(usize, BulkEntry)>> = BTreeMap::new();
    for (index, pending) in batch.iter().enumerate() {
        if context.is_stopping() {
            results.push(Some(Err(Redeliver("the subscription is closing".into()))));
            continue;
        }
        match context.prepare(&pending.message) {
            Prepared::Skip(skip) => results.push(Some(context.skip(&pending.message, skip).await)),
            Prepared::Deliver {
                event,
                body,
                path,
                metadata,
                whole,
            } => {
                let (payload, content_type) = if context.raw_payload() {
                    let content_type = pending
                        .message
                        .metadata
                        .get("content-type")
                        .cloned()
                        .unwrap_or_else(|| cloudevent::OCTET_STREAM.to_owned());
                    (BulkPayload::Raw(pending.message.data.clone()), content_type)
                } else {
                    (
                        BulkPayload::CloudEvent(event),
                        cloudevent::CONTENT_TYPE.to_owned(),
                    )
                };
                // A raw payload goes as its bytes, not as its event.
                let json = (whole && !context.raw_payload()).then_some(body);
                let entry = BulkEntry {
                    entry_id: cloudevent::new_id(),
                    payload,
                    content_type,
                    metadata,
                    json,
                };
                by_path.entry(path).or_default().push((index, entry));
                results.push(None);
            }
        }
    }
    PreparedBatch {
        batch,
        results,
        by_path,
    }
}

async fn send_batch(context: &SubscriptionContext, sink: &dyn Sink, prepared: PreparedBatch) {
    let spec = &context.spec;
    let PreparedBatch {
        batch,
        mut results,
        mut by_path,
    } = prepared;
    // Read while the previous batch was out: if the subscription began to
    // close meanwhile, the broker keeps these.
    if context.is_stopping() {
        by_path.clear();
        for result in results.iter_mut().filter(|r| r.is_none()) {
            *result = Some(Err(Redeliver("the subscription is closing".into())));
        }
    }
    let topic = batch
        .first()
        .map(|p| p.message.topic.clone())
        .unwrap_or_default();
    for (path, entries) in by_path {
        let (indices, entries): (Vec<usize>, Vec<BulkEntry>) = entries.into_iter().unzip();
        let event = BulkEvent {
            id: cloudevent::new_id(),
            pubsub: spec.pubsub.clone(),
            topic: topic.clone(),
            path,
            metadata: Metadata::from([(PUBSUB_NAME_KEY.to_owned(), spec.pubsub.clone())]),
            entries,
        };
        let outcome = sink.deliver_bulk(&event).await;
        let mut failed = Vec::new();
        for (index, entry) in indices.iter().zip(&event.entries) {
            let message = &batch[*index].message;
            results[*index] = match outcome.of(&entry.entry_id) {
                Outcome::Retry(reason) => {
                    failed.push((*index, reason));
                    continue;
                }
                other => Some(context.settle(message, other).await),
            };
        }
        settle_failed(context, &batch, &mut results, failed).await;
    }
    for (pending, result) in batch.into_iter().zip(results) {
        let result = result.unwrap_or_else(|| Err(Redeliver("not delivered".into())));
        let _ = pending.done.send(result);
    }
}

/// Entries the subscriber did not take: to the dead-letter topic in one
/// bulk publish when the subscription has one, else redelivered.
async fn settle_failed(
    context: &SubscriptionContext,
    batch: &[Pending],
    results: &mut [Option<Result<(), Redeliver>>],
    failed: Vec<(usize, String)>,
) {
    if failed.is_empty() {
        return;
    }
    let dead_letter_topic = match &context.spec.dead_letter_topic {
        Some(topic) if !context.is_stopping() => topic.clone(),
        _ => {
            for (index, reason) in failed {
                results[index] = Some(Err(Redeliver(reason)));
            }
            return;
        }
    };
    let requests = failed
        .iter()
        .map(|(index, _)| PublishRequest {
            topic: dead_letter_topic.clone(),
            data: batch[*index].message.data.clone(),
            content_type: None,
            metadata: batch[*index].message.metadata.clone(),
        })
        .collect();
    let published = context.dead_letter_many(&dead_letter_topic, requests).await;
    for ((index, reason), outcome) in failed.into_iter().zip(published) {
        results[index] = Some(match outcome {
            Ok(()) => Ok(()),
            Err(err) => Err(Redeliver(format!(
                "{reason}; sending to the dead-letter topic failed: {err:#}"
            ))),
        });
    }
}
