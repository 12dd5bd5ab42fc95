//! The MQTT components against their conformance suites, on the broker of
//! `MECHA_TEST_MQTT_URL` (default 127.0.0.1:1883).

mod binding;
mod pubsub;
