//! The runtime: its identity and status, the host that starts its services
//! in order and drains them in reverse, and the two-phase loading of
//! components (a pure plan, then an async build) into the component store.
//! It knows no building block: each brings its own services.

mod components;
mod host;
mod runtime;

pub use components::{Plan, plan};
pub use host::{Components, Host};
pub use mecha_core::{ComponentInfo, ComponentStore, HostStatus, Registry, Service, TypeEntry};
pub use runtime::{AppConnection, AppHealthCheck, Runtime, RuntimeInfo};
