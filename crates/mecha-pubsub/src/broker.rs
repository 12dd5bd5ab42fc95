//! The block's handle on one configured pub/sub component: the component
//! plus the rules daprd applies to every component (topic scopes, and the
//! topic prefix of namespace-scoped components).

use std::sync::Arc;

use async_trait::async_trait;

use crate::component::*;
use crate::scopes::TopicScopes;

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Topic scoping forbids it.
    #[error("topic {topic} is not allowed for app id {app_id}")]
    Forbidden { topic: String, app_id: String },
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// Why a subscription did not start.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("subscription to topic '{topic}' on pubsub '{pubsub}' is not allowed")]
    Forbidden { topic: String, pubsub: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// A configured pub/sub component. Topics taken and given here are the
/// app's topics.
#[derive(Clone)]
pub struct PubSubHandle {
    name: String,
    app_id: String,
    component: Arc<dyn PubSub>,
    scopes: TopicScopes,
    /// Prepended to every topic on the broker (components whose metadata
    /// uses `{namespace}`, as in daprd).
    topic_prefix: String,
}

impl std::fmt::Debug for PubSubHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubHandle")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

impl PubSubHandle {
    pub fn new(
        name: impl Into<String>,
        app_id: impl Into<String>,
        component: Arc<dyn PubSub>,
        scopes: TopicScopes,
    ) -> Self {
        Self {
            name: name.into(),
            app_id: app_id.into(),
            component,
            scopes,
            topic_prefix: String::new(),
        }
    }

    /// Prefixes every topic on the broker.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    pub fn features(&self) -> &[Feature] {
        self.component.features()
    }

    pub fn has(&self, feature: Feature) -> bool {
        self.features().contains(&feature)
    }

    pub fn component(&self) -> &Arc<dyn PubSub> {
        &self.component
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.scopes.may_publish(topic)
    }

    fn broker_topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    fn check_publish(&self, topic: &str) -> Result<(), PublishError> {
        if self.scopes.may_publish(topic) {
            Ok(())
        } else {
            Err(PublishError::Forbidden {
                topic: topic.to_owned(),
                app_id: self.app_id.clone(),
            })
        }
    }

    pub async fn publish(&self, mut request: PublishRequest) -> Result<(), PublishError> {
        self.check_publish(&request.topic)?;
        request.topic = self.broker_topic(&request.topic);
        self.component
            .publish(request)
            .await
            .map_err(PublishError::Failed)
    }

    /// Publishes many messages of one topic; one result per message.
    pub async fn bulk_publish(
        &self,
        topic: &str,
        mut requests: Vec<PublishRequest>,
    ) -> Result<Vec<anyhow::Result<()>>, PublishError> {
        self.check_publish(topic)?;
        let broker_topic = self.broker_topic(topic);
        for request in &mut requests {
            request.topic = broker_topic.clone();
        }
        Ok(self.component.bulk_publish(requests).await)
    }

    /// Subscribes `handler` to the app's `request.topic`.
    pub async fn subscribe(
        &self,
        mut request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, SubscribeError> {
        if !self.scopes.may_subscribe(&request.topic) {
            return Err(SubscribeError::Forbidden {
                topic: request.topic,
                pubsub: self.name.clone(),
            });
        }
        let handler: Arc<dyn Handler> = if self.topic_prefix.is_empty() {
            handler
        } else {
            Arc::new(StripPrefix {
                prefix: self.topic_prefix.clone(),
                inner: handler,
            })
        };
        request.topic = self.broker_topic(&request.topic);
        self.component
            .subscribe(request, handler)
            .await
            .map_err(SubscribeError::Failed)
    }
}

/// Gives the handler the app's topic of a namespace-scoped component.
struct StripPrefix {
    prefix: String,
    inner: Arc<dyn Handler>,
}

#[async_trait]
impl Handler for StripPrefix {
    async fn handle(&self, mut message: Message) -> Result<(), Redeliver> {
        if let Some(topic) = message.topic.strip_prefix(&self.prefix) {
            message.topic = topic.to_owned();
        }
        self.inner.handle(message).await
    }
}
