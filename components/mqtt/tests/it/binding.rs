//! `bindings.mqtt3` against the input and output binding conformance
//! suites, plus `create` to the binding's topic or the request's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_bindings::conformance::{InputCase, InputHarness, OutputHarness, Trigger};
use mecha_bindings::*;
use mecha_component_mqtt::{MqttBinding, MqttBindingConfig};
use mecha_core::testing::{service_available, unique};
use mecha_core::{MetadataReader, Properties};
use mecha_pubsub::redelivery::Backoff;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, PublishOptions, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pubsub::address;

async fn binding(topic: &str) -> Option<Arc<MqttBinding>> {
    binding_in(topic, &unique("binding"), true).await
}

/// A binding on `topic` in the session of `consumer`; without
/// `clean_session`, the broker keeps the session (and what it was not
/// acknowledged) for the next connection.
async fn binding_in(topic: &str, consumer: &str, clean_session: bool) -> Option<Arc<MqttBinding>> {
    if !service_available("MQTT", &address()) {
        return None;
    }
    let props = Properties::new()
        .with("url", &format!("tcp://{}", address()))
        .with("topic", topic)
        .with("consumerID", consumer)
        .with("cleanSession", &clean_session.to_string())
        .with("backOffMaxRetries", "3");
    let reader = MetadataReader::new(&props);
    let mut config = MqttBindingConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    config.connection.redelivery = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(300),
    };
    Some(Arc::new(MqttBinding::connect(config).await.unwrap()))
}

/// A plain MQTT client: publishes at QoS 1, and records what arrives on
/// what it subscribed to.
struct Client {
    client: AsyncClient,
    arrived: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Vec<u8>)>>,
}

impl Client {
    async fn connect() -> Self {
        let (host, port) = address()
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.parse().unwrap()))
            .unwrap();
        let options = MqttOptions::new(unique("trigger"), (host, port));
        let (client, mut events) = AsyncClient::builder(options).capacity(64).build();
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Incoming::ConnAck(_)) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Event::Incoming(Incoming::Publish(p)) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        let _ = tx.send((topic, p.payload.to_vec()));
                    }
                    _ => {}
                }
            }
        });
        ready_rx.await.unwrap();
        Self {
            client,
            arrived: tokio::sync::Mutex::new(rx),
        }
    }

    async fn next(&self) -> (String, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(10), self.arrived.lock().await.recv())
            .await
            .expect("a message")
            .unwrap()
    }
}

struct Publisher {
    client: Client,
    topic: String,
}

#[async_trait]
impl Trigger for Publisher {
    async fn fire(&self, data: &[u8]) {
        self.client
            .client
            .publish_tracked(
                self.topic.clone(),
                data.to_vec(),
                PublishOptions::new(QoS::AtLeastOnce),
            )
            .await
            .unwrap()
            .wait_async()
            .await
            .unwrap();
    }
}

/// Cases in persistent sessions (a restarted runtime gets what its
/// session was not acknowledged), cleared when the case ends.
#[derive(Default)]
struct MqttInput {
    sessions: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl InputHarness for MqttInput {
    async fn case(&self) -> Option<InputCase> {
        let topic = format!("mecha/binding/{}", unique("in"));
        let consumer = unique("binding");
        let binding = binding_in(&topic, &consumer, false).await?;
        self.sessions
            .lock()
            .unwrap()
            .push((topic.clone(), consumer));
        Some(InputCase {
            binding,
            trigger: Some(Arc::new(Publisher {
                client: Client::connect().await,
                topic,
            })),
            redelivers: true,
        })
    }

    async fn reopen(&self) -> Option<Arc<dyn InputBinding>> {
        let (topic, consumer) = self.sessions.lock().unwrap().last()?.clone();
        Some(binding_in(&topic, &consumer, false).await?)
    }
}

impl Drop for MqttInput {
    fn drop(&mut self) {
        let sessions = std::mem::take(&mut *self.sessions.lock().unwrap());
        // A clean-session connection with each client id ends its session.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                for (_, consumer) in sessions {
                    let _ = tokio::time::timeout(Duration::from_secs(5), clear_session(&consumer))
                        .await;
                }
            })
        })
        .join();
    }
}

async fn clear_session(client_id: &str) {
    let (host, port) = address()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse().unwrap()))
        .unwrap();
    let mut options = MqttOptions::new(client_id, (host, port));
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::builder(options).capacity(8).build();
    while let Ok(event) = events.poll().await {
        if let Event::Incoming(Incoming::ConnAck(_)) = event {
            let _ = client.disconnect().await;
            let _ = events.poll().await;
            return;
        }
    }
}

#[derive(Default)]
struct MqttOutput;

#[async_trait]
impl OutputHarness for MqttOutput {
    async fn component(&self) -> Option<Arc<dyn OutputBinding>> {
        Some(binding(&format!("mecha/binding/{}", unique("out"))).await?)
    }

    fn operations(&self) -> &'static [&'static str] {
        &["create"]
    }
}

mod input {
    mecha_bindings::input_binding_conformance!(super::MqttInput);
}

mod output {
    mecha_bindings::output_binding_conformance!(super::MqttOutput);
}

struct Collect(mpsc::UnboundedSender<InputEvent>);

#[async_trait]
impl InputHandler for Collect {
    async fn handle(&self, event: InputEvent) -> Result<bytes::Bytes, Refused> {
        let _ = self.0.send(event);
        Ok(bytes::Bytes::new())
    }
}

#[tokio::test]
async fn create_goes_to_the_binding_topic_or_the_requests() {
    let topic = format!("mecha/binding/{}", unique("create"));
    let Some(binding) = binding(&topic).await else {
        return;
    };
    let other = format!("{topic}/other");
    let watcher = Client::connect().await;
    for t in [&topic, &other] {
        watcher
            .client
            .subscribe_tracked(t.clone(), QoS::AtLeastOnce)
            .await
            .unwrap()
            .wait_completion_async()
            .await
            .unwrap();
    }
    binding
        .invoke(&InvokeRequest::new("create", "to the binding's"))
        .await
        .unwrap();
    assert_eq!(
        watcher.next().await,
        (topic.clone(), b"to the binding's".to_vec())
    );
    binding
        .invoke(&InvokeRequest::new("create", "elsewhere").with("topic", &other))
        .await
        .unwrap();
    assert_eq!(watcher.next().await, (other, b"elsewhere".to_vec()));

    // What the binding sends, it also reads (its own topic), with the topic
    // in the event's metadata.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    binding
        .read(Arc::new(Collect(tx)), stop.clone())
        .await
        .unwrap();
    binding
        .invoke(&InvokeRequest::new("create", "round trip"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the event")
        .unwrap();
    assert_eq!(event.data, "round trip");
    assert_eq!(event.metadata.get("topic"), Some(&topic));
    stop.cancel();
}
