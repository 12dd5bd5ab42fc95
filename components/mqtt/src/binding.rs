//! `bindings.mqtt3`: one MQTT topic, as daprd's binding — `create`
//! publishes to it (or to the request's `topic`), and as an input binding
//! its messages go to the app. It rides on `pubsub.mqtt3`'s connections, so
//! it has the same guarantees: QoS 1 in the persistent session of
//! `consumerID` (what is published while the app is down waits for it), a
//! message acknowledged only once the app took it, and one the app refused
//! delivered again in process with a growing delay — where daprd gives up
//! after `backOffMaxRetries`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_bindings::*;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_pubsub::{Handler, Message, PubSub, PublishRequest, Redeliver, SubscribeRequest};
use tokio_util::sync::CancellationToken;

use crate::pubsub::{Mqtt, MqttConfig};

/// The typed configuration of a `bindings.mqtt3` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttBindingConfig {
    pub connection: MqttConfig,
    pub topic: String,
}

impl MqttBindingConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        Self {
            connection: MqttConfig::from_metadata(meta),
            topic: meta.required("topic"),
        }
    }
}

pub const BINDINGS_MQTT3: ComponentFactory<dyn Binding, MqttBindingConfig> = ComponentFactory::new(
    "bindings.mqtt3",
    |_, metadata, _| MqttBindingConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: MqttBindingConfig) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(MqttBinding::connect(config).await?))
}

/// The `bindings.mqtt3` binding.
pub struct MqttBinding {
    mqtt: Arc<Mqtt>,
    topic: String,
}

impl Binding for MqttBinding {
    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        Some(self)
    }

    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

impl MqttBinding {
    pub async fn connect(config: MqttBindingConfig) -> anyhow::Result<Self> {
        Ok(Self {
            mqtt: Arc::new(Mqtt::connect(config.connection).await?),
            topic: config.topic,
        })
    }
}

#[async_trait]
impl OutputBinding for MqttBinding {
    fn operations(&self) -> &[&'static str] {
        &["create"]
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError> {
        self.check_operation(&req.operation)?;
        let topic = req
            .meta("topic")
            .filter(|t| !t.is_empty())
            .unwrap_or(&self.topic);
        let mut metadata = Metadata::new();
        if let Some(retain) = req.meta("retain") {
            metadata.insert("retain".into(), retain.into());
        }
        self.mqtt
            .publish(PublishRequest {
                topic: topic.to_owned(),
                data: req.data.clone(),
                content_type: None,
                metadata,
            })
            .await
            .map_err(BindingError::Backend)?;
        Ok(None)
    }
}

/// The binding's handler, as the pub/sub session delivers.
struct ToHandler(Arc<dyn InputHandler>);

#[async_trait]
impl Handler for ToHandler {
    async fn handle(&self, message: Message) -> Result<(), Redeliver> {
        self.0
            .handle(InputEvent {
                data: message.data,
                metadata: message.metadata,
            })
            .await
            .map(drop)
            .map_err(|refused| Redeliver(refused.0))
    }
}

#[async_trait]
impl InputBinding for MqttBinding {
    async fn read(
        &self,
        handler: Arc<dyn InputHandler>,
        stop: CancellationToken,
    ) -> Result<(), BindingError> {
        let subscription = self
            .mqtt
            .subscribe(
                SubscribeRequest {
                    topic: self.topic.clone(),
                    metadata: Default::default(),
                    max_in_flight: Some(1),
                },
                Arc::new(ToHandler(handler)),
            )
            .await
            .map_err(BindingError::Backend)?;
        let mqtt = self.mqtt.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            subscription.close(Duration::from_secs(5)).await;
            // Disconnected, the session acknowledges nothing more: what
            // the app had not taken is the broker's to hand back.
            mqtt.close().await;
        });
        Ok(())
    }
}
