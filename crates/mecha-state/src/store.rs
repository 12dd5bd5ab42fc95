//! The block's handle on one configured state component.

use mecha_core::limits::{MAX_BULK_ITEMS, MAX_TRANSACTION_OPERATIONS};
use std::sync::Arc;
use std::time::Duration;

use crate::keys::KeyScheme;
use crate::query::{Query, QueryRequest, QueryResponse};
use crate::types::*;

/// One item of a bulk get, in the app's key space.
#[derive(Debug)]
pub struct BulkGetItem {
    pub key: String,
    pub result: Result<Option<GetResponse>, StateError>,
}

/// A configured state store: the component plus the rules Dapr applies to
/// every store. All keys taken and returned here are the app's keys.
#[derive(Clone)]
pub struct KeyedStateStore {
    name: String,
    component: Arc<dyn StateStore>,
    keys: KeyScheme,
}

impl std::fmt::Debug for KeyedStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedStateStore")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl KeyedStateStore {
    pub fn new(name: impl Into<String>, component: Arc<dyn StateStore>, keys: KeyScheme) -> Self {
        Self {
            name: name.into(),
            component,
            keys,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn features(&self) -> &[Feature] {
        self.component.features()
    }

    pub fn has(&self, feature: Feature) -> bool {
        self.features().contains(&feature)
    }

    /// The component itself (stored keys, no rules).
    pub fn component(&self) -> &Arc<dyn StateStore> {
        &self.component
    }

    pub fn keys(&self) -> &KeyScheme {
        &self.keys
    }

    pub async fn get(&self, mut req: GetRequest) -> Result<Option<GetResponse>, StateError> {
        req.key = self.keys.stored_key(&req.key)?;
        self.component.get(&req).await
    }

    /// Reads many keys, in request order. As in daprd, an invalid key fails
    /// the whole request; a store error on one key fails that item alone.
    pub async fn bulk_get(
        &self,
        keys: Vec<String>,
        parallelism: usize,
        consistency: Consistency,
        metadata: &Metadata,
    ) -> Result<Vec<BulkGetItem>, StateError> {
        check_items("keys", keys.len())?;
        let requests = keys
            .iter()
            .map(|key| {
                Ok(GetRequest {
                    key: self.keys.stored_key(key)?,
                    consistency,
                    metadata: metadata.clone(),
                })
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.component.bulk_get(&requests, parallelism).await;
        drop(requests);
        Ok(keys
            .into_iter()
            .zip(results)
            .map(|(key, result)| BulkGetItem { key, result })
            .collect())
    }

    /// Saves items: one is a plain set, several a bulk set in which every
    /// item is attempted.
    pub async fn save(&self, mut reqs: Vec<SetRequest>) -> Result<(), StateError> {
        check_items("items", reqs.len())?;
        for req in &mut reqs {
            self.prepare_set(req)?;
        }
        match reqs.as_slice() {
            [] => Ok(()),
            [one] => self.component.set(one).await,
            many => self.component.bulk_set(many).await,
        }
    }

    pub async fn delete(&self, mut req: DeleteRequest) -> Result<(), StateError> {
        self.prepare_delete(&mut req)?;
        self.component.delete(&req).await
    }

    pub async fn delete_many(&self, mut reqs: Vec<DeleteRequest>) -> Result<(), StateError> {
        check_items("keys", reqs.len())?;
        for req in &mut reqs {
            self.prepare_delete(req)?;
        }
        match reqs.as_slice() {
            [] => Ok(()),
            [one] => self.component.delete(one).await,
            many => self.component.bulk_delete(many).await,
        }
    }

    /// Applies every operation or none.
    pub async fn transact(
        &self,
        mut ops: Vec<Operation>,
        metadata: &Metadata,
    ) -> Result<(), StateError> {
        if !self.has(Feature::Transactional) {
            return Err(StateError::Unsupported(Feature::Transactional));
        }
        let limit = self
            .component
            .max_transaction_ops()
            .map_or(MAX_TRANSACTION_OPERATIONS, |own| {
                own.min(MAX_TRANSACTION_OPERATIONS)
            });
        if ops.len() > limit {
            return Err(StateError::TooManyOperations {
                count: ops.len(),
                limit,
            });
        }
        for op in &mut ops {
            match op {
                Operation::Upsert(req) => self.prepare_set(req)?,
                Operation::Delete(req) => self.prepare_delete(req)?,
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.component.transact(&ops, metadata).await
    }

    /// Runs a query (Dapr's query JSON) over the app's own keys, returning
    /// the app's keys. A store without the query capability refuses it
    /// before the query is read, as daprd does.
    pub async fn query(
        &self,
        query: &str,
        metadata: Metadata,
    ) -> Result<QueryResponse, StateError> {
        if !self.has(Feature::QueryApi) {
            return Err(StateError::Unsupported(Feature::QueryApi));
        }
        let query = Query::parse(query).map_err(StateError::InvalidQuery)?;
        let req = QueryRequest {
            query,
            key_prefix: self.keys.stored_prefix(),
            metadata,
        };
        let mut response = self.component.query(&req).await?;
        for item in &mut response.results {
            item.key = self.keys.app_key(&item.key).to_owned();
        }
        Ok(response)
    }

    fn prepare_set(&self, req: &mut SetRequest) -> Result<(), StateError> {
        req.key = self.keys.stored_key(&req.key)?;
        req.etag = req.etag.take().filter(|etag| !etag.is_empty());
        req.ttl = parse_ttl(&req.metadata)?;
        if req.ttl.is_some() && !self.has(Feature::Ttl) {
            return Err(StateError::Unsupported(Feature::Ttl));
        }
        self.check_etag_support(req.etag.as_deref(), req.concurrency)
    }

    fn prepare_delete(&self, req: &mut DeleteRequest) -> Result<(), StateError> {
        req.key = self.keys.stored_key(&req.key)?;
        req.etag = req.etag.take().filter(|etag| !etag.is_empty());
        self.check_etag_support(req.etag.as_deref(), req.concurrency)
    }

    fn check_etag_support(
        &self,
        etag: Option<&str>,
        concurrency: Concurrency,
    ) -> Result<(), StateError> {
        let wants_etag = etag.is_some() || concurrency == Concurrency::FirstWrite;
        if wants_etag && !self.has(Feature::Etag) {
            return Err(StateError::Unsupported(Feature::Etag));
        }
        Ok(())
    }
}

/// Parses `ttlInSeconds` from request metadata: a whole number of seconds
/// from -1 to `i32::MAX`; -1 and 0 mean "never expires".
pub fn parse_ttl(metadata: &Metadata) -> Result<Option<Ttl>, StateError> {
    let Some(value) = metadata
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(TTL_METADATA_KEY))
        .map(|(_, value)| value.trim())
    else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let seconds: i64 = value
        .parse()
        .map_err(|_| StateError::InvalidTtl(format!("'{value}' is not an integer")))?;
    match seconds {
        -1 | 0 => Ok(Some(Ttl::Never)),
        1..=0x7fff_ffff => Ok(Some(Ttl::Expire(Duration::from_secs(seconds as u64)))),
        ..-1 => Err(StateError::InvalidTtl("must be -1 or greater".into())),
        _ => Err(StateError::InvalidTtl("must be at most 2147483647".into())),
    }
}

/// Refuses a bulk request over `MAX_BULK_ITEMS`.
fn check_items(what: &str, count: usize) -> Result<(), StateError> {
    mecha_core::limits::check_count(what, count, MAX_BULK_ITEMS).map_err(StateError::TooManyItems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value: &str) -> Metadata {
        [(TTL_METADATA_KEY.to_owned(), value.to_owned())].into()
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl(&Metadata::new()).unwrap(), None);
        assert_eq!(
            parse_ttl(&meta("30")).unwrap(),
            Some(Ttl::Expire(Duration::from_secs(30)))
        );
        assert_eq!(parse_ttl(&meta("-1")).unwrap(), Some(Ttl::Never));
        assert_eq!(parse_ttl(&meta("0")).unwrap(), Some(Ttl::Never));
        assert!(parse_ttl(&meta("abc")).is_err());
        assert!(parse_ttl(&meta("2147483648")).is_err());
        assert!(parse_ttl(&meta("-5")).is_err());
        assert!(parse_ttl(&meta("1.5")).is_err());
    }
}
