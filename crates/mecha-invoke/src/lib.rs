//! The service invocation block.
//!
//! An invocation is an HTTP-shaped request (verb, method path, query,
//! headers, streaming body) from a caller to an app id, answered by an
//! HTTP-shaped response. The API layer resolves the target and calls either
//! the local app through an [`AppChannel`] or another runtime through
//! [`Peers`]; both are traits, so the API layer never sees a network client.

pub mod body;
pub mod headers;
pub mod status;
pub mod trace;

mod target;
mod types;

pub use body::Body;

/// An error with its causes, as one line (transport errors say little at
/// the top and more below).
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The path and query of a request URI (`/` when it has none), for
/// forwarding it to another authority.
pub fn path_and_query(uri: &http::Uri) -> String {
    uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()
}
pub use target::{AppId, InvalidAppId};
pub use types::*;
