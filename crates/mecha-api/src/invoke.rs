//! Service invocation: an app calls another app by id (or itself), over
//! HTTP, gRPC `InvokeService`, or transparent gRPC proxying.
//!
//! The caller's runtime strips what must not travel, starts or continues
//! the trace, limits the body, resolves the target and hands the call to
//! the local app channel or to the runtime serving the target. That runtime
//! stamps the caller's identity and calls its app.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use mecha_core::{ApiError, GrpcCode};
use mecha_invoke::body::Body;
use mecha_invoke::headers::{CALLEE_APP_ID, CALLER_APP_ID, CALLER_NAMESPACE, HTTP_STATUS};
use mecha_invoke::{AppId, Caller, ChannelError, GrpcStatus, InvokeResponse, status, trace};
pub use mecha_invoke::{InvokeRequest, body, headers};

use crate::Api;

const CODE: &str = "ERR_DIRECT_INVOKE";

/// An invocation error for target `id`, in daprd's words.
fn invoke_error(
    id: &str,
    http_status: u16,
    grpc_code: GrpcCode,
    err: impl std::fmt::Display,
) -> ApiError {
    ApiError::new(
        CODE,
        http_status,
        grpc_code,
        format!("failed to invoke, id: {id}, err: {err}"),
    )
}

/// The error for a call without a target app id.
pub fn missing_app_id() -> ApiError {
    ApiError::new(
        CODE,
        404,
        GrpcCode::NotFound,
        "failed getting app id either from the URL path or the header dapr-app-id",
    )
}

/// The gRPC services a runtime answers itself, on either port: a call to
/// one of them is never proxied (the peer plane's is served on the internal
/// port only; elsewhere they answer `UNIMPLEMENTED`).
const OWN_GRPC_SERVICES: &[&str] = &[
    "/dapr.proto.runtime.v1.Dapr/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/mecha.internal.v1.Invocation/",
];

/// Whether a gRPC call to `path` is for a runtime's own services, never
/// proxied.
pub fn is_own_grpc_service(path: &str) -> bool {
    OWN_GRPC_SERVICES.iter().any(|own| path.starts_with(own))
}

/// Why a gRPC call for a service the runtime does not serve cannot be
/// proxied: it names no target (`dapr-app-id`). daprd's proxy answers
/// `UNKNOWN` in these words; `None` when the call names its target.
pub fn missing_proxy_target(headers: &HeaderMap) -> Option<&'static str> {
    (!headers.contains_key(headers::APP_ID)).then_some(
        "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found",
    )
}

/// A failure of the app channel, for target `id`.
pub fn channel_error(id: &str, err: ChannelError) -> ApiError {
    match err {
        // daprd waits without bound here; Mecha refuses once the line is full.
        ChannelError::Overloaded { .. } => invoke_error(id, 429, GrpcCode::ResourceExhausted, err),
        ChannelError::NotGrpc(_) => invoke_error(id, 501, GrpcCode::Unimplemented, err),
        // A body over --max-body-size fails the call as daprd's read does:
        // 500, like any failure to reach the app.
        ChannelError::TooLarge(_)
        | ChannelError::NoApp
        | ChannelError::Unhealthy
        | ChannelError::Unreachable(_) => invoke_error(id, 500, GrpcCode::Internal, err),
    }
}

/// An HTTP status as daprd turns it into an error for a gRPC caller
/// (`ErrorFromHTTPResponseCode`): the code daprd maps the status to, the
/// status text as message and `ErrorInfo` reason, and `http.code` and
/// `http.error_message` (the first 63 characters of `detail`) in its
/// metadata.
pub fn app_http_error(status: StatusCode, detail: &str) -> ApiError {
    let reason = status.canonical_reason().unwrap_or("Unknown");
    let excerpt: String = detail.chars().take(63).collect();
    let code = status.as_u16();
    ApiError::new(CODE, code, status::grpc_code_for_http(code), reason)
        .with_reason(reason)
        .with_info_metadata("http.code", code.to_string())
        .with_info_metadata("http.error_message", excerpt)
}

/// gRPC transport headers that are not the caller's metadata.
const TRANSPORT_HEADERS: &[&str] = &[
    "content-type",
    "te",
    "user-agent",
    "content-length",
    "accept-encoding",
];

/// A gRPC `InvokeService` call, in the API layer's terms.
#[derive(Debug)]
pub struct ServiceCall {
    /// The target app (`app` or `app.namespace`).
    pub target: String,
    pub method: String,
    pub verb: http::Method,
    pub query: String,
    /// The caller's gRPC metadata, as headers.
    pub metadata: HeaderMap,
    pub data: Bytes,
    pub content_type: String,
    /// The type URL of the `Any` the data came in.
    pub type_url: String,
}

/// The app's answer to a [`ServiceCall`].
#[derive(Debug)]
pub struct ServiceAnswer {
    pub data: Bytes,
    pub content_type: String,
    /// For the caller: the app's headers as gRPC metadata, and the HTTP
    /// status of an HTTP app's answer (`dapr-http-status`).
    pub metadata: HeaderMap,
}

