//! `pubsub.mqtt3`: an MQTT 3.1.1 broker, with Dapr's metadata keys.
//!
//! A topic is an MQTT topic. Subscriptions live in a persistent session
//! whose client id is the consumer group (`consumerID`, the app id by
//! default): the broker keeps what is published to them at QoS 1 while the
//! app is down, and hands back what was delivered but not acknowledged.
//! Each runtime of one app id would take the same client id over from the
//! other, so MQTT gives consumer groups but not competing consumers (use
//! `$share/<group>/<topic>` topics on a broker that has them).
//!
//! A message is acknowledged (`PUBACK`) once the app took it; one the app
//! asked to retry is redelivered in process with a growing delay, since
//! MQTT 3.1.1 has no negative acknowledgement. Publishing uses a second,
//! clean-session connection and returns once the broker acknowledged.
//!
//! The session connects at the first subscription. What the session brings
//! for a topic nobody subscribes to any more is held for a grace period,
//! then unsubscribed and dropped with a warning.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_pubsub::redelivery::{Backoff, deliver_until_taken};
use mecha_pubsub::*;
use rumqttc::{
    AckMode, AsyncClient, Event, EventLoop, Incoming, MqttOptions, Publish, PublishOptions, QoS,
};
use tokio::sync::{OnceCell, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long messages of a topic without a subscription are kept.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(30);
/// The wait before connecting again after the connection broke.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// The typed configuration of a `pubsub.mqtt3` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    /// The client id of the subscribing session.
    pub consumer_id: String,
    pub qos: u8,
    pub retain: bool,
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// Deliveries in flight per subscription (1 keeps the broker's order).
    pub in_flight: usize,
    pub redelivery: Backoff,
}

impl MqttConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let url = meta.required("url");
        let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url.as_str()));
        if !matches!(scheme, "tcp" | "mqtt") {
            meta.error(format!(
                "metadata field 'url': the scheme '{scheme}' is not supported yet (tcp:// or mqtt://)"
            ));
        }
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((user, address)) => {
                let (name, password) = user.split_once(':').unwrap_or((user, ""));
                (Some((name.to_owned(), password.to_owned())), address)
            }
            None => (None, rest),
        };
        let address = address.trim_end_matches('/');
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => match port.parse() {
                Ok(port) => (host.to_owned(), port),
                Err(_) => {
                    meta.error(format!("metadata field 'url': bad port '{port}'"));
                    (host.to_owned(), 1883)
                }
            },
            None => (address.to_owned(), 1883),
        };
        for key in ["caCert", "clientCert", "clientKey"] {
            if meta.string(key).is_some() {
                meta.error(format!("{key} is not supported yet"));
            }
        }
        // Dapr's retry count for the initial connection: accepted; Mecha
        // reconnects until the component closes.
        let _ = meta.string("backOffMaxRetries");
        let qos = match meta.i64_or("qos", 1) {
            qos @ 0..=2 => qos as u8,
            other => {
                meta.error(format!("metadata field 'qos': {other} is not 0, 1 or 2"));
                1
            }
        };
        let in_flight = match meta.string_or("concurrencyMode", "single").as_str() {
            "single" => 1,
            "parallel" => 32,
            other => {
                meta.error(format!(
                    "metadata field 'concurrencyMode': '{other}' is neither single nor parallel"
                ));
                1
            }
        };
        Self {
            host,
            port,
            credentials,
            consumer_id: meta.required("consumerID"),
            qos,
            retain: meta.bool_or("retain", false),
            clean_session: meta.bool_or("cleanSession", false),
            keep_alive: meta.duration_or(
                "keepAlive",
                Duration::from_secs(30),
                Duration::from_secs(1),
            ),
            in_flight,
            redelivery: Backoff::default(),
        }
    }

    fn qos(&self) -> QoS {
        match self.qos {
            0 => QoS::AtMostOnce,
            2 => QoS::ExactlyOnce,
            _ => QoS::AtLeastOnce,
        }
    }

    fn options(&self, client_id: &str, clean_session: bool) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, (self.host.as_str(), self.port));
        options
            .set_keep_alive(self.keep_alive.as_secs().clamp(1, u16::MAX as u64) as u16)
            .set_clean_session(clean_session)
            .set_ack_mode(AckMode::Manual);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone().into_bytes());
        }
        options
    }

    fn features(&self) -> Vec<Feature> {
        let mut features = vec![Feature::ConsumerGroups];
        if self.qos > 0 && !self.clean_session {
            features.push(Feature::Durable);
        }
        if self.in_flight == 1 {
            features.push(Feature::Ordered);
        }
        features
    }
}

/// Whether the MQTT topic filter `filter` matches `topic`.
fn matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match (part, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (part, Some(level)) if part == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

pub const PUBSUB_MQTT3: ComponentFactory<dyn PubSub, MqttConfig> = ComponentFactory::new(
    "pubsub.mqtt3",
    |_, metadata, _| MqttConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: MqttConfig) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(Arc::new(Mqtt::connect(config).await?))
}

