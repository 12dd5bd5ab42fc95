//! The state building block.
//!
//! - [`StateStore`] is the contract every state component implements.
//! - [`KeyedStateStore`] is the block's handle on one configured component: it applies
//!   Dapr's rules shared by all stores (key prefixes, key validation, TTL
//!   metadata, refusing what a store does not declare) so that the API layer
//!   and every component get them once.
//! - `conformance` (feature `conformance`) is the suite every component must
//!   pass, expanded into one test per case by [`state_conformance!`].

mod block;
pub mod codec;
mod keys;
pub mod query;
mod store;
pub mod support;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::{StateBlock, StateHandle, StateSettings};
pub use keys::{KeyPrefix, KeyScheme, SEPARATOR};
pub use query::{Query, QueryItem, QueryRequest, QueryResponse};
pub use store::{BulkGetItem, KeyedStateStore, parse_ttl};
pub use types::*;
