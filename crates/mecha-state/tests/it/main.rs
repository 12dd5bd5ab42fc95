//! The conformance suite against a minimal store that declares no
//! capabilities: every case must still pass, exercising the branches that
//! assert unsupported features are refused cleanly (by the block, before the
//! component is reached).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mecha_state::conformance::Harness;
use mecha_state::*;

/// A plain map: no ETags, no TTL, no transactions.
#[derive(Default)]
struct PlainStore(Mutex<HashMap<String, bytes::Bytes>>);

#[async_trait]
impl StateStore for PlainStore {
    fn features(&self) -> &[Feature] {
        &[]
    }

    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        let items = self.0.lock().unwrap();
        Ok(items.get(&req.key).map(|data| GetResponse {
            data: data.clone(),
            ..GetResponse::default()
        }))
    }

    async fn set(&self, req: &SetRequest) -> Result<(), StateError> {
        self.0
            .lock()
            .unwrap()
            .insert(req.key.clone(), req.value.clone());
        Ok(())
    }

    async fn delete(&self, req: &DeleteRequest) -> Result<(), StateError> {
        self.0.lock().unwrap().remove(&req.key);
        Ok(())
    }
}

#[derive(Default)]
struct Plain;

#[async_trait]
impl Harness for Plain {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        Some(Arc::new(PlainStore::default()))
    }
}

mecha_state::state_conformance!(Plain);
