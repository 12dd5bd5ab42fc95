//! The state API: get, bulk get, save, delete, bulk delete, transactions,
//! query.
//! Keys here are the app's keys; the block's [`KeyedStateStore`] applies prefixes.

use std::sync::Arc;

use bytes::Bytes;
use mecha_core::ComponentStore;
use mecha_core::{ApiError, GrpcCode};
use mecha_state::StateBlock;
pub use mecha_state::{
    Concurrency, Consistency, DeleteRequest, Metadata, QueryResponse, SetRequest,
};
use mecha_state::{Feature, GetRequest, GetResponse, KeyedStateStore, Operation, StateError};

use crate::Api;

/// One item of a bulk get answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkStateItem {
    pub key: String,
    pub data: Option<Bytes>,
    pub etag: Option<String>,
    pub metadata: Metadata,
    pub error: Option<String>,
}

/// One operation of a transaction as the wire carries it: a type string
/// (`upsert` or `delete`) and the item.
#[derive(Clone, Debug)]
pub struct TransactionOperation {
    pub operation: String,
    pub item: SetRequest,
}

/// Which operation failed, to pick Dapr's code and message.
#[derive(Clone, Copy)]
enum Op<'a> {
    Get(&'a str),
    BulkGet,
    Save,
    Delete(&'a str),
    BulkDelete,
    Transaction,
    Query,
}

impl Op<'_> {
    /// daprd's error code for a failure of the operation.
    fn code(self) -> &'static str {
        match self {
            Op::Get(_) => "ERR_STATE_GET",
            Op::BulkGet => "ERR_STATE_BULK_GET",
            Op::Save => "ERR_STATE_SAVE",
            Op::Delete(_) => "ERR_STATE_DELETE",
            Op::BulkDelete => "ERR_STATE_BULK_DELETE",
            Op::Transaction => "ERR_STATE_TRANSACTION",
            Op::Query => "ERR_STATE_QUERY",
        }
    }
}

/// The request an item's options belong to: an unknown option is refused
/// as the store refuses it in daprd (`state.CheckRequestOptions`), with
/// the operation's code and a 500.
#[derive(Clone, Copy, Debug)]
pub enum OptionsOf {
    Save,
    Delete,
    Transaction,
}

impl OptionsOf {
    fn refuse(self, what: &str, value: &str) -> ApiError {
        let (op, failure) = match self {
            OptionsOf::Save => (Op::Save, "failed saving state"),
            OptionsOf::Delete => (Op::Delete(""), "failed deleting state"),
            OptionsOf::Transaction => (Op::Transaction, "error while executing state transaction"),
        };
        ApiError::new(
            op.code(),
            500,
            GrpcCode::Internal,
            format!("{failure}: unrecognized {what} model '{value}'"),
        )
    }
}

/// Parses `options.concurrency`; empty means last-write.
pub fn parse_concurrency(value: &str, of: OptionsOf) -> Result<Concurrency, ApiError> {
    match value {
        "" | "last-write" => Ok(Concurrency::LastWrite),
        "first-write" => Ok(Concurrency::FirstWrite),
        other => Err(of.refuse("concurrency", other)),
    }
}

/// Parses `options.consistency` (or `?consistency=`); empty means eventual.
pub fn parse_consistency(value: &str, of: OptionsOf) -> Result<Consistency, ApiError> {
    match value {
        "" | "eventual" => Ok(Consistency::Eventual),
        "strong" => Ok(Consistency::Strong),
        other => Err(of.refuse("consistency", other)),
    }
}

/// The `consistency` of a read: daprd's stores ignore a value they do not
/// know, so it reads as eventual.
pub fn read_consistency(value: &str) -> Consistency {
    match value {
        "strong" => Consistency::Strong,
        _ => Consistency::Eventual,
    }
}

