//! The call pipeline: every call on the API port, over either transport,
//! passes through here once.
//!
//! 1. The adapter reads the request head into a [`Call`] with
//!    [`Api::admit`]: the only place the API token is checked, against the
//!    only exemption list ([`token_exempt`]).
//! 2. It runs the operation inside the call's [`Seam`] ([`Call::seam`]), the
//!    one place where spans, metrics and resiliency policies attach.
//! 3. Bodies are read within the call's [`BodyLimit`], the one place the
//!    API applies `--max-body-size` (the app channel bounds what it reads
//!    whole from the app by the same value, given when it is made).

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use mecha_core::ApiError;
use mecha_invoke::body::{self, Body, BoxError, TooLarge};
use tracing::Instrument;
pub use tracing::instrument::Instrumented;

use crate::Api;

/// The wire a call came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http,
    Grpc,
}

/// Why a call may use the API: the caller's identity, as far as the API
/// port knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// No API token is configured: anyone on the port is the app.
    Open,
    /// A health check, open to anyone.
    Exempt,
    /// The caller presented the configured token: it is the app.
    Token,
}

/// One call on the API port, as the pipeline knows it: read from the
/// request head, borrowed from it (admitting a call copies nothing).
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub transport: Transport,
    /// The operation: the API group (HTTP: `state`, `publish`, `invoke`, ...)
    /// or the gRPC method's path.
    pub operation: &'a str,
    pub admission: Admission,
    /// The request's headers, read when asked (see [`Call::traceparent`]).
    headers: &'a HeaderMap,
    /// When the caller stops waiting (gRPC `grpc-timeout`).
    pub deadline: Option<Instant>,
    pub body_limit: BodyLimit,
}

/// A call refused for its API token. HTTP answers daprd's plain-text 401
/// ([`Refused::HTTP_BODY`]); gRPC answers [`Refused::error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Why, in daprd's words.
    pub detail: &'static str,
}

impl Refused {
    /// The plain-text body daprd answers an HTTP call without the right
    /// token (Go's `http.Error` ends it with a line break).
    pub const HTTP_BODY: &'static str = "invalid api token\n";

    /// The refusal as daprd's gRPC answer: `UNAUTHENTICATED`, the status
    /// text as message, the detail in `ErrorInfo`.
    pub fn error(&self) -> ApiError {
        crate::invoke::app_http_error(http::StatusCode::UNAUTHORIZED, self.detail)
    }
}

/// Whether a call is open without `dapr-api-token`: the health checks,
/// which orchestrators and SDKs probe before they know the token, and
/// nothing else, as in daprd. On HTTP that is a GET of `/v1.0/healthz` or
/// `/v1.0/healthz/outbound`, matched exactly as the router serves them (any
/// other spelling, such as `/v1.0/healthz/`, falls through to service
/// invocation, which must never be open); on gRPC, the health service
/// (`grpc.health.v1`).
pub fn token_exempt(transport: Transport, method: &Method, path: &str) -> bool {
    match transport {
        Transport::Http => {
            method == Method::GET && matches!(path, "/v1.0/healthz" | "/v1.0/healthz/outbound")
        }
        Transport::Grpc => path.starts_with("/grpc.health.v1.Health/"),
    }
}

impl Api {
    /// Reads a request head into its [`Call`], or refuses it for its API
    /// token. `operation` names what the adapter routes the call to.
    pub fn admit<'a>(
        &self,
        transport: Transport,
        method: &Method,
        path: &str,
        operation: &'a str,
        headers: &'a HeaderMap,
    ) -> Result<Call<'a>, Refused> {
        let admission = match &self.runtime().info.api_token {
            None => Admission::Open,
            Some(_) if token_exempt(transport, method, path) => Admission::Exempt,
            Some(expected) => {
                match headers.get(API_TOKEN) {
                    None => {
                        return Err(Refused {
                            detail: "missing api token in request metadata",
                        });
                    }
                    Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => {}
                    Some(_) => {
                        return Err(Refused {
                            detail: "authentication error: api token mismatch",
                        });
                    }
                }
                Admission::Token
            }
        };
        let deadline = match transport {
            Transport::Grpc => headers
                .get(GRPC_TIMEOUT)
                .and_then(|v| grpc_timeout(v.as_bytes()))
                .map(|timeout| Instant::now() + timeout),
            Transport::Http => None,
        };
        Ok(Call {
            transport,
            operation,
            admission,
            headers,
            deadline,
            body_limit: self.body_limit(),
        })
    }

    /// `--max-body-size`.
    pub fn body_limit(&self) -> BodyLimit {
        BodyLimit {
            bytes: self.runtime().info.max_body_size,
        }
    }
}

impl<'a> Call<'a> {
    /// The caller's `traceparent`, when it sent one (looked up when asked:
    /// a disabled span never asks).
    pub fn traceparent(&self) -> Option<&'a HeaderValue> {
        self.headers.get(TRACEPARENT)
    }

    /// The seam this call's work runs in. It is taken before the work is
    /// made, because the work takes the request the call borrows from.
    pub fn seam(&self) -> Seam {
        Seam {
            span: tracing::debug_span!(
                "call",
                transport = ?self.transport,
                operation = %self.operation,
                admission = ?self.admission,
                traceparent = ?self.traceparent(),
                deadline = ?self.deadline,
                body_limit = self.body_limit.bytes(),
            ),
        }
    }
}

/// The one seam every admitted call's work passes through, where spans,
/// metrics and resiliency policies attach.
#[must_use = "a seam does nothing until it runs the call's work"]
pub struct Seam {
    span: tracing::Span,
}

