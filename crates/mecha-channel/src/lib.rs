//! The app channel: the runtime's calls into its app.
//!
//! One pooled client per app, speaking what `--app-protocol` says:
//! HTTP/1.1 (`http`, through [`mecha_http1::Pool`]; `https`) or HTTP/2 (`h2c`,
//! `grpc`, `grpcs`), through hyper's pooled client but for `http`; TLS
//! without certificate verification for `https` and `grpcs`, as daprd
//! does. Calls pass `--app-max-concurrency` (with a bounded waiting line),
//! carry `APP_API_TOKEN` as `dapr-api-token`, and are refused while health
//! checks find the app unhealthy.

mod bindings;
mod client;
mod discovery;
mod grpc;
mod health;
mod jobs;
mod limit;
mod protocol;
mod pubsub;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderValue, Request, Response, Uri};
use mecha_invoke::body::{self, Body};
use mecha_invoke::headers::{self, API_TOKEN};
use mecha_invoke::{AppChannel, ChannelError, InvokeRequest, InvokeResponse};

pub use client::Protocol;
pub use health::HealthCheck;

/// How to reach the app.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub protocol: Protocol,
    /// `--app-channel-address`.
    pub address: String,
    pub port: u16,
    /// `--app-max-concurrency`; `None` is unlimited.
    pub max_concurrency: Option<usize>,
    /// `APP_API_TOKEN`.
    pub token: Option<String>,
    pub health: Option<HealthCheck>,
    /// `--max-body-size`, for bodies that must be read whole (gRPC apps).
    pub max_body: usize,
}

/// The app channel of one app.
pub struct Channel {
    config: ChannelConfig,
    /// How it speaks to the app: HTTP or gRPC.
    speaks: &'static dyn protocol::AppProtocol,
    client: client::Client,
    /// Plain HTTP apps (`--app-protocol http`) are called through this pool
    /// instead of `client`.
    http1: Option<Arc<mecha_http1::Pool>>,
    /// `scheme://host:port`.
    base: String,
    /// The same, parsed once.
    origin: Option<(http::uri::Scheme, http::uri::Authority)>,
    limit: limit::Limiter,
    health: Arc<health::Health>,
}