impl Api {
    /// Finds a state store by name, with Dapr's errors when there is none.
    fn state_store(
        &self,
        components: &Arc<ComponentStore>,
        name: &str,
    ) -> Result<KeyedStateStore, ApiError> {
        if let Some(entry) = components.get::<StateBlock>(name) {
            return Ok(entry.store.clone());
        }
        let app_id = &self.runtime().info.app_id;
        let err = if components.has::<StateBlock>() {
            ApiError::new(
                "ERR_STATE_STORE_NOT_FOUND",
                400,
                GrpcCode::InvalidArgument,
                format!("state store {name} is not found"),
            )
            .with_reason("DAPR_STATE_NOT_FOUND")
        } else {
            ApiError::new(
                "ERR_STATE_STORE_NOT_CONFIGURED",
                500,
                GrpcCode::FailedPrecondition,
                format!("state store {name} is not configured"),
            )
            .with_reason("DAPR_STATE_NOT_CONFIGURED")
        };
        Err(if app_id.is_empty() {
            err
        } else {
            err.with_info_metadata("appID", app_id.clone())
        })
    }

    fn store(&self, name: &str) -> Result<KeyedStateStore, ApiError> {
        self.state_store(&self.runtime().components(), name)
    }

    /// A store that takes transactions, with daprd's errors otherwise.
    fn transactional_store(&self, name: &str) -> Result<KeyedStateStore, ApiError> {
        let store = self.store(name)?;
        if !store.features().contains(&Feature::Transactional) {
            return Err(state_error(
                Op::Transaction,
                name,
                StateError::Unsupported(Feature::Transactional),
            ));
        }
        Ok(store)
    }

    /// daprd checks the store (and, for a transaction, that it takes
    /// transactions) before it reads the body: for a body that could not
    /// be read or parsed, the store's error, if there is one, comes first.
    /// Called on that failure only, so a good request looks the store up
    /// once.
    pub fn state_body_error(&self, store: &str, transaction: bool, err: ApiError) -> ApiError {
        let checked = if transaction {
            self.transactional_store(store).map(drop)
        } else {
            self.store(store).map(drop)
        };
        checked.err().unwrap_or(err)
    }

    /// Gets one item; `None` when it is missing.
    pub async fn get_state(
        &self,
        store: &str,
        key: &str,
        consistency: Consistency,
        metadata: Metadata,
    ) -> Result<Option<GetResponse>, ApiError> {
        let handle = self.store(store)?;
        let req = GetRequest {
            key: key.to_owned(),
            consistency,
            metadata,
        };
        handle
            .get(req)
            .await
            .map_err(|err| state_error(Op::Get(key), store, err))
    }

