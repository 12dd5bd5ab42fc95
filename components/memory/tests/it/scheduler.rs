//! `scheduler.in-memory` against the scheduler conformance suite. Two
//! runtimes share one in-memory store only within a process: the pair is
//! one store twice.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_memory::MemoryJobStore;
use mecha_scheduler::JobStore;
use mecha_scheduler::conformance::Harness;

#[derive(Default)]
struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn store(&self) -> Option<Arc<dyn JobStore>> {
        Some(MemoryJobStore::new())
    }

    async fn pair(&self) -> Option<(Arc<dyn JobStore>, Arc<dyn JobStore>)> {
        let store: Arc<dyn JobStore> = MemoryJobStore::new();
        Some((store.clone(), store))
    }
}

mecha_scheduler::scheduler_conformance!(Memory);
