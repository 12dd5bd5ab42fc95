//! The NATS components against their conformance suites, on the NATS server
//! of `MECHA_TEST_NATS_URL` (default 127.0.0.1:4222, JetStream enabled).

mod pubsub;