/// A [`ServiceCall`] that failed.
#[derive(Debug)]
pub enum ServiceFailure {
    /// The runtime's own error, or an HTTP app's non-2xx answer as daprd
    /// turns it into an error ([`app_http_error`]); `metadata` goes with it.
    Error {
        error: ApiError,
        metadata: HeaderMap,
    },
    /// A gRPC app's error status, passed on whole (code, message,
    /// details), with the app's metadata, as daprd passes it.
    App {
        status: GrpcStatus,
        metadata: HeaderMap,
    },
}

impl From<ApiError> for ServiceFailure {
    fn from(error: ApiError) -> Self {
        Self::Error {
            error,
            metadata: HeaderMap::new(),
        }
    }
}

/// `dapr-http-status` metadata for an app's HTTP status.
fn http_status_metadata(metadata: &mut HeaderMap, status: StatusCode) {
    metadata.insert(HTTP_STATUS, http::HeaderValue::from(status.as_u16()));
}

impl Api {
    fn namespace(&self) -> Option<&str> {
        self.runtime().info.namespace.as_deref()
    }

    /// Whether `target` names this runtime's own app.
    fn is_self(&self, target: &AppId) -> bool {
        target.id == self.runtime().info.app_id
            && target.namespace_or(self.namespace()) == self.namespace()
    }

    /// The caller side: invokes `method` on the app `target` (`app` or
    /// `app.namespace`).
    pub async fn invoke(
        &self,
        target: &str,
        mut req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        // daprd answers an app id it cannot use as any failed invocation.
        let app = AppId::parse(target)
            .map_err(|err| invoke_error(target, 500, GrpcCode::Internal, err))?;
        self.outbound(&mut req)
            .await
            .map_err(|err| invoke_error(target, 500, GrpcCode::Internal, err))?;
        if self.is_self(&app) {
            return self.invoke_local(req).await;
        }
        let address = self.resolve(&app).await?;
        let peers = self.peers().ok_or_else(|| {
            invoke_error(
                target,
                500,
                GrpcCode::Internal,
                "no runtime-to-runtime transport",
            )
        })?;
        let result = peers.invoke(&address, &app.id, req).await;
        if result.is_err() {
            // The runtime we found may be gone: ask again next time.
            if let Some(resolver) = self.resolver() {
                resolver.invalidate(&app.id, app.namespace_or(self.namespace()));
            }
        }
        result
    }

    /// Readies a call this runtime sends on (to an app or an actor): its
    /// body within `--max-body-size`, hop-by-hop headers removed, the next
    /// hop of its trace, and this runtime's app as the caller.
    pub(crate) async fn outbound(
        &self,
        req: &mut InvokeRequest,
    ) -> Result<(), mecha_invoke::body::TooLarge> {
        let body = std::mem::replace(&mut req.body, mecha_invoke::body::empty());
        req.body = self.body_limit().stream(&req.headers, body).await?;
        headers::strip_for_forwarding(&mut req.headers);
        trace::next_hop(&mut req.headers);
        req.caller = Some(Caller {
            app_id: self.runtime().info.app_id.clone(),
            namespace: self.namespace().map(str::to_owned),
        });
        Ok(())
    }

