//! End-to-end tests: the real `mecha` binary, driven over HTTP and gRPC.

mod architecture;
mod auth;
mod bad_input;
mod cli;
mod grpc;
mod harness;
mod lifecycle;
mod scenarios;
