//! The runtime's services beside the API spine: the registry of component
//! types, the two-phase loading of components (a pure plan, then an async
//! build), the live component store, and the runtime's status.

mod bindings;
mod components;
mod nameresolution;
mod pubsub;
mod registry;
mod runtime;

pub use bindings::start_input_bindings;
pub use components::{BindingEntry, ComponentInfo, ComponentStore, Plan, StateEntry, plan};
pub use nameresolution::{DEFAULT_REGISTRY_FILE, plan_name_resolution};
pub use pubsub::{check_subscriptions, declarative_spec, start_subscriptions, stop_pubsub};
pub use registry::{Registry, TypeEntry};
pub use runtime::{AppConnection, AppHealthCheck, Runtime, RuntimeInfo};
