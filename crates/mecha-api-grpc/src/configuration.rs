//! Configuration over gRPC: get, and the server stream of
//! `SubscribeConfiguration` (its first message carries the id alone, the
//! next ones the changed items); the stream's end ends the subscription,
//! and `UnsubscribeConfiguration` ends the stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::Stream;
use mecha_api::Api;
use mecha_configuration::{Items, UpdateHandler};
use mecha_proto::common as common_pb;
use mecha_proto::runtime as pb;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::convert::{self, status_from};

fn items_pb(items: Items) -> std::collections::HashMap<String, common_pb::ConfigurationItem> {
    items
        .into_iter()
        .map(|(key, item)| {
            let item = common_pb::ConfigurationItem {
                value: item.value,
                version: item.version,
                metadata: item.metadata.into_iter().collect(),
            };
            (key, item)
        })
        .collect()
}

pub async fn get(
    api: &Api,
    request: Request<pb::GetConfigurationRequest>,
) -> Result<Response<pb::GetConfigurationResponse>, Status> {
    let req = request.into_inner();
    let items = api
        .get_configuration(&req.store_name, req.keys, convert::metadata(req.metadata))
        .await
        .map_err(status_from)?;
    Ok(Response::new(pb::GetConfigurationResponse {
        items: items_pb(items),
    }))
}

/// Sends updates down the stream, once its first message (the id) is out.
struct ToStream {
    sender: mpsc::Sender<Result<pb::SubscribeConfigurationResponse, Status>>,
    ready: watch::Receiver<bool>,
    stop: CancellationToken,
}

#[async_trait]
impl UpdateHandler for ToStream {
    async fn update(&self, subscription_id: &str, items: Items) {
        let mut ready = self.ready.clone();
        if ready.wait_for(|ready| *ready).await.is_err() {
            return;
        }
        let message = pb::SubscribeConfigurationResponse {
            id: subscription_id.to_owned(),
            items: items_pb(items),
        };
        if self.sender.send(Ok(message)).await.is_err() {
            // The app went away: end the subscription.
            self.stop.cancel();
        }
    }
}

/// The response stream; when the app closes it (drops it), the
/// subscription ends.
struct Subscription {
    receiver: mpsc::Receiver<Result<pb::SubscribeConfigurationResponse, Status>>,
    stop: CancellationToken,
}

impl Stream for Subscription {
    type Item = Result<pb::SubscribeConfigurationResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // An ended subscription drops its handler, and with it the last
        // sender: the stream then ends.
        if self.stop.is_cancelled() {
            return Poll::Ready(None);
        }
        self.receiver.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn subscribe(
    api: &Api,
    request: Request<pb::SubscribeConfigurationRequest>,
) -> Result<Response<BoxStream<pb::SubscribeConfigurationResponse>>, Status> {
    let req = request.into_inner();
    let (sender, receiver) = mpsc::channel(64);
    let (ready_tx, ready) = watch::channel(false);
    let stop = CancellationToken::new();
    let handler = Arc::new(ToStream {
        sender: sender.clone(),
        ready,
        stop: stop.clone(),
    });
    let (id, subscription_stop) = api
        .subscribe_configuration(
            &req.store_name,
            req.keys,
            convert::metadata(req.metadata),
            handler,
        )
        .await
        .map_err(status_from)?;
    // One token ends both: the stream's and the store's subscription.
    {
        let (stream_stop, subscription_stop) = (stop.clone(), subscription_stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stream_stop.cancelled() => subscription_stop.cancel(),
                _ = subscription_stop.cancelled() => stream_stop.cancel(),
            }
        });
    }
    let first = pb::SubscribeConfigurationResponse {
        id,
        items: Default::default(),
    };
    sender
        .send(Ok(first))
        .await
        .map_err(|_| Status::internal("the subscription stream closed"))?;
    let _ = ready_tx.send(true);
    drop(sender);
    Ok(Response::new(Box::pin(Subscription { receiver, stop })))
}

pub async fn unsubscribe(
    api: &Api,
    request: Request<pb::UnsubscribeConfigurationRequest>,
) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
    let req = request.into_inner();
    // As daprd: the id alone names the subscription, and an unknown one is
    // an answer, not an error.
    let answer = api
        .unsubscribe_configuration(None, &req.id)
        .map_err(status_from)?;
    Ok(Response::new(pb::UnsubscribeConfigurationResponse {
        ok: answer.is_ok(),
        message: answer.err().unwrap_or_default(),
    }))
}
