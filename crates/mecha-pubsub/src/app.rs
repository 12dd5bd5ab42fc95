//! The app's subscriptions as a service of the runtime: once the runtime is
//! ready, the declarative ones (`Subscription` resources) merged with those
//! the app declares itself start. Draining stops every subscription
//! (streaming ones too), then closes the brokers' connections.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_core::{HostStatus, Service};
use tokio_util::sync::CancellationToken;

use crate::subscription::merge;
use crate::{AppSubscriber, PubSubBlock, Sink, SubscriptionSpec, Subscriptions};

pub struct AppSubscriptions {
    host: Arc<dyn HostStatus>,
    subscriptions: Arc<Subscriptions>,
    /// The app; `None` when the runtime has none (`--app-port`).
    app: Option<Arc<dyn AppSubscriber>>,
    declarative: Vec<SubscriptionSpec>,
    /// Cancelled on drain: ends the asking of the app (patient, see the
    /// app channel), never a subscription half made.
    stop: CancellationToken,
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
            stop: CancellationToken::new(),
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
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = host.wait_ready() => {}
                () = stop.cancelled() => return,
            }
            if !host.is_shutting_down() {
                start(&*host, &subscriptions, app, declarative, &stop).await;
            }
        });
        Ok(())
    }

    async fn drain(&self, grace: Duration) {
        self.stop.cancel();
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
    stop: &CancellationToken,
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
        let asked = tokio::select! {
            asked = app.subscriptions() => asked,
            () = stop.cancelled() => return,
        };
        match asked {
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
