//! `bindings.http`: an output binding calling the HTTP endpoint of its
//! `url`, as daprd's — the operation is the method (`create` is `POST`;
//! `get`, `head`, `post`, `put`, `patch`, `delete`, `options`, `trace`),
//! the request's `path` is appended to the URL, and its metadata keys that
//! start with a capital letter are request headers. The answer is the
//! response body, with `statusCode`, `status` and the response headers as
//! metadata; a status other than 2xx is an error unless `errorIfNot2XX` is
//! false (on the component, or on the request).
//!
//! Where Mecha differs: a response larger than `maxResponseBodySize` is an
//! error (daprd cuts it short without saying so), and `https` servers are
//! verified against the Mozilla roots.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mecha_bindings::*;
use mecha_core::{ComponentFactory, MetadataReader};

const OPERATIONS: &[&str] = &[
    "create", "get", "head", "post", "put", "patch", "delete", "options", "trace",
];

/// The typed configuration of a `bindings.http` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpBindingConfig {
    pub url: String,
    pub max_response_body: u64,
    pub error_if_not_2xx: bool,
    /// A header and its value sent with every request.
    pub security_token: Option<(String, String)>,
    pub timeout: Option<Duration>,
}

impl HttpBindingConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let url = meta.required("url");
        if !url.is_empty() {
            match url.parse::<Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {}
                _ => meta.error(format!(
                    "metadata field 'url': '{url}' is not an http:// or https:// URL"
                )),
            }
        }
        let max_response_body = match meta.string("maxResponseBodySize") {
            None => 100 * 1024 * 1024,
            Some(text) => mecha_core::units::parse_quantity(&text).unwrap_or_else(|err| {
                meta.error(format!("metadata field 'maxResponseBodySize': {err}"));
                0
            }),
        };
        let security_token = match (
            meta.string("securityToken"),
            meta.string("securityTokenHeader"),
        ) {
            (Some(token), Some(header)) => {
                if HeaderName::try_from(header.as_str()).is_err() {
                    meta.error(format!(
                        "metadata field 'securityTokenHeader': '{header}' is not a header name"
                    ));
                }
                Some((header, token))
            }
            (None, None) => None,
            _ => {
                meta.error("securityToken and securityTokenHeader go together");
                None
            }
        };
        for key in [
            "MTLSRootCA",
            "MTLSClientCert",
            "MTLSClientKey",
            "MTLSRenegotiation",
        ] {
            if meta.string(key).is_some() {
                meta.error(format!(
                    "{key}: TLS client certificates are not supported yet"
                ));
            }
        }
        Self {
            url,
            max_response_body,
            error_if_not_2xx: meta.bool_or("errorIfNot2XX", true),
            security_token,
            timeout: meta.optional_duration("responseTimeout", Duration::from_millis(1)),
        }
    }
}

pub const BINDINGS_HTTP: ComponentFactory<dyn Binding, HttpBindingConfig> = ComponentFactory::new(
    "bindings.http",
    |_, metadata, _| HttpBindingConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: HttpBindingConfig) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(HttpBinding::new(config)))
}

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_bindings::BindingsBlock>(BINDINGS_HTTP);
}

/// The `bindings.http` binding.
pub struct HttpBinding {
    config: HttpBindingConfig,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Binding for HttpBinding {
    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

fn invalid(message: impl Into<String>) -> BindingError {
    BindingError::Invalid(message.into())
}

impl HttpBinding {
    pub fn new(config: HttpBindingConfig) -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Self {
            config,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The URL with the request's `path`, refusing `..` as daprd does.
    fn url(&self, req: &InvokeRequest) -> Result<Uri, BindingError> {
        let url = match req.meta("path") {
            Some(path) => format!(
                "{}/{}",
                self.config.url.trim_end_matches('/'),
                path.trim_start_matches('/')
            ),
            None => self.config.url.clone(),
        };
        if url.contains("..") {
            return Err(invalid(format!(
                "invalid path: {}",
                req.meta("path").unwrap_or_default()
            )));
        }
        url.parse::<Uri>()
            .map_err(|err| invalid(format!("invalid URL '{url}': {err}")))
    }
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "t" | "y" | "yes" | "on"
    )
}

#[async_trait]
impl OutputBinding for HttpBinding {
    fn operations(&self) -> &[&'static str] {
        OPERATIONS
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError> {
        self.check_operation(&req.operation)?;
        let method = match req.operation.as_str() {
            "create" => Method::POST,
            other => Method::from_bytes(other.to_ascii_uppercase().as_bytes())
                .expect("a checked operation is a method"),
        };
        let with_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
        let mut request = Request::builder().method(method).uri(self.url(req)?);
        let headers = request.headers_mut().expect("a valid request so far");
        if with_body {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (key, value) in &req.metadata {
            let key = key.trim();
            // Headers are the keys with a capital first letter, and the
            // trace context the runtime adds, as daprd's binding sends.
            let trace = matches!(key, "traceparent" | "tracestate" | "baggage");
            if !trace && !key.starts_with(|c: char| c.is_uppercase()) {
                continue;
            }
            let name = HeaderName::try_from(key)
                .map_err(|_| invalid(format!("metadata '{key}' is not a header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("metadata '{key}' is not a header value")))?;
            headers.insert(name, value);
        }
        if let Some((header, token)) = &self.config.security_token {
            let name = HeaderName::try_from(header.as_str())
                .map_err(|_| invalid(format!("'{header}' is not a header name")))?;
            let value = HeaderValue::from_str(token)
                .map_err(|_| invalid("securityToken is not a header value"))?;
            headers.insert(name, value);
        }
        let body = if with_body {
            req.data.clone()
        } else {
            Bytes::new()
        };
        let request = request
            .body(Full::new(body))
            .map_err(|err| invalid(format!("invalid request: {err}")))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| BindingError::Backend(anyhow::anyhow!("http: {err}")))?;
            let (parts, body) = response.into_parts();
            let limit = self.config.max_response_body.min(usize::MAX as u64) as usize;
            let data = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|err| {
                    if err.is::<http_body_util::LengthLimitError>() {
                        BindingError::Backend(anyhow::anyhow!(
                            "the response body exceeds maxResponseBodySize ({limit} bytes)"
                        ))
                    } else {
                        BindingError::Backend(anyhow::anyhow!("http: reading the response: {err}"))
                    }
                })?
                .to_bytes();
            Ok::<_, BindingError>((parts, data))
        };
        let (parts, data) = match self.config.timeout {
            Some(timeout) => tokio::time::timeout(timeout, call).await.map_err(|_| {
                BindingError::Backend(anyhow::anyhow!("http: no answer within {timeout:?}"))
            })??,
            None => call.await?,
        };
        let mut metadata = Metadata::new();
        let status = parts.status;
        metadata.insert("statusCode".into(), status.as_u16().to_string());
        metadata.insert(
            "status".into(),
            format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
        );
        for name in parts.headers.keys() {
            let values: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            metadata.insert(canonical(name.as_str()), values.join(", "));
        }
        let error_if_not_2xx = req
            .meta("errorIfNot2XX")
            .map_or(self.config.error_if_not_2xx, truthy);
        if error_if_not_2xx && !status.is_success() {
            return Err(BindingError::Answered {
                message: format!("received status code {}", status.as_u16()),
                metadata,
            });
        }
        Ok(Some(InvokeResponse { data, metadata }))
    }
}

/// A header name as Go writes it: `content-type` is `Content-Type`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_as_go_writes_them() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-request-id"), "X-Request-Id");
        assert_eq!(canonical("etag"), "Etag");
    }
}
