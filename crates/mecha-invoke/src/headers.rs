//! Which headers travel with an invocation, and how they map to gRPC
//! metadata.

use http::header::{
    CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

/// Headers that belong to one connection and never travel (RFC 9110 §7.6.1),
/// plus the ones the runtime itself consumes.
static HOP_BY_HOP: [HeaderName; 10] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    HOST,
];

/// Headers the runtime sets itself on the way to the app: a caller may not
/// forge them.
pub const CALLER_APP_ID: &str = "dapr-caller-app-id";
pub const CALLER_NAMESPACE: &str = "dapr-caller-namespace";
pub const CALLEE_APP_ID: &str = "dapr-callee-app-id";
pub const API_TOKEN: &str = "dapr-api-token";
pub const APP_ID: &str = "dapr-app-id";
/// The HTTP status of an HTTP app, on gRPC `InvokeService` answers.
pub const HTTP_STATUS: &str = "dapr-http-status";

/// The runtime's own headers, which a caller may not forge.
static OWN: [HeaderName; 4] = [
    HeaderName::from_static(API_TOKEN),
    HeaderName::from_static(CALLER_APP_ID),
    HeaderName::from_static(CALLER_NAMESPACE),
    HeaderName::from_static(CALLEE_APP_ID),
];

/// Removes every header that `strip` says to. One pass over the names a
/// message has (a few), rather than a lookup per name that may be there.
fn remove_where(headers: &mut HeaderMap, strip: impl Fn(&HeaderName) -> bool) {
    let found: Vec<HeaderName> = headers.keys().filter(|name| strip(name)).cloned().collect();
    for name in found {
        headers.remove(name);
    }
}

/// Removes hop-by-hop headers (and those named by `Connection`), the API
/// token, and caller identity headers a client might try to forge.
pub fn strip_for_forwarding(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    remove_where(headers, |name| {
        HOP_BY_HOP.contains(name) || OWN.contains(name) || named.contains(name)
    });
}

/// Removes hop-by-hop headers from a response.
pub fn strip_response(headers: &mut HeaderMap) {
    remove_where(headers, |name| HOP_BY_HOP.contains(name));
}

/// HTTP headers that gRPC reserves or HTTP/2 forbids: as gRPC metadata they
/// travel with a `dapr-` prefix, as daprd sends them.
const RESERVED_IN_GRPC: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "te",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "accept",
    "accept-encoding",
];

/// HTTP headers as gRPC metadata for a gRPC app (`OnInvoke`) or caller
/// (`InvokeService`).
pub fn to_grpc_metadata(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let key = name.as_str();
        if key.starts_with(':') || key.starts_with("grpc-") && !RESERVED_IN_GRPC.contains(&key) {
            continue;
        }
        if RESERVED_IN_GRPC.contains(&key) {
            if let Ok(prefixed) = HeaderName::try_from(format!("dapr-{key}")) {
                out.append(prefixed, value.clone());
            }
        } else {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Sets `name` to a value known to be a valid header value.
pub fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_strips_hop_by_hop_tokens_and_forgeries() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "5"),
            ("transfer-encoding", "chunked"),
            ("host", "example"),
            ("dapr-api-token", "secret"),
            ("dapr-caller-app-id", "forged"),
            ("x-custom", "kept"),
            ("content-type", "text/plain"),
        ] {
            headers.append(k, HeaderValue::from_static(v));
        }
        strip_for_forwarding(&mut headers);
        // The order of different names carries no meaning.
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["content-type", "x-custom"]);
    }

    #[test]
    fn reserved_headers_get_a_prefix_in_grpc() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-custom", HeaderValue::from_static("1"));
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        let metadata = to_grpc_metadata(&headers);
        assert_eq!(metadata["dapr-content-type"], "application/json");
        assert_eq!(metadata["x-custom"], "1");
        assert!(!metadata.contains_key("grpc-status"));
        assert!(!metadata.contains_key("content-type"));
    }
}
