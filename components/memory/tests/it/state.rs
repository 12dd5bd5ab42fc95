//! `state.in-memory` against the state conformance suite.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_memory::MemoryStateStore;
use mecha_state::StateStore;
use mecha_state::conformance::Harness;

#[derive(Default)]
struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn component(&self) -> Option<Arc<dyn StateStore>> {
        Some(MemoryStateStore::start())
    }
}

mecha_state::state_conformance!(Memory);
