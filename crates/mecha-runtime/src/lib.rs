//! The runtime's services beside the API spine: the two-phase loading of
//! components (a pure plan, then an async build) into the component store,
//! name resolution, subscriptions, input bindings, and the runtime's status.

mod bindings;
mod components;
mod nameresolution;
mod pubsub;
mod runtime;

pub use bindings::start_input_bindings;
pub use components::{Plan, plan};
pub use mecha_core::{ComponentInfo, ComponentStore, Registry, TypeEntry};
pub use nameresolution::{DEFAULT_REGISTRY_FILE, plan_name_resolution};
pub use pubsub::{check_subscriptions, declarative_spec, start_subscriptions, stop_pubsub};
pub use runtime::{AppConnection, AppHealthCheck, Runtime, RuntimeInfo};