/// The `pubsub.mqtt3` component.
pub struct Mqtt {
    config: MqttConfig,
    features: Vec<Feature>,
    publisher: AsyncClient,
    session: OnceCell<Arc<Session>>,
    stop: CancellationToken,
}

impl Mqtt {
    /// Connects the publishing client; the subscribing session connects at
    /// the first subscription.
    pub async fn connect(config: MqttConfig) -> anyhow::Result<Self> {
        let client_id = format!(
            "{}-pub-{}-{:x}",
            config.consumer_id,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos()
        );
        let mut options = config.options(&client_id, true);
        options.set_ack_mode(AckMode::Automatic);
        let (publisher, mut events) = AsyncClient::builder(options).capacity(256).build();
        // The first connection is awaited, so that a wrong address fails the
        // component's initialization.
        let connected = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(err) => return Err(err),
                }
            }
        })
        .await;
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(err)) => anyhow::bail!(
                "cannot connect to the MQTT broker at {}:{}: {err}",
                config.host,
                config.port
            ),
            Err(_) => anyhow::bail!(
                "the MQTT broker at {}:{} did not answer within 5s",
                config.host,
                config.port
            ),
        }
        let stop = CancellationToken::new();
        tokio::spawn(drive_publisher(events, stop.clone()));
        Ok(Self {
            features: config.features(),
            config,
            publisher,
            session: OnceCell::new(),
            stop,
        })
    }

    async fn session(&self) -> Arc<Session> {
        self.session
            .get_or_init(|| async {
                let options = self
                    .config
                    .options(&self.config.consumer_id, self.config.clean_session);
                let (client, events) = AsyncClient::builder(options).capacity(1024).build();
                let session = Arc::new(Session {
                    client,
                    qos: self.config.qos(),
                    routes: Mutex::new(Routes::default()),
                });
                tokio::spawn(session.clone().drive(events, self.stop.clone()));
                session
            })
            .await
            .clone()
    }
}

async fn drive_publisher(mut events: EventLoop, stop: CancellationToken) {
    loop {
        tokio::select! {
            event = events.poll() => if let Err(err) = event {
                tracing::warn!("the MQTT publishing connection broke: {err}");
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_WAIT) => {}
                    () = stop.cancelled() => return,
                }
            },
            () = stop.cancelled() => return,
        }
    }
}

#[async_trait]
impl PubSub for Mqtt {
    fn features(&self) -> &[Feature] {
        &self.features
    }

    async fn publish(&self, request: PublishRequest) -> anyhow::Result<()> {
        let retain = match request
            .metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retain"))
        {
            Some((_, value)) => value.trim().eq_ignore_ascii_case("true"),
            None => self.config.retain,
        };
        let notice = self
            .publisher
            .publish_tracked(
                request.topic.clone(),
                request.data,
                PublishOptions::new(self.config.qos()).retain(retain),
            )
            .await
            .map_err(|err| anyhow::anyhow!("publishing to '{}': {err}", request.topic))?;
        tokio::time::timeout(Duration::from_secs(30), notice.wait_async())
            .await
            .map_err(|_| anyhow::anyhow!("the MQTT broker did not acknowledge within 30s"))?
            .map_err(|err| anyhow::anyhow!("publishing to '{}': {err}", request.topic))?;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<Subscription> {
        let session = self.session().await;
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = session.route(&request.topic, sender);
        let subscribed = async {
            session
                .client
                .subscribe_tracked(request.topic.clone(), session.qos)
                .await?
                .wait_completion_async()
                .await?;
            anyhow::Ok(())
        };
        if let Err(err) = tokio::time::timeout(Duration::from_secs(30), subscribed)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 30s")))
        {
            session.unroute(id);
            anyhow::bail!("subscribing to '{}': {err}", request.topic);
        }
        let worker = Worker {
            session,
            id,
            topic: request.topic,
            in_flight: request
                .max_in_flight
                .unwrap_or(self.config.in_flight)
                .max(1),
            redelivery: self.config.redelivery,
            handler,
        };
        Ok(Subscription::spawn(move |stop| worker.run(receiver, stop)))
    }

    async fn close(&self) {
        let _ = self.publisher.disconnect().await;
        if let Some(session) = self.session.get() {
            let _ = session.client.disconnect().await;
        }
        self.stop.cancel();
    }
}

#[derive(Default)]
struct Routes {
    next_id: u64,
    /// Subscriptions: id, topic filter, where their messages go.
    live: Vec<(u64, String, mpsc::UnboundedSender<Publish>)>,
    /// Messages no subscription claimed yet, with when they came.
    unclaimed: Vec<(Instant, Publish)>,
}

/// The subscribing connection: a persistent session.
struct Session {
    client: AsyncClient,
    qos: QoS,
    routes: Mutex<Routes>,
}

impl Session {
    /// Routes `filter`'s messages to `sender`, first those already held.
    fn route(&self, filter: &str, sender: mpsc::UnboundedSender<Publish>) -> u64 {
        let mut routes = self.routes.lock().expect("not poisoned");
        routes.next_id += 1;
        let id = routes.next_id;
        let unclaimed = std::mem::take(&mut routes.unclaimed);
        for (since, publish) in unclaimed {
            if matches(filter, &String::from_utf8_lossy(&publish.topic)) {
                let _ = sender.send(publish);
            } else {
                routes.unclaimed.push((since, publish));
            }
        }
        routes.live.push((id, filter.to_owned(), sender));
        id
    }

