//! The contract between the state block and its components.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::query::{QueryRequest, QueryResponse};

/// Request and response metadata (`metadata.*` on HTTP).
pub type Metadata = BTreeMap<String, String>;

/// A capability a state store declares; the only capability list (the
/// metadata API and the conformance suite read it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Optimistic concurrency with ETags, including first-write.
    Etag,
    /// Atomic multi-operation transactions.
    Transactional,
    /// Per-item time to live (`ttlInSeconds`).
    Ttl,
    /// The state query API.
    QueryApi,
}

impl Feature {
    /// The name Dapr's metadata API reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Etag => "ETAG",
            Feature::Transactional => "TRANSACTIONAL",
            Feature::Ttl => "TTL",
            Feature::QueryApi => "QUERY_API",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Concurrency {
    FirstWrite,
    #[default]
    LastWrite,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    #[default]
    Eventual,
    Strong,
}

/// How long an item lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// `ttlInSeconds` of -1 or 0: never expires, overriding any store default
    /// and clearing an earlier expiry.
    Never,
    Expire(Duration),
}

/// The metadata key for per-item TTL.
pub const TTL_METADATA_KEY: &str = "ttlInSeconds";
/// The response metadata key carrying an item's expiry (RFC 3339).
pub const TTL_EXPIRE_TIME_KEY: &str = "ttlExpireTime";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetRequest {
    /// The stored key (already prefixed by the block).
    pub key: String,
    pub consistency: Consistency,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResponse {
    pub data: Bytes,
    pub etag: Option<String>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetRequest {
    pub key: String,
    pub value: Bytes,
    pub etag: Option<String>,
    pub concurrency: Concurrency,
    pub consistency: Consistency,
    /// Parsed by the block from `metadata.ttlInSeconds`.
    pub ttl: Option<Ttl>,
    pub metadata: Metadata,
}

impl SetRequest {
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            ..Self::default()
        }
    }

    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    pub fn first_write(mut self) -> Self {
        self.concurrency = Concurrency::FirstWrite;
        self
    }

    pub fn with_metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    pub key: String,
    pub etag: Option<String>,
    pub concurrency: Concurrency,
    pub consistency: Consistency,
    pub metadata: Metadata,
}

impl DeleteRequest {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ..Self::default()
        }
    }

    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

impl From<SetRequest> for DeleteRequest {
    /// The delete of an item given in a set's shape (transactions and bulk
    /// deletes carry deletes as state items).
    fn from(req: SetRequest) -> Self {
        Self {
            key: req.key,
            etag: req.etag,
            concurrency: req.concurrency,
            consistency: req.consistency,
            metadata: req.metadata,
        }
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Upsert(SetRequest),
    Delete(DeleteRequest),
}

impl Operation {
    pub fn key(&self) -> &str {
        match self {
            Operation::Upsert(req) => &req.key,
            Operation::Delete(req) => &req.key,
        }
    }

    pub fn key_mut(&mut self) -> &mut String {
        match self {
            Operation::Upsert(req) => &mut req.key,
            Operation::Delete(req) => &mut req.key,
        }
    }
}

/// What can go wrong in a state operation.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("possible etag mismatch. error from state store: etag mismatch")]
    EtagMismatch,
    #[error("invalid etag value: {0}")]
    EtagInvalid(String),
    #[error("key is empty")]
    EmptyKey,
    #[error("input key/keyPrefix '{0}' can't contain '||'")]
    IllegalKey(String),
    #[error("incorrect value for metadata 'ttlInSeconds': {0}")]
    InvalidTtl(String),
    #[error("the state store does not support {}", .0.as_str())]
    Unsupported(Feature),
    #[error("the transaction has {count} operations, more than the store's limit of {limit}")]
    TooManyOperations { count: usize, limit: usize },
    /// A bulk request over `mecha_core::limits::MAX_BULK_ITEMS`.
    #[error("{0}")]
    TooManyItems(String),
    /// A key longer than the store holds (or than any block takes:
    /// `mecha_core::limits::MAX_KEY_BYTES`).
    #[error("the key is longer than the limit of {0} characters")]
    KeyTooLong(usize),
    /// A key with a NUL character, which text columns (PostgreSQL's)
    /// cannot hold: refused on every store alike.
    #[error("the key contains a NUL character")]
    KeyWithNul,
    /// A query that does not parse or cannot be run as written.
    #[error("{0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// The contract of a state component. Keys arrive already prefixed and
/// validated, and `ttl` already parsed; a store only stores.
///
/// A store must refuse, with [`StateError::Unsupported`], what it does not
/// declare in [`StateStore::features`].
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The capabilities of this store.
    fn features(&self) -> &[Feature];

