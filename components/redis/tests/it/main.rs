//! The Redis components against their conformance suites, on the Redis of
//! `MECHA_TEST_REDIS_URL` (default 127.0.0.1:6379).

mod binding;
mod configuration;
mod lock;
mod pubsub;
mod state;