    fn unroute(&self, id: u64) {
        let mut routes = self.routes.lock().expect("not poisoned");
        routes.live.retain(|(live, _, _)| *live != id);
    }

    fn dispatch(&self, publish: Publish) {
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let mut routes = self.routes.lock().expect("not poisoned");
        let target = routes
            .live
            .iter()
            .find(|(_, filter, sender)| matches(filter, &topic) && !sender.is_closed());
        match target {
            Some((_, _, sender)) => {
                let _ = sender.send(publish);
            }
            None => routes.unclaimed.push((Instant::now(), publish)),
        }
    }

    /// Drops what waited past the grace period, unsubscribing its topic.
    fn expire_unclaimed(&self) {
        let mut routes = self.routes.lock().expect("not poisoned");
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut routes.unclaimed)
            .into_iter()
            .partition(|(since, _)| since.elapsed() >= UNCLAIMED_GRACE);
        routes.unclaimed = kept;
        drop(routes);
        for (_, publish) in expired {
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            tracing::warn!(%topic, "no subscription takes this topic any more: message dropped and topic unsubscribed");
            let _ = self.client.try_unsubscribe(topic);
            let _ = self.client.try_ack(&publish);
        }
    }

    async fn drive(self: Arc<Self>, mut events: EventLoop, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Incoming::Publish(publish))) => self.dispatch(publish),
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) if !ack.session_present => {
                        // A new session: subscribe again to what is live.
                        let filters: Vec<String> = self
                            .routes
                            .lock()
                            .expect("not poisoned")
                            .live
                            .iter()
                            .map(|(_, filter, _)| filter.clone())
                            .collect();
                        for filter in filters {
                            let _ = self.client.try_subscribe(filter, self.qos);
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if stop.is_cancelled() {
                            return;
                        }
                        tracing::warn!("the MQTT subscribing connection broke: {err}");
                        tokio::select! {
                            () = tokio::time::sleep(RECONNECT_WAIT) => {}
                            () = stop.cancelled() => return,
                        }
                    }
                },
                _ = tick.tick() => self.expire_unclaimed(),
                () = stop.cancelled() => return,
            }
        }
    }
}

struct Worker {
    session: Arc<Session>,
    id: u64,
    topic: String,
    in_flight: usize,
    redelivery: Backoff,
    handler: Arc<dyn Handler>,
}

impl Worker {
    async fn run(self, mut receiver: mpsc::UnboundedReceiver<Publish>, stop: CancellationToken) {
        let worker = Arc::new(self);
        let slots = Arc::new(Semaphore::new(worker.in_flight));
        let mut tasks = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("never closed"),
                () = stop.cancelled() => break,
            };
            let publish = tokio::select! {
                publish = receiver.recv() => match publish {
                    Some(publish) => publish,
                    None => break,
                },
                () = stop.cancelled() => break,
            };
            let worker = worker.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                worker.deliver(publish, &stop).await;
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        worker.session.unroute(worker.id);
        // What was routed here but not started waits for another
        // subscription of the same topic (or the next session).
        receiver.close();
        while let Some(publish) = receiver.recv().await {
            worker.session.dispatch(publish);
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn deliver(&self, publish: Publish, stop: &CancellationToken) {
        let mut metadata = Metadata::new();
        metadata.insert(
            "topic".into(),
            String::from_utf8_lossy(&publish.topic).into_owned(),
        );
        if publish.retain {
            metadata.insert("retained".into(), "true".into());
        }
        let message = Message {
            topic: self.topic.clone(),
            data: publish.payload.clone(),
            metadata,
        };
        if deliver_until_taken(&*self.handler, message, self.redelivery, stop).await
            && let Err(err) = self.session.client.ack(&publish).await
        {
            tracing::warn!(topic = %self.topic, "acknowledging a message failed: {err}");
        }
        // Not taken before the stop: left unacknowledged, the broker hands
        // it back with the session's next connection.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders/eu"));
        assert!(matches("orders/+", "orders/eu"));
        assert!(!matches("orders/+", "orders/eu/paris"));
        assert!(matches("orders/#", "orders/eu/paris"));
        assert!(matches("orders/#", "orders"));
        assert!(matches("+/eu", "orders/eu"));
        assert!(!matches("orders/eu", "orders"));
    }
}