    /// Gets many items, `parallelism` at a time (zero or less: all at once).
    pub async fn get_bulk_state(
        &self,
        store: &str,
        keys: Vec<String>,
        parallelism: i64,
        metadata: Metadata,
    ) -> Result<Vec<BulkStateItem>, ApiError> {
        let handle = self.store(store)?;
        let parallelism = match usize::try_from(parallelism) {
            Ok(n) if n > 0 => n,
            _ => keys.len().max(1),
        };
        let items = handle
            .bulk_get(keys, parallelism, Consistency::Eventual, &metadata)
            .await
            .map_err(|err| state_error(Op::BulkGet, store, err))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(match item.result {
                Ok(Some(found)) => BulkStateItem {
                    key: item.key,
                    data: Some(found.data),
                    etag: found.etag,
                    metadata: found.metadata,
                    error: None,
                },
                Ok(None) => BulkStateItem {
                    key: item.key,
                    data: None,
                    etag: None,
                    metadata: Metadata::new(),
                    error: None,
                },
                Err(err) => BulkStateItem {
                    key: item.key,
                    data: None,
                    etag: None,
                    metadata: Metadata::new(),
                    error: Some(err.to_string()),
                },
            });
        }
        Ok(out)
    }

    /// Saves items (an empty list is a no-op).
    pub async fn save_state(&self, store: &str, items: Vec<SetRequest>) -> Result<(), ApiError> {
        let handle = self.store(store)?;
        handle
            .save(items)
            .await
            .map_err(|err| state_error(Op::Save, store, err))
    }

    /// Deletes one item, honouring its ETag.
    pub async fn delete_state(&self, store: &str, req: DeleteRequest) -> Result<(), ApiError> {
        let handle = self.store(store)?;
        let key = req.key.clone();
        handle
            .delete(req)
            .await
            .map_err(|err| state_error(Op::Delete(&key), store, err))
    }

    /// Deletes many items (gRPC only, as in Dapr).
    pub async fn delete_bulk_state(
        &self,
        store: &str,
        reqs: Vec<DeleteRequest>,
    ) -> Result<(), ApiError> {
        let handle = self.store(store)?;
        handle
            .delete_many(reqs)
            .await
            .map_err(|err| state_error(Op::BulkDelete, store, err))
    }

    /// Applies every operation or none.
    pub async fn execute_state_transaction(
        &self,
        store: &str,
        operations: Vec<TransactionOperation>,
        metadata: Metadata,
    ) -> Result<(), ApiError> {
        let handle = self.transactional_store(store)?;
        let mut ops = Vec::with_capacity(operations.len());
        for op in operations {
            let item = op.item;
            ops.push(match op.operation.as_str() {
                "upsert" => Operation::Upsert(item),
                "delete" => Operation::Delete(item.into()),
                other => {
                    return Err(ApiError::new(
                        "ERR_NOT_SUPPORTED_STATE_OPERATION",
                        400,
                        GrpcCode::Unimplemented,
                        format!("operation type {other} not supported"),
                    ));
                }
            });
        }
        handle
            .transact(ops, &metadata)
            .await
            .map_err(|err| state_error(Op::Transaction, store, err))
    }
}

impl Api {
    /// Runs a state query (alpha) over the app's own keys.
    pub async fn query_state(
        &self,
        store: &str,
        query: &str,
        metadata: Metadata,
    ) -> Result<QueryResponse, ApiError> {
        let handle = self.store(store)?;
        handle
            .query(query, metadata)
            .await
            .map_err(|err| state_error(Op::Query, store, err))
    }
}

/// Maps a block error to Dapr's error for the operation.
/// A bulk request of the HTTP API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    Save,
    Get,
}

/// A bulk request over the block's limit of items, refused as it is read
/// (without holding its items): the answer the block gives a request over
/// the limit on either transport.
pub fn too_many_items(store: &str, bulk: Bulk, count: usize) -> ApiError {
    let (op, what) = match bulk {
        Bulk::Save => (Op::Save, "items"),
        Bulk::Get => (Op::BulkGet, "keys"),
    };
    let limit = mecha_core::limits::MAX_BULK_ITEMS;
    let message = mecha_core::limits::too_many(what, count, limit);
    state_error(op, store, StateError::TooManyItems(message))
}

/// A transaction over the block's limit of operations, refused as it is
/// read (the store's own lower limit is checked when it runs).
pub fn too_many_operations(store: &str, count: usize) -> ApiError {
    let limit = mecha_core::limits::MAX_TRANSACTION_OPERATIONS;
    state_error(
        Op::Transaction,
        store,
        StateError::TooManyOperations { count, limit },
    )
}

