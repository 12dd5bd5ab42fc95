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
pub use target::{AppId, InvalidAppId};
pub use types::*;
