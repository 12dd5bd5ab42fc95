//! Actor placement, apart from its transport (issue 15):
//! - [`Ring`]: the consistent-hash ring exactly as daprd builds it, so that
//!   every runtime (Mecha's or daprd's) computes the same owner for an
//!   actor;
//! - [`Members`]: the runtimes that host actors, per namespace, and the
//!   versioned tables placement disseminates to them;
//! - [`Round`]: one dissemination of a table version (lock, update,
//!   unlock), each phase acknowledged by every runtime, never wedged.
//!
//! [`PlacementService`] serves `dapr.proto.placement.v1.Placement` on top
//! of these, and [`Placement`] is the runtime's side of it. On one host,
//! [`Embedded`] lets the runtimes share a placement through their data
//! directory, with no service to start. Raft replication of
//! [`Members`] comes later, so it stays a plain state machine, apart from
//! its transport.

mod client;
mod embedded;
mod members;
mod ring;
mod round;
mod service;
mod wire;

pub use client::{Lookup, OnUpdate, Placed, Placement, Resolve};
pub use embedded::Embedded;
pub use members::{Host, Members, Reported, Table, Tables};
pub use ring::{DEFAULT_REPLICATION_FACTOR, Ring, hash};
pub use round::{Phase, Progress, Round};
pub use service::{Options, PlacementService};
