//! The in-memory components against their conformance suites.

mod pubsub;
mod scheduler;
mod state;
