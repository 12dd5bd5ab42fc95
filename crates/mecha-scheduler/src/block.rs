//! The scheduler block. Its store is a component like any other (a
//! `scheduler.*` type in a resource file), and the runtime adds the
//! embedded one (`scheduler.sqlite` in the data directory) when the
//! resources declare none: daprd's scheduler is a service, so Dapr resource
//! folders never name one.

use std::sync::Arc;

use mecha_core::{Block, ComponentSpec, MetadataReader};

use crate::{JobStore, Scheduler};

/// The scheduler building block.
pub struct SchedulerBlock;

impl Block for SchedulerBlock {
    const KIND: &'static str = "scheduler";
    const NOUN: &'static str = "scheduler store";
    type Component = dyn JobStore;
    type Settings = ();
    type Handle = Scheduler;

    fn settings(_metadata: &MetadataReader<'_>, _spec: &ComponentSpec) {}

    fn handle(store: Arc<dyn JobStore>, _settings: (), spec: &ComponentSpec) -> Scheduler {
        Scheduler::new(spec.ctx.name.clone(), store)
    }

    fn capabilities(handle: &Scheduler) -> Vec<String> {
        if handle.store().durable() {
            vec!["DURABLE".into()]
        } else {
            Vec::new()
        }
    }
}