fn state_error(op: Op<'_>, store: &str, err: StateError) -> ApiError {
    let code = op.code();
    let prefix = match op {
        Op::Get(key) => format!("fail to get {key} from state store {store}"),
        Op::BulkGet => format!("failed getting bulk state from state store {store}"),
        Op::Save => format!("failed saving state in state store {store}"),
        Op::Delete(key) => format!("failed deleting state with key {key}"),
        Op::BulkDelete => format!("failed deleting state in state store {store}"),
        Op::Transaction => "error while executing state transaction".to_owned(),
        Op::Query => format!("state store {store} query failed"),
    };
    match err {
        StateError::IllegalKey(key) => {
            let message = format!("input key/keyPrefix '{key}' can't contain '||'");
            ApiError::new("ERR_MALFORMED_REQUEST", 400, GrpcCode::InvalidArgument, message.clone())
                .with_reason("DAPR_STATE_ILLEGAL_KEY")
                .with_resource("state", store)
                .with_field_violation(key, message)
        }
        StateError::EmptyKey => ApiError::malformed_request("state key cannot be empty"),
        StateError::KeyTooLong(_) | StateError::KeyWithNul | StateError::TooManyItems(_) => {
            ApiError::malformed_request(format!("{prefix}: {err}"))
        }
        StateError::Unsupported(Feature::Transactional) => ApiError::new(
            "ERR_STATE_STORE_NOT_SUPPORTED",
            500,
            GrpcCode::Unimplemented,
            format!("state store {store} doesn't support transactions"),
        )
        .with_reason("DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED")
        .with_resource("state", store),
        StateError::Unsupported(Feature::QueryApi) => ApiError::new(
            "ERR_STATE_STORE_NOT_SUPPORTED",
            500,
            GrpcCode::Internal,
            format!("state store {store} does not support querying"),
        )
        .with_reason("DAPR_STATE_QUERYING_NOT_SUPPORTED")
        .with_resource("state", store),
        // daprd answers a query it cannot parse as any failed query.
        StateError::InvalidQuery(problem) => ApiError::new(
            "ERR_STATE_QUERY",
            500,
            GrpcCode::Internal,
            format!("{prefix}: {problem}"),
        )
        .with_reason("DAPR_STATE_QUERY_FAILED")
        .with_resource("state", store),
        StateError::Unsupported(feature) => ApiError::new(
            "ERR_STATE_STORE_NOT_SUPPORTED",
            500,
            GrpcCode::Unimplemented,
            format!("state store {store} doesn't support {}", feature.as_str()),
        )
        .with_reason(match feature {
            Feature::Etag => "DAPR_STATE_ETAG_NOT_SUPPORTED",
            Feature::Ttl => "DAPR_STATE_TTL_NOT_SUPPORTED",
            Feature::QueryApi => "DAPR_STATE_QUERYING_NOT_SUPPORTED",
            Feature::Transactional => "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED",
        })
        .with_resource("state", store),
        StateError::TooManyOperations { count, limit } => ApiError::new(
            "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
            400,
            GrpcCode::InvalidArgument,
            format!(
                "the transaction contains {count} operations, which is more than what the state store supports: {limit}"
            ),
        )
        .with_reason("DAPR_STATE_TOO_MANY_TRANSACTIONS")
        .with_resource("state", store)
        .with_info_metadata("currentOpsTransaction", count.to_string())
        .with_info_metadata("maxOpsPerTransaction", limit.to_string()),
        // daprd answers every failure of a transaction, ETag ones included,
        // with 500 (its transaction handler does not look at the cause).
        StateError::EtagMismatch | StateError::EtagInvalid(_) if matches!(op, Op::Transaction) => {
            ApiError::new(code, 500, GrpcCode::Internal, format!("{prefix}: {err}"))
        }
        StateError::EtagMismatch => ApiError::new(code, 409, GrpcCode::Aborted, format!("{prefix}: {err}")),
        StateError::EtagInvalid(_) => {
            ApiError::new(code, 400, GrpcCode::InvalidArgument, format!("{prefix}: {err}"))
        }
        // daprd's stores parse ttlInSeconds themselves: a bad one fails the
        // operation (500).
        StateError::InvalidTtl(_) => {
            ApiError::new(code, 500, GrpcCode::Internal, format!("{prefix}: {err}"))
        }
        StateError::Backend(inner) => {
            tracing::warn!(store, code, error = %format!("{inner:#}"), "state operation failed");
            let err = ApiError::new(code, 500, GrpcCode::Internal, format!("{prefix}: {inner:#}"));
            match op {
                Op::Query => err
                    .with_reason("DAPR_STATE_QUERY_FAILED")
                    .with_resource("state", store),
                _ => err,
            }
        }
    }
}