impl Channel {
    /// Creates the channel and starts its health checks (if any).
    pub fn start(config: ChannelConfig) -> Arc<Self> {
        let client = client::build(config.protocol);
        let scheme = if config.protocol.is_tls() {
            "https"
        } else {
            "http"
        };
        let host = if config.address.contains(':') {
            format!("[{}]", config.address)
        } else {
            config.address.clone()
        };
        let base = format!("{scheme}://{host}:{}", config.port);
        // An address that makes no authority (`--app-channel-address` is
        // not checked) fails each call, as it did before, rather than the
        // start.
        let origin = base
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.into_parts().authority)
            .map(|authority| {
                let scheme = if config.protocol.is_tls() {
                    http::uri::Scheme::HTTPS
                } else {
                    http::uri::Scheme::HTTP
                };
                (scheme, authority)
            });
        let http1 = origin
            .as_ref()
            .filter(|_| config.protocol == Protocol::Http)
            .and_then(|(_, authority)| mecha_http1::Pool::new(authority.as_str()).ok());
        let channel = Arc::new(Self {
            http1,
            origin,
            speaks: protocol::of(config.protocol),
            limit: limit::Limiter::new(config.max_concurrency),
            health: health::Health::new(config.health.is_some()),
            client,
            base,
            config,
        });
        if let Some(check) = channel.config.health.clone() {
            health::spawn(Arc::downgrade(&channel), check);
        }
        channel
    }

    /// Waits until the app accepts connections on its port.
    pub async fn wait_for_app(&self) {
        let target = (self.config.address.as_str(), self.config.port);
        let mut logged = false;
        loop {
            if tokio::net::TcpStream::connect(target).await.is_ok() {
                return;
            }
            if !logged {
                tracing::info!(address = %self.config.address, port = self.config.port, "waiting for the app to listen");
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, ChannelError> {
        let invalid =
            |err: http::Error| ChannelError::Unreachable(format!("invalid request path: {err}"));
        let Some((scheme, authority)) = &self.origin else {
            return Err(ChannelError::Unreachable(format!(
                "the app's address makes no URI: {}",
                self.base
            )));
        };
        Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(invalid)
    }

    fn add_token(&self, headers: &mut http::HeaderMap) {
        if let Some(token) = self
            .config
            .token
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(API_TOKEN, token);
        }
    }

    /// Sends a request to the app, within the concurrency limit; the slot
    /// is held until the response body is done (see `limit`).
    pub(crate) async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<Response<Body>, ChannelError> {
        if !self.health.is_healthy() {
            return Err(ChannelError::Unhealthy);
        }
        let (response, slot) = self.limit.run(self.dispatch(request)).await?;
        Ok(response?.map(|body| limit::hold(body, slot)))
    }

    /// Asks the app something about itself (its subscriptions, the input
    /// bindings it takes): outside the concurrency limit, as daprd's
    /// discovery calls are.
    pub(crate) async fn ask(&self, request: Request<Body>) -> Result<Response<Body>, ChannelError> {
        self.dispatch(request).await
    }

    /// The request on its way, with the app's token, owning all it needs.
    fn dispatch(
        &self,
        mut request: Request<Body>,
    ) -> impl std::future::Future<Output = Result<Response<Body>, ChannelError>> + Send + 'static
    {
        self.add_token(request.headers_mut());
        let route = match &self.http1 {
            Some(pool) => Route::Pool(pool.clone(), request),
            None => Route::Client(self.client.request(request)),
        };
        async move {
            let sent = match route {
                Route::Pool(pool, request) => pool.send(request).await,
                Route::Client(response) => response
                    .await
                    .map(|response| response.map(body::boxed))
                    .map_err(Into::into),
            };
            sent.map_err(|err| ChannelError::Unreachable(mecha_invoke::describe(err.as_ref())))
        }
    }

    pub(crate) async fn invoke_http(
        &self,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ChannelError> {
        let path = if req.query.is_empty() {
            format!("/{}", req.method)
        } else {
            format!("/{}?{}", req.method, req.query)
        };
        let mut headers = req.headers;
        // A body of known length goes out with Content-Length (simple HTTP
        // servers do not read chunked requests).
        if !headers.contains_key(http::header::CONTENT_LENGTH)
            && let Some(length) = http_body::Body::size_hint(&req.body).exact()
            && (length > 0
                || !matches!(
                    req.verb,
                    http::Method::GET | http::Method::HEAD | http::Method::DELETE
                ))
        {
            headers.insert(http::header::CONTENT_LENGTH, length.into());
        }
        let mut request = Request::builder()
            .method(req.verb)
            .uri(self.uri(&path)?)
            .body(req.body)
            .map_err(|err| ChannelError::Unreachable(err.to_string()))?;
        *request.headers_mut() = headers;
        let response = self.send(request).await?;
        let (mut parts, body) = response.into_parts();
        headers::strip_response(&mut parts.headers);
        Ok(InvokeResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            grpc_status: None,
        })
    }
}

#[async_trait]
impl AppChannel for Channel {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, ChannelError> {
        self.speaks.invoke(self, req).await
    }

    async fn forward_grpc(&self, request: Request<Body>) -> Result<Response<Body>, ChannelError> {
        self.speaks.forward_grpc(self, request).await
    }
}

/// Where a request to the app goes: the HTTP/1.1 pool (plain HTTP apps),
/// or hyper's pooled client, whose call is already under way.
#[expect(
    clippy::large_enum_variant,
    reason = "lives once per call inside the call's future; boxing the request would add an allocation per call"
)]
enum Route {
    Pool(Arc<mecha_http1::Pool>, Request<Body>),
    Client(hyper_util::client::legacy::ResponseFuture),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--app-channel-address` is not checked: one that makes no URI fails
    /// each call with a message, and does not stop the start.
    #[tokio::test]
    async fn an_app_address_that_makes_no_uri_fails_calls_not_the_start() {
        let channel = Channel::start(ChannelConfig {
            protocol: Protocol::Http,
            address: "not an address".into(),
            port: 3000,
            max_concurrency: None,
            token: None,
            health: None,
            max_body: 1024,
        });
        let Err(err) = channel
            .invoke(InvokeRequest {
                method: "m".into(),
                verb: http::Method::GET,
                query: String::new(),
                headers: http::HeaderMap::new(),
                body: body::empty(),
                caller: None,
                any_type_url: None,
            })
            .await
        else {
            panic!("no URI, no call");
        };
        assert!(
            err.to_string().contains("the app's address makes no URI"),
            "{err}"
        );
    }
}
