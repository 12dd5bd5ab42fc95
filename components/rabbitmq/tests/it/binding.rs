//! `bindings.rabbitmq` against the input and output binding conformance
//! suites, plus what `create` sends and messages waiting for the reader.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mecha_bindings::conformance::{InputCase, InputHarness, OutputHarness, Trigger};
use mecha_bindings::*;
use mecha_component_rabbitmq::{RabbitBinding, RabbitBindingConfig};
use mecha_core::testing::{service_available, unique};
use mecha_core::{MetadataReader, Properties};
use tokio_util::sync::CancellationToken;

use crate::pubsub::{address, url};

async fn binding(queue: &str) -> Option<Arc<RabbitBinding>> {
    binding_kept(queue, true).await
}

/// A binding on `queue`; with `delete_when_unused`, the broker drops the
/// queue when its last reader goes.
async fn binding_kept(queue: &str, delete_when_unused: bool) -> Option<Arc<RabbitBinding>> {
    if !service_available("RabbitMQ", &address()) {
        return None;
    }
    let props = Properties::new()
        .with("host", &url())
        .with("queueName", queue)
        .with("deleteWhenUnused", &delete_when_unused.to_string())
        .with("prefetchCount", "4")
        .with("maxPriority", "5")
        .with("reconnectWaitInSeconds", "1");
    let reader = MetadataReader::new(&props);
    let mut config = RabbitBindingConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config.requeue_delay = Duration::from_millis(100);
    Some(Arc::new(RabbitBinding::connect(config).await.unwrap()))
}

/// Publishes straight to the queue with the broker's own client.
struct Publisher {
    channel: lapin::Channel,
    queue: String,
}

#[async_trait]
impl Trigger for Publisher {
    async fn fire(&self, data: &[u8]) {
        self.channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(self.queue.as_str()),
                BasicPublishOptions::default(),
                data,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn channel() -> lapin::Channel {
    Connection::connect(&url(), ConnectionProperties::default())
        .await
        .unwrap()
        .create_channel()
        .await
        .unwrap()
}

/// Cases on queues kept when unused (a restarted runtime finds what its
/// queue holds), deleted when the case ends.
#[derive(Default)]
struct RabbitInput {
    queues: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl InputHarness for RabbitInput {
    async fn case(&self) -> Option<InputCase> {
        let queue = unique("binding-in");
        let binding = binding_kept(&queue, false).await?;
        self.queues.lock().unwrap().push(queue.clone());
        Some(InputCase {
            binding,
            trigger: Some(Arc::new(Publisher {
                channel: channel().await,
                queue,
            })),
            redelivers: true,
        })
    }

    async fn reopen(&self) -> Option<Arc<dyn InputBinding>> {
        let queue = self.queues.lock().unwrap().last()?.clone();
        Some(binding_kept(&queue, false).await?)
    }
}

impl Drop for RabbitInput {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *self.queues.lock().unwrap());
        if queues.is_empty() {
            return;
        }
        // On a runtime of its own: the test's may be ending.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let channel = channel().await;
                for queue in queues {
                    let _ = channel
                        .queue_delete(ShortString::from(queue.as_str()), Default::default())
                        .await;
                }
            })
        })
        .join();
    }
}

#[derive(Default)]
struct RabbitOutput;

#[async_trait]
impl OutputHarness for RabbitOutput {
    async fn component(&self) -> Option<Arc<dyn OutputBinding>> {
        Some(binding(&unique("binding-out")).await?)
    }

    fn operations(&self) -> &'static [&'static str] {
        &["create"]
    }
}

mod input {
    mecha_bindings::input_binding_conformance!(super::RabbitInput);
}

mod output {
    mecha_bindings::output_binding_conformance!(super::RabbitOutput);
}

#[tokio::test]
async fn create_sends_to_the_queue_with_its_properties() {
    let queue = unique("binding-create");
    let Some(binding) = binding(&queue).await else {
        return;
    };
    binding
        .invoke(
            &InvokeRequest::new("create", "hello")
                .with("ttlInSeconds", "60")
                .with("priority", "3"),
        )
        .await
        .unwrap();
    let channel = channel().await;
    let message = channel
        .basic_get(
            ShortString::from(queue.as_str()),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("a message in the queue");
    assert_eq!(message.delivery.data, b"hello");
    let properties = &message.delivery.properties;
    assert_eq!(
        properties.expiration().as_ref().map(|e| e.as_str()),
        Some("60000")
    );
    assert_eq!(*properties.priority(), Some(3));
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    let err = binding
        .invoke(&InvokeRequest::new("create", "x").with("priority", "high"))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");
}

struct Collect(tokio::sync::mpsc::UnboundedSender<InputEvent>);

#[async_trait]
impl InputHandler for Collect {
    async fn handle(&self, event: InputEvent) -> Result<bytes::Bytes, Refused> {
        let _ = self.0.send(event);
        Ok(bytes::Bytes::new())
    }
}

#[tokio::test]
async fn messages_sent_before_reading_wait_for_the_reader() {
    let queue = unique("binding-wait");
    let Some(binding) = binding(&queue).await else {
        return;
    };
    for i in 0..3 {
        binding
            .invoke(&InvokeRequest::new("create", format!("m{i}")))
            .await
            .unwrap();
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    binding
        .read(Arc::new(Collect(tx)), stop.clone())
        .await
        .unwrap();
    for i in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a waiting message")
            .unwrap();
        assert_eq!(event.data, format!("m{i}"), "in order, one at a time");
    }
    stop.cancel();
}
