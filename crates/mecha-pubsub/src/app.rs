//! The app's subscriptions as a service of the runtime: once the runtime is
//! ready, the declarative ones (`Subscription` resources) merged with those
//! the app declares itself start. Draining stops every subscription
//! (streaming ones too), then closes the brokers' connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mecha_core::{HostStatus, Service};
use tokio::task::AbortHandle;

use crate::subscription::merge;
use crate::{AppSubscriber, PubSubBlock, Sink, SubscriptionSpec, Subscriptions};

pub struct AppSubscriptions {
    host: Arc<dyn HostStatus>,
    subscriptions: Arc<Subscriptions>,
    /// The app; `None` when the runtime has none (`--app-port`).
    app: Option<Arc<dyn AppSubscriber>>,
    declarative: Vec<SubscriptionSpec>,
    /// The task that starts them (asking the app patiently): stopped on
    /// drain if it is still asking.
    starting: Mutex<Option<AbortHandle>>,
}

impl AppSubscriptions {
    pub fn new(
        host: Arc<dyn HostStatus>,
        subscriptions: Arc<Subscriptions>,
        app: Option<Arc<dyn AppSubscriber>>,
        declarative: Vec<SubscriptionSpec>,
    ) -> Self {
        Self {
            host,
            subscriptions,
            app,
            declarative,
            starting: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Service for AppSubscriptions {
    fn name(&self) -> &'static str {
        "subscriptions"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let host = self.host.clone();
        let subscriptions = self.subscriptions.clone();
        let app = self.app.clone();
        let declarative = self.declarative.clone();
        let starting = tokio::spawn(async move {
            host.wait_ready().await;
            if !host.is_shutting_down() {
                start(&*host, &subscriptions, app, declarative).await;
            }
        });
        *self.starting.lock().expect("lock") = Some(starting.abort_handle());
        Ok(())
    }

    async fn drain(&self, grace: Duration) {
        if let Some(starting) = self.starting.lock().expect("lock").take() {
            starting.abort();
        }
        self.subscriptions.close_all(grace).await;
        for broker in self.host.components().all::<PubSubBlock>() {
            broker.component().close().await;
        }
    }
}

/// Starts every subscription of the app. Subscriptions to an unknown
/// pubsub, or that a component refuses, are reported and skipped.
async fn start(
    host: &dyn HostStatus,
    subscriptions: &Subscriptions,
    app: Option<Arc<dyn AppSubscriber>>,
    declarative: Vec<SubscriptionSpec>,
) {
    let Some(app) = app else {
        if !declarative.is_empty() {
            tracing::warn!(
                count = declarative.len(),
                "Subscription resources are loaded, but there is no app (--app-port) to deliver to; not subscribed"
            );
        }
        return;
    };
    let components = host.components();
    let programmatic = if components.has::<PubSubBlock>() {
        match app.subscriptions().await {
            Ok(specs) => specs,
            Err(err) => {
                tracing::error!("error getting topics from app: {err}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let sink: Arc<dyn Sink> = app;
    for spec in merge(declarative, programmatic) {
        let Some(broker) = components.get::<PubSubBlock>(&spec.pubsub) else {
            tracing::warn!(
                pubsub = %spec.pubsub,
                topic = %spec.topic,
                "a subscription names pubsub {}, which is not loaded; skipped",
                spec.pubsub
            );
            continue;
        };
        let (pubsub, topic) = (spec.pubsub.clone(), spec.topic.clone());
        if let Err(err) = subscriptions.start(spec, broker, sink.clone()).await {
            tracing::error!(%pubsub, %topic, "failed to subscribe: {err}");
        }
    }
}