impl Seam {
    /// Runs the call's work.
    pub fn run<F: Future>(self, work: F) -> Instrumented<F> {
        work.instrument(self.span)
    }
}

// Header names as constants: a lookup by `&str` parses the name each time.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const API_TOKEN: HeaderName = HeaderName::from_static(mecha_invoke::headers::API_TOKEN);
const TRACEPARENT: HeaderName = HeaderName::from_static(mecha_invoke::trace::TRACEPARENT);

/// `grpc-timeout`: digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which error daprd answers a body over the limit with, by how it reads
/// the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Decoded as it is read (state, bindings, publish):
    /// `ERR_MALFORMED_REQUEST`.
    Malformed,
    /// Read whole as bytes (lock, query, metadata): `ERR_BODY_READ`.
    BodyRead,
}

/// `--max-body-size`, applied to every body the runtime takes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit {
    bytes: usize,
}

impl BodyLimit {
    pub fn bytes(self) -> usize {
        self.bytes
    }

    /// Whether a declared `Content-Length` is over the limit.
    fn declared_over(self, headers: &HeaderMap) -> bool {
        headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > self.bytes as u64)
    }

    /// Reads a whole body, refusing one over the limit before reading it
    /// when its length is declared, and as soon as it passes the limit
    /// otherwise.
    pub async fn read<B>(
        self,
        headers: &HeaderMap,
        body: B,
        overflow: Overflow,
    ) -> Result<Bytes, ApiError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let max = self.bytes;
        let too_large = || match overflow {
            Overflow::Malformed => ApiError::malformed_request(format!(
                "failed deserializing HTTP body: stream too large: the request body exceeds the limit of {max} bytes (--max-body-size)"
            )),
            Overflow::BodyRead => ApiError::body_read(format!(
                "failed to read request body: stream too large: the request body exceeds the limit of {max} bytes (--max-body-size)"
            )),
        };
        if self.declared_over(headers) {
            return Err(too_large());
        }
        body::collect(body, max).await.map_err(|err| {
            if body::is_too_large(err.as_ref()) {
                return too_large();
            }
            match crate::OverBudget::find(err.as_ref()) {
                Some(over) => over.error(),
                None => ApiError::body_read(format!("failed reading the request body: {err}")),
            }
        })
    }

    /// A body that streams on (service invocation): one declared over the
    /// limit is refused at once (read and discarded up to a cap, so its
    /// sender sees the answer); any other fails its reader once it passes
    /// the limit.
    pub async fn stream(self, headers: &HeaderMap, body: Body) -> Result<Body, TooLarge> {
        /// How much of a refused body is read (and discarded).
        const DRAIN_CAP: usize = 32 * 1024 * 1024;
        if self.declared_over(headers) {
            body::drain(body, DRAIN_CAP).await;
            return Err(TooLarge { limit: self.bytes });
        }
        Ok(body::limited(body, self.bytes))
    }

    /// Reads a whole answer (of the app, for a caller that needs it whole)
    /// within the limit.
    pub async fn collect(self, body: Body) -> Result<Bytes, BoxError> {
        body::collect(body, self.bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_health_checks_are_exempt() {
        use Transport::{Grpc, Http};
        assert!(token_exempt(Http, &Method::GET, "/v1.0/healthz"));
        assert!(token_exempt(Http, &Method::GET, "/v1.0/healthz/outbound"));
        assert!(!token_exempt(Http, &Method::POST, "/v1.0/healthz"));
        assert!(!token_exempt(Http, &Method::GET, "/v1.0/healthz/"));
        assert!(!token_exempt(Http, &Method::GET, "/v1.0/metadata"));
        assert!(token_exempt(
            Grpc,
            &Method::POST,
            "/grpc.health.v1.Health/Check"
        ));
        assert!(token_exempt(
            Grpc,
            &Method::POST,
            "/grpc.health.v1.Health/Watch"
        ));
        assert!(!token_exempt(
            Grpc,
            &Method::POST,
            "/dapr.proto.runtime.v1.Dapr/GetState"
        ));
        assert!(!token_exempt(Grpc, &Method::GET, "/v1.0/healthz"));
        assert!(!token_exempt(
            Http,
            &Method::POST,
            "/grpc.health.v1.Health/Check"
        ));
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [&b""[..], b"S", b"5", b"5s", b"-5S", b"123456789S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn bodies_are_read_within_the_limit() {
        let limit = BodyLimit { bytes: 4 };
        let none = HeaderMap::new();
        let full = |b: &'static str| http_body_util::Full::new(Bytes::from(b));
        assert_eq!(
            limit
                .read(&none, full("abcd"), Overflow::Malformed)
                .await
                .unwrap(),
            "abcd"
        );
        let err = limit
            .read(&none, full("abcde"), Overflow::Malformed)
            .await
            .unwrap_err();
        assert_eq!(err.code, "ERR_MALFORMED_REQUEST");
        let err = limit
            .read(&none, full("abcde"), Overflow::BodyRead)
            .await
            .unwrap_err();
        assert_eq!(err.code, "ERR_BODY_READ");
        let mut declared = HeaderMap::new();
        declared.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(
            limit
                .read(&declared, full(""), Overflow::Malformed)
                .await
                .is_err()
        );
        assert!(limit.stream(&declared, body::full("")).await.is_err());
        let streamed = limit.stream(&none, body::full("abcde")).await.unwrap();
        let err = body::collect(streamed, usize::MAX).await.unwrap_err();
        assert!(body::is_too_large(err.as_ref()), "{err}");
    }
}
