//! The RabbitMQ components against their conformance suites, on the broker
//! of `MECHA_TEST_RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672).

mod binding;
mod pubsub;
