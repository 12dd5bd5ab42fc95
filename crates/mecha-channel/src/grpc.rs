//! gRPC apps: `AppCallback/OnInvoke` for invocations and
//! `AppCallbackHealthCheck/HealthCheck` for health, called over the
//! channel's pooled HTTP/2 client.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use mecha_invoke::body;
use mecha_invoke::headers::{self, API_TOKEN};
use mecha_invoke::{ChannelError, InvokeRequest, InvokeResponse};
use mecha_proto::common;
use mecha_proto::runtime::app_callback_client::AppCallbackClient;
use mecha_proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient;
use tonic::metadata::MetadataMap;

use crate::Channel;
use crate::client::Client;

/// The channel's client as a tonic transport: requests get the app's
/// scheme and authority.
#[derive(Clone)]
pub(crate) struct AppService {
    client: Client,
    base: Uri,
}

impl tower::Service<http::Request<tonic::body::Body>> for AppService {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (mut parts, grpc_body) = request.into_parts();
        let mut uri = self.base.clone().into_parts();
        uri.path_and_query = parts.uri.path_and_query().cloned();
        parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| self.base.clone());
        self.client
            .request(http::Request::from_parts(parts, body::boxed(grpc_body)))
    }
}

impl Channel {
    pub(crate) fn grpc_service(&self) -> AppService {
        AppService {
            client: self.client.clone(),
            base: self.base.parse().expect("the base URI is valid"),
        }
    }

    pub(crate) fn grpc_metadata(&self, headers: &HeaderMap) -> MetadataMap {
        let mut metadata = MetadataMap::from_headers(headers::to_grpc_metadata(headers));
        if let Some(token) = self.config.token.as_deref().and_then(|t| t.parse().ok()) {
            metadata.insert(API_TOKEN, token);
        }
        metadata
    }

    /// `AppCallbackHealthCheck/HealthCheck`.
    pub(crate) async fn grpc_health_check(&self) -> bool {
        let mut client = AppCallbackHealthCheckClient::new(self.grpc_service());
        let mut request = tonic::Request::new(());
        *request.metadata_mut() = self.grpc_metadata(&HeaderMap::new());
        client.health_check(request).await.is_ok()
    }
}

/// True when a status stands for a failure to reach the app, not for an
/// answer of the app.
fn is_transport_failure(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<hyper_util::client::legacy::Error>() || err.is::<hyper::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn verb_number(verb: &http::Method) -> i32 {
    match verb.as_str() {
        "GET" => 1,
        "HEAD" => 2,
        "POST" => 3,
        "PUT" => 4,
        "DELETE" => 5,
        "CONNECT" => 6,
        "OPTIONS" => 7,
        "TRACE" => 8,
        "PATCH" => 9,
        _ => 0,
    }
}

/// An invocation to a gRPC app: the body is read whole (within
/// `--max-body-size`) into `OnInvoke`'s `InvokeRequest`.
pub(crate) async fn invoke(
    channel: &Channel,
    req: InvokeRequest,
) -> Result<InvokeResponse, ChannelError> {
    if !channel.health.is_healthy() {
        return Err(ChannelError::Unhealthy);
    }
    let content_type = req.content_type().unwrap_or_default().to_owned();
    let data = body::collect(req.body, channel.config.max_body)
        .await
        .map_err(|err| {
            if body::is_too_large(err.as_ref()) {
                ChannelError::TooLarge(body::TooLarge {
                    limit: channel.config.max_body,
                })
            } else {
                ChannelError::Unreachable(format!("reading the request body: {err}"))
            }
        })?;
    let message = common::InvokeRequest {
        method: req.method,
        data: Some(prost_types::Any {
            type_url: req.any_type_url.unwrap_or_default(),
            value: data.to_vec(),
        }),
        content_type,
        http_extension: Some(common::HttpExtension {
            verb: verb_number(&req.verb),
            querystring: req.query,
        }),
    };
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = channel.grpc_metadata(&req.headers);
    let mut client = AppCallbackClient::new(channel.grpc_service())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let (answer, _slot) = channel
        .limit
        .run(async move { client.on_invoke(request).await })
        .await?;
    match answer {
        Ok(response) => {
            let (metadata, answer, _) = response.into_parts();
            let mut headers = app_headers(metadata.into_headers());
            if let Ok(value) = HeaderValue::from_str(&answer.content_type)
                && !answer.content_type.is_empty()
            {
                headers.insert(http::header::CONTENT_TYPE, value);
            }
            let data = answer.data.map(|any| any.value).unwrap_or_default();
            Ok(InvokeResponse {
                status: StatusCode::OK,
                headers,
                body: body::full(Bytes::from(data)),
                grpc_status: None,
            })
        }
        Err(status) if is_transport_failure(&status) => {
            Err(ChannelError::Unreachable(status.message().to_owned()))
        }
        Err(status) => {
            // The app answered with an error: kept whole for gRPC callers;
            // HTTP callers get, as from daprd, the HTTP status of its code
            // and the status as JSON.
            let grpc_status = mecha_invoke::GrpcStatus {
                code: status.code() as i32,
                message: status.message().to_owned(),
                details: status.details().to_vec().into(),
            };
            let http_status = mecha_invoke::status::http_status_for_grpc(grpc_status.code);
            let mut headers = app_headers(status.metadata().clone().into_headers());
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(InvokeResponse {
                status: StatusCode::from_u16(http_status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                headers,
                body: body::full(status_json(&grpc_status)),
                grpc_status: Some(grpc_status),
            })
        }
    }
}

/// The metadata a gRPC app answered with, as headers: every value of every
/// key (`HeaderMap::into_iter` names only the first value of a key), but
/// gRPC's own (`grpc-*`) and the content type.
fn app_headers(metadata: HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut current = None;
    for (name, value) in metadata {
        if let Some(name) = name {
            current = Some(name);
        }
        if let Some(name) = &current
            && !name.as_str().starts_with("grpc-")
            && name != http::header::CONTENT_TYPE
        {
            headers.append(name.clone(), value);
        }
    }
    headers
}

/// `google.rpc.Status`, to read the details a gRPC app sent.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// A gRPC app's error status as JSON, for an HTTP caller: `code` (the gRPC
/// code), `message` and `details`, each detail with its `@type` and its
/// bytes in base64 (`value`).
fn status_json(status: &mecha_invoke::GrpcStatus) -> String {
    use base64::Engine as _;
    use prost::Message as _;
    let details: Vec<serde_json::Value> = RpcStatus::decode(status.details.as_ref())
        .map(|decoded| decoded.details)
        .unwrap_or_default()
        .into_iter()
        .map(|any| {
            serde_json::json!({
                "@type": any.type_url,
                "value": base64::engine::general_purpose::STANDARD.encode(any.value),
            })
        })
        .collect();
    serde_json::json!({ "code": status.code, "message": status.message, "details": details })
        .to_string()
}
