//! How the runtime speaks to its app, one implementation per
//! `--app-protocol` family. Each seam of the app channel (invoke, proxy,
//! deliver events, bindings, health) is a method of [`AppProtocol`]; the
//! channel picks its implementation once, when it starts, and lends both
//! its transport (the pooled client, the concurrency limit, health, the
//! token). The work of each seam lives with its block's code (`pubsub.rs`,
//! `bindings.rs`, `jobs.rs`, `grpc.rs`, `health.rs`), one function per protocol.

use async_trait::async_trait;
use http::{Request, Response};
use mecha_bindings::{AppAnswer, InputEvent, Refused};
use mecha_invoke::body::Body;
use mecha_invoke::{ChannelError, InvokeRequest, InvokeResponse};
use mecha_pubsub::{BulkEvent, BulkOutcome, Event, Outcome, SubscriptionSpec};
use mecha_scheduler::{JobData, Refused as JobRefused};

use crate::discovery::Asked;
use crate::{Channel, Protocol, grpc, health};

#[async_trait]
pub(crate) trait AppProtocol: Send + Sync {
    /// Service invocation.
    async fn invoke(
        &self,
        channel: &Channel,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ChannelError>;

    /// Transparent gRPC proxying: the caller's own HTTP/2 request.
    async fn forward_grpc(
        &self,
        channel: &Channel,
        request: Request<Body>,
    ) -> Result<Response<Body>, ChannelError>;

    /// One pub/sub event.
    async fn deliver(&self, channel: &Channel, event: &Event) -> Outcome;

    /// A batch of pub/sub events.
    async fn deliver_bulk(&self, channel: &Channel, event: &BulkEvent) -> BulkOutcome;

    /// The subscriptions the app declares (one question; see `discovery`).
    async fn subscriptions(
        &self,
        channel: &Channel,
    ) -> Asked<Result<Vec<SubscriptionSpec>, String>>;

    /// Whether the app takes the events of input binding `name` (one
    /// question; see `discovery`).
    async fn takes_binding(&self, channel: &Channel, name: &str, route_path: &str) -> Asked<bool>;

    /// One input binding event.
    async fn deliver_binding(
        &self,
        channel: &Channel,
        name: &str,
        route_path: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused>;

    /// One fire of a job.
    async fn deliver_job(
        &self,
        channel: &Channel,
        name: &str,
        data: &JobData,
    ) -> Result<(), JobRefused>;

    /// One health probe.
    async fn probe(&self, channel: &Channel, path: &str) -> bool;
}

/// The implementation for `protocol`.
pub(crate) fn of(protocol: Protocol) -> &'static dyn AppProtocol {
    if protocol.is_grpc() { &Grpc } else { &Http }
}

/// HTTP apps (`http`, `https`, `h2c`): Dapr's HTTP callbacks.
struct Http;

#[async_trait]
impl AppProtocol for Http {
    async fn invoke(
        &self,
        channel: &Channel,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ChannelError> {
        channel.invoke_http(req).await
    }

    async fn forward_grpc(
        &self,
        channel: &Channel,
        _request: Request<Body>,
    ) -> Result<Response<Body>, ChannelError> {
        Err(ChannelError::NotGrpc(channel.config.protocol.to_string()))
    }

    async fn deliver(&self, channel: &Channel, event: &Event) -> Outcome {
        channel.deliver_http(event).await
    }

    async fn deliver_bulk(&self, channel: &Channel, event: &BulkEvent) -> BulkOutcome {
        channel.deliver_bulk_http(event).await
    }

    async fn subscriptions(
        &self,
        channel: &Channel,
    ) -> Asked<Result<Vec<SubscriptionSpec>, String>> {
        channel.subscriptions_http().await
    }

    async fn takes_binding(&self, channel: &Channel, _name: &str, route_path: &str) -> Asked<bool> {
        channel.subscribes_http(route_path).await
    }

    async fn deliver_binding(
        &self,
        channel: &Channel,
        _name: &str,
        route_path: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused> {
        channel.deliver_binding_http(route_path, event).await
    }

    async fn deliver_job(
        &self,
        channel: &Channel,
        name: &str,
        data: &JobData,
    ) -> Result<(), JobRefused> {
        channel.deliver_job_http(name, data).await
    }

    async fn probe(&self, channel: &Channel, path: &str) -> bool {
        health::probe_http(channel, path).await
    }
}

/// gRPC apps (`grpc`, `grpcs`): Dapr's `AppCallback` services.
struct Grpc;

#[async_trait]
impl AppProtocol for Grpc {
    async fn invoke(
        &self,
        channel: &Channel,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ChannelError> {
        grpc::invoke(channel, req).await
    }

    async fn forward_grpc(
        &self,
        channel: &Channel,
        request: Request<Body>,
    ) -> Result<Response<Body>, ChannelError> {
        let (mut parts, body) = request.into_parts();
        parts.uri = channel.uri(&mecha_invoke::path_and_query(&parts.uri))?;
        channel.send(Request::from_parts(parts, body)).await
    }

    async fn deliver(&self, channel: &Channel, event: &Event) -> Outcome {
        channel.deliver_grpc(event).await
    }

    async fn deliver_bulk(&self, channel: &Channel, event: &BulkEvent) -> BulkOutcome {
        channel.deliver_bulk_grpc(event).await
    }

    async fn subscriptions(
        &self,
        channel: &Channel,
    ) -> Asked<Result<Vec<SubscriptionSpec>, String>> {
        channel.subscriptions_grpc().await
    }

    async fn takes_binding(&self, channel: &Channel, name: &str, _route_path: &str) -> Asked<bool> {
        channel.subscribes_grpc(name).await
    }

    async fn deliver_binding(
        &self,
        channel: &Channel,
        name: &str,
        _route_path: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused> {
        channel.deliver_binding_grpc(name, event).await
    }

    async fn deliver_job(
        &self,
        channel: &Channel,
        name: &str,
        data: &JobData,
    ) -> Result<(), JobRefused> {
        channel.deliver_job_grpc(name, data).await
    }

    async fn probe(&self, channel: &Channel, _path: &str) -> bool {
        channel.grpc_health_check().await
    }
}