    /// Reads one item; `None` when it is missing or expired.
    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError>;

    /// Writes one item, honouring its ETag and concurrency mode.
    async fn set(&self, req: &SetRequest) -> Result<(), StateError>;

    /// Deletes one item, honouring its ETag. Deleting a missing item without
    /// an ETag succeeds.
    async fn delete(&self, req: &DeleteRequest) -> Result<(), StateError>;

    /// Reads many items, at most `parallelism` at a time, in request order.
    async fn bulk_get(
        &self,
        reqs: &[GetRequest],
        parallelism: usize,
    ) -> Vec<Result<Option<GetResponse>, StateError>> {
        let futures: Vec<_> = reqs.iter().map(|req| self.get(req)).collect();
        futures::stream::iter(futures)
            .buffered(parallelism.max(1))
            .collect()
            .await
    }

    /// Writes many items. Every item is attempted, as Dapr does: one failing
    /// item does not stop the others (see [`combine_bulk_errors`]).
    async fn bulk_set(&self, reqs: &[SetRequest]) -> Result<(), StateError> {
        let mut errors = Vec::new();
        for req in reqs {
            if let Err(err) = self.set(req).await {
                errors.push(err);
            }
        }
        combine_bulk_errors(errors)
    }

    /// Deletes many items, each attempted as in [`StateStore::bulk_set`].
    async fn bulk_delete(&self, reqs: &[DeleteRequest]) -> Result<(), StateError> {
        let mut errors = Vec::new();
        for req in reqs {
            if let Err(err) = self.delete(req).await {
                errors.push(err);
            }
        }
        combine_bulk_errors(errors)
    }

    /// Applies every operation or none.
    async fn transact(&self, ops: &[Operation], metadata: &Metadata) -> Result<(), StateError> {
        let _ = (ops, metadata);
        Err(StateError::Unsupported(Feature::Transactional))
    }

    /// The most operations one transaction may hold, if the store has a limit.
    fn max_transaction_ops(&self) -> Option<usize> {
        None
    }

    /// Runs a query (see [`crate::query`]) over the store's JSON values.
    async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, StateError> {
        let _ = req;
        Err(StateError::Unsupported(Feature::QueryApi))
    }

    /// True when the store hands JSON values back re-formatted (equal as
    /// JSON, not byte for byte), as PostgreSQL's `jsonb` does.
    fn reformats_json(&self) -> bool {
        false
    }
}

/// The answer of a bulk read that failed as a whole: the same error for
/// every key.
pub fn bulk_failure(
    count: usize,
    err: &StateError,
) -> Vec<Result<Option<GetResponse>, StateError>> {
    let message = err.to_string();
    (0..count)
        .map(|_| Err(StateError::Backend(anyhow::anyhow!(message.clone()))))
        .collect()
}

/// Folds the failures of a bulk write into one error, as Dapr does: when
/// every failure is an ETag error the result is an ETag error (invalid if
/// any was invalid, else a mismatch); otherwise the first other error.
pub fn combine_bulk_errors(errors: Vec<StateError>) -> Result<(), StateError> {
    if errors.is_empty() {
        return Ok(());
    }
    let all_etag = errors
        .iter()
        .all(|err| matches!(err, StateError::EtagMismatch | StateError::EtagInvalid(_)));
    if all_etag {
        let invalid = errors
            .into_iter()
            .find(|err| matches!(err, StateError::EtagInvalid(_)));
        return Err(invalid.unwrap_or(StateError::EtagMismatch));
    }
    Err(errors
        .into_iter()
        .find(|err| !matches!(err, StateError::EtagMismatch | StateError::EtagInvalid(_)))
        .expect("a non-ETag error exists"))
}

/// A shared handle on a state component.
pub type DynStateStore = Arc<dyn StateStore>;