    /// gRPC `InvokeService`: the call as a gRPC caller makes it (whole data
    /// in an `Any`, metadata for headers), the answer as it gets it.
    pub async fn invoke_service(&self, call: ServiceCall) -> Result<ServiceAnswer, ServiceFailure> {
        let mut headers = call.metadata;
        for name in TRANSPORT_HEADERS {
            headers.remove(*name);
        }
        let grpc_keys: Vec<_> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("grpc-"))
            .cloned()
            .collect();
        for key in grpc_keys {
            headers.remove(key);
        }
        let content_type = if call.content_type.is_empty() && !call.type_url.is_empty() {
            "application/x-protobuf".to_owned()
        } else {
            call.content_type
        };
        headers::set(&mut headers, "content-type", &content_type);
        // The length is known: HTTP apps get a Content-Length, not chunks.
        headers::set(&mut headers, "content-length", &call.data.len().to_string());
        let request = InvokeRequest {
            method: call.method,
            verb: call.verb,
            query: call.query,
            headers,
            body: mecha_invoke::body::full(call.data),
            caller: None,
            any_type_url: Some(call.type_url).filter(|t| !t.is_empty()),
        };
        let response = self.invoke(&call.target, request).await?;
        if let Some(status) = response.grpc_status {
            let mut headers = response.headers;
            headers.remove(http::header::CONTENT_TYPE);
            return Err(ServiceFailure::App {
                status,
                metadata: headers::to_grpc_metadata(&headers),
            });
        }
        let data = self
            .body_limit()
            .collect(response.body)
            .await
            .map_err(|err| ApiError::internal(format!("reading the app's answer: {err}")))?;
        if !response.status.is_success() {
            let mut metadata = HeaderMap::new();
            http_status_metadata(&mut metadata, response.status);
            return Err(ServiceFailure::Error {
                error: app_http_error(response.status, &String::from_utf8_lossy(&data)),
                metadata,
            });
        }
        let content_type = response
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut metadata = headers::to_grpc_metadata(&response.headers);
        http_status_metadata(&mut metadata, response.status);
        Ok(ServiceAnswer {
            data,
            content_type,
            metadata,
        })
    }

    /// The address of the runtime serving `app`.
    async fn resolve(&self, app: &AppId) -> Result<String, ApiError> {
        let target = app.to_string();
        let resolver = self.resolver().ok_or_else(|| {
            invoke_error(
                &target,
                500,
                GrpcCode::Internal,
                "name resolution is not configured",
            )
        })?;
        match resolver
            .resolve(&app.id, app.namespace_or(self.namespace()))
            .await
        {
            Ok(Some(address)) => Ok(address),
            Ok(None) => Err(invoke_error(
                &target,
                500,
                GrpcCode::Internal,
                format!("couldn't find service: {target} (no runtime serving it is registered)"),
            )),
            Err(err) => Err(invoke_error(
                &target,
                500,
                GrpcCode::Internal,
                format!("name resolution failed: {err:#}"),
            )),
        }
    }

    /// The callee side: hands an invocation to this runtime's app, with the
    /// caller's identity stamped by the runtime.
    pub async fn invoke_local(&self, mut req: InvokeRequest) -> Result<InvokeResponse, ApiError> {
        let own = &self.runtime().info.app_id;
        let channel = self
            .app_channel()
            .ok_or_else(|| channel_error(own, ChannelError::NoApp))?;
        headers::strip_for_forwarding(&mut req.headers);
        if let Some(caller) = &req.caller {
            headers::set(&mut req.headers, CALLER_APP_ID, &caller.app_id);
            if let Some(ns) = &caller.namespace {
                headers::set(&mut req.headers, CALLER_NAMESPACE, ns);
            }
        }
        headers::set(&mut req.headers, CALLEE_APP_ID, own);
        trace::next_hop(&mut req.headers);
        let mut response = channel
            .invoke(req)
            .await
            .map_err(|err| channel_error(own, err))?;
        headers::strip_response(&mut response.headers);
        Ok(response)
    }

    /// The caller side of transparent gRPC proxying: `request` carries
    /// `dapr-app-id`; it goes to that app's gRPC server as it is.
    pub async fn proxy_grpc(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Body>, ApiError> {
        let Some(target) = request
            .headers()
            .get(headers::APP_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return Err(missing_app_id());
        };
        // As daprd's proxy: a target it cannot find is `UNKNOWN`, one it
        // cannot reach `UNAVAILABLE`.
        let app = AppId::parse(&target)
            .map_err(|err| invoke_error(&target, 500, GrpcCode::Unknown, err))?;
        prepare_proxied(
            request.headers_mut(),
            &self.runtime().info.app_id,
            self.namespace(),
        );
        if self.is_self(&app) {
            return self
                .proxy_grpc_local(request)
                .await
                .map_err(|err| with_grpc_code(err, GrpcCode::Unavailable));
        }
        let address = self
            .resolve(&app)
            .await
            .map_err(|err| with_grpc_code(err, GrpcCode::Unknown))?;
        let peers = self.peers().ok_or_else(|| {
            invoke_error(
                &target,
                500,
                GrpcCode::Unknown,
                "no runtime-to-runtime transport",
            )
        })?;
        let result = peers
            .forward_grpc(&address, request)
            .await
            .map_err(|err| with_grpc_code(err, GrpcCode::Unavailable));
        if result.is_err()
            && let Some(resolver) = self.resolver()
        {
            resolver.invalidate(&app.id, app.namespace_or(self.namespace()));
        }
        result
    }

    /// The callee side of transparent gRPC proxying.
    pub async fn proxy_grpc_local(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Body>, ApiError> {
        let own = &self.runtime().info.app_id;
        let channel = self
            .app_channel()
            .ok_or_else(|| channel_error(own, ChannelError::NoApp))?;
        headers::set(request.headers_mut(), CALLEE_APP_ID, own);
        trace::next_hop(request.headers_mut());
        channel
            .forward_grpc(request)
            .await
            .map_err(|err| channel_error(own, err))
    }
}

fn with_grpc_code(err: ApiError, grpc_code: GrpcCode) -> ApiError {
    ApiError { grpc_code, ..err }
}

/// A proxied call drops what must not travel (the API token, forged caller
/// identity) and carries the caller's identity and trace.
fn prepare_proxied(headers: &mut HeaderMap, app_id: &str, namespace: Option<&str>) {
    for name in [
        headers::API_TOKEN,
        CALLER_APP_ID,
        CALLER_NAMESPACE,
        CALLEE_APP_ID,
    ] {
        headers.remove(name);
    }
    headers::set(headers, CALLER_APP_ID, app_id);
    if let Some(ns) = namespace {
        headers::set(headers, CALLER_NAMESPACE, ns);
    }
    trace::next_hop(headers);
}
