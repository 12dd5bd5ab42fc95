//! `pubsub.in-memory` against the pub/sub conformance suite. It is one
//! process's bus, so it declares neither consumer groups nor durability,
//! and those cases only check that.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_memory::MemoryPubSub;
use mecha_pubsub::PubSub;
use mecha_pubsub::conformance::Harness;

#[derive(Default)]
struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn component(&self, _consumer_id: &str) -> Option<Arc<dyn PubSub>> {
        Some(Arc::new(MemoryPubSub::new(4)))
    }
}

mecha_pubsub::pubsub_conformance!(Memory);
