//! End-to-end tests: the real `mecha` binary, driven over HTTP and gRPC.

mod actor_stream;
mod actors;
mod apps;
mod architecture;
mod auth;
mod bad_input;
mod bindings;
mod cli;
mod configuration;
mod connections;
mod grpc;
mod harness;
mod invoke;
mod jobs;
mod lifecycle;
mod lock_secrets;
mod memory;
mod placement;
mod pubsub;
mod run;
mod scenarios;
mod state_stores;
