//! Wire types to API types and back.

use std::collections::HashMap;

use mecha_api::state::{Concurrency, Consistency, Metadata, SetRequest};
use mecha_core::error::ERROR_DOMAIN;
use mecha_core::{ApiError, GrpcCode};
use mecha_proto::common::{StateItem, StateOptions, state_options};
use mecha_proto::runtime as pb;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// An [`ApiError`] as a gRPC status carrying Dapr's rich details
/// (`google.rpc.ErrorInfo` with domain `dapr.io`, plus resource and field
/// details when the error has them) in `grpc-status-details-bin`.
pub fn status_from(err: ApiError) -> Status {
    let mut details = ErrorDetails::new();
    let metadata: HashMap<String, String> = err
        .info_metadata()
        .into_iter()
        .flatten()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    details.set_error_info(err.info_reason(), ERROR_DOMAIN, metadata);
    if let Some(resource) = err.resource() {
        details.set_resource_info(resource.resource_type, &resource.resource_name, "", "");
    }
    if let Some(violation) = err.field_violation() {
        details.add_bad_request_violation(&violation.field, &violation.description);
    }
    <Status as StatusExt>::with_error_details(code(err.grpc_code), err.message, details)
}

fn code(code: GrpcCode) -> Code {
    Code::from_i32(code as i32)
}

pub(crate) fn metadata(map: HashMap<String, String>) -> Metadata {
    map.into_iter().collect()
}

pub(crate) fn consistency(value: i32) -> Consistency {
    match state_options::StateConsistency::try_from(value) {
        Ok(state_options::StateConsistency::ConsistencyStrong) => Consistency::Strong,
        _ => Consistency::Eventual,
    }
}

fn concurrency(value: i32) -> Concurrency {
    match state_options::StateConcurrency::try_from(value) {
        Ok(state_options::StateConcurrency::ConcurrencyFirstWrite) => Concurrency::FirstWrite,
        _ => Concurrency::LastWrite,
    }
}

pub(crate) fn options(options: Option<StateOptions>) -> (Concurrency, Consistency) {
    let options = options.unwrap_or_default();
    (
        concurrency(options.concurrency),
        consistency(options.consistency),
    )
}

pub(crate) fn set_request(item: StateItem) -> SetRequest {
    let (concurrency, consistency) = options(item.options);
    SetRequest {
        key: item.key,
        value: item.value,
        etag: item.etag.map(|etag| etag.value),
        concurrency,
        consistency,
        ttl: None,
        metadata: metadata(item.metadata),
    }
}

/// An event as a streaming subscriber receives it.
pub(crate) fn topic_event(fields: mecha_api::pubsub::EventFields) -> pb::TopicEventRequest {
    pb::TopicEventRequest {
        id: fields.id,
        source: fields.source,
        r#type: fields.kind,
        spec_version: fields.spec_version,
        data_content_type: fields.data_content_type,
        data: fields.data,
        topic: fields.topic,
        pubsub_name: fields.pubsub_name,
        path: fields.path,
        extensions: Some(mecha_proto::wkt::json_struct(&fields.extensions)),
    }
}
