//! Configuration over gRPC: get, and the server stream of
//! `SubscribeConfiguration` (its first message carries the id alone, the
//! next ones the changed items); the stream's end ends the subscription,
//! and `UnsubscribeConfiguration` ends the stream.

use futures::StreamExt;
use mecha_api::Api;
use mecha_api::configuration::Items;
use mecha_proto::common as common_pb;
use mecha_proto::runtime as pb;
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

pub async fn subscribe(
    api: &Api,
    request: Request<pb::SubscribeConfigurationRequest>,
) -> Result<Response<BoxStream<pb::SubscribeConfigurationResponse>>, Status> {
    let req = request.into_inner();
    let updates = api
        .subscribe_configuration(&req.store_name, req.keys, convert::metadata(req.metadata))
        .await
        .map_err(status_from)?;
    // The first message carries the id alone; the app reads it first.
    let id = updates.id.clone();
    let first = pb::SubscribeConfigurationResponse {
        id: id.clone(),
        items: Default::default(),
    };
    let changes = updates.map(move |items| {
        Ok(pb::SubscribeConfigurationResponse {
            id: id.clone(),
            items: items_pb(items),
        })
    });
    Ok(Response::new(Box::pin(
        futures::stream::once(async { Ok(first) }).chain(changes),
    )))
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
