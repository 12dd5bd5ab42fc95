//! `SubscribeTopicEventsAlpha1`: the app dials in, names a topic, and gets
//! its events on the stream, answering each with `event_processed`.
//!
//! The first message must be the initial request; the runtime answers it
//! with exactly one `initial_response` before any event (the Python SDK
//! reads that first message blindly). The subscription ends when the app
//! closes its side or the runtime shuts down.

use mecha_api::Api;
use mecha_api::pubsub::{Outcome, outcome_of_status_code};
use mecha_proto::runtime as pb;
use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Incoming;
use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Outgoing;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, status_from};

/// Messages waiting to go out on one stream.
const OUTGOING: usize = 64;

pub(crate) async fn subscribe(
    api: &Api,
    request: Request<Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
) -> Result<Response<BoxStream<pb::SubscribeTopicEventsResponseAlpha1>>, Status> {
    let mut inbound = request.into_inner();
    let initial = match inbound.message().await? {
        Some(pb::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Incoming::InitialRequest(initial)),
        }) => initial,
        _ => return Err(Status::invalid_argument("initial request is required")),
    };
    let mut events = api
        .subscribe_stream(
            &initial.pubsub_name,
            &initial.topic,
            convert::metadata(initial.metadata),
            initial.dead_letter_topic,
        )
        .await
        .map_err(status_from)?;
    let answers = events.answers();
    let (out, stream) = mpsc::channel(OUTGOING);
    // The initial answer goes first, before any event.
    let _ = out
        .send(Ok(pb::SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(Outgoing::InitialResponse(
                pb::SubscribeTopicEventsResponseInitialAlpha1 {},
            )),
        }))
        .await;
    let forward_answers = answers.clone();
    // The forward task hands the subscription back when it ends (at
    // shutdown, or when the app's side is gone): it lives on, and answers
    // for the deliveries in flight are taken, until the app's stream ends.
    let forward = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let message = match event.fields() {
                Ok(fields) => convert::topic_event(fields),
                Err(err) => {
                    forward_answers.processed(event.id(), Outcome::Retry(err));
                    continue;
                }
            };
            let message = pb::SubscribeTopicEventsResponseAlpha1 {
                subscribe_topic_events_response_type: Some(Outgoing::EventMessage(message)),
            };
            if out.send(Ok(message)).await.is_err() {
                break;
            }
        }
        events.close_queue();
        events
    });
    tokio::spawn(async move {
        loop {
            match inbound.message().await {
                Ok(Some(pb::SubscribeTopicEventsRequestAlpha1 {
                    subscribe_topic_events_request_type: Some(Incoming::EventProcessed(done)),
                })) => {
                    let status = done.status.map(|s| s.status).unwrap_or_default();
                    answers.processed(&done.id, outcome_of_status_code(status));
                }
                Ok(Some(_)) => {
                    tracing::warn!(
                        "a streaming subscription sent a second initial request; closing it"
                    );
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        // Dropping the subscription (in the task, or handed back by it)
        // ends it.
        forward.abort();
        drop(forward.await);
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
}
