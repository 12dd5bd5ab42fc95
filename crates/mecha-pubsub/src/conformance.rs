//! The pub/sub conformance suite: every pub/sub component must pass it
//! against its real broker. [`pubsub_conformance!`](crate::pubsub_conformance)
//! expands it into one `#[tokio::test]` per case.
//!
//! The cases drive the component through the block itself (a [`PubSubHandle`],
//! [`Subscriptions`] and a recording [`Sink`] standing in for the app), so
//! they prove the component under Dapr's delivery rules. Cases that need a
//! broker shared between processes run only for components that declare
//! the capability ([`Feature::ConsumerGroups`],
//! [`Feature::CompetingConsumers`], [`Feature::Durable`],
//! [`Feature::Ordered`]); for the others they check the declaration and say
//! so.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::cloudevent::{self, Origin};
use crate::sink::{BulkEvent, BulkOutcome, BulkPayload, Event, Outcome, Sink};
use crate::*;

/// Gives each case components of a fresh, isolated setup.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A component whose consumer group is `consumer_id`, sharing the
    /// broker with the other components of this harness; `None` when the
    /// broker is unreachable and the case should be skipped (see
    /// `mecha_core::testing::service_available`).
    async fn component(&self, consumer_id: &str) -> Option<Arc<dyn PubSub>>;

    /// A topic name of this harness (unique per run; some brokers need a
    /// prefix their setup covers).
    fn topic(&self, name: &str) -> String {
        format!("conformance-{name}-{}", short_id())
    }

    /// Environment variables a child process needs to build components on
    /// the same broker (the harness's `Default` reads them).
    fn child_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

const APP: &str = "conformance-app";
const PUBSUB: &str = "conformance";
/// How long a case waits for what must happen.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a case watches for what must not happen.
const QUIET: Duration = Duration::from_secs(3);

fn broker(component: Arc<dyn PubSub>) -> PubSubHandle {
    PubSubHandle::new(PUBSUB, APP, component, TopicScopes::default())
}

/// Publishes a CloudEvent whose data is `data` (JSON); returns its id.
async fn publish(broker: &PubSubHandle, topic: &str, data: serde_json::Value) -> String {
    let event = envelope(topic, data, None, SystemTime::now());
    let id = cloudevent::attribute(&event, "id").to_owned();
    broker
        .publish(PublishRequest {
            topic: topic.to_owned(),
            data: Bytes::from(serde_json::to_vec(&event).unwrap()),
            content_type: Some(cloudevent::CONTENT_TYPE.to_owned()),
            metadata: Metadata::new(),
        })
        .await
        .unwrap_or_else(|err| panic!("publishing to {topic}: {err}"));
    id
}

fn envelope(
    topic: &str,
    data: serde_json::Value,
    ttl: Option<Duration>,
    now: SystemTime,
) -> cloudevent::CloudEvent {
    cloudevent::wrap(
        &serde_json::to_vec(&data).unwrap(),
        Some("application/json"),
        &Metadata::new(),
        &Origin {
            app_id: APP,
            pubsub: PUBSUB,
            topic,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            tracestate: "",
        },
        now,
        ttl,
    )
}

type Answer = Box<dyn Fn(&Event, usize) -> Outcome + Send + Sync>;

/// The app of a case: records every delivery and answers with `answer`
/// (given the event and how many times it was delivered before).
struct Recorder {
    events: Mutex<Vec<Event>>,
    counts: Mutex<HashMap<String, usize>>,
    batches: Mutex<Vec<usize>>,
    answer: Answer,
    delay: Duration,
}

impl Recorder {
    fn new(answer: impl Fn(&Event, usize) -> Outcome + Send + Sync + 'static) -> Arc<Self> {
        Self::slow(Duration::ZERO, answer)
    }

    fn slow(
        delay: Duration,
        answer: impl Fn(&Event, usize) -> Outcome + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::default(),
            counts: Mutex::default(),
            batches: Mutex::default(),
            answer: Box::new(answer),
            delay,
        })
    }

    fn accepting() -> Arc<Self> {
        Self::new(|_, _| Outcome::Success)
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// The `data` of every delivered event, in delivery order.
    fn data(&self) -> Vec<serde_json::Value> {
        self.events()
            .iter()
            .map(|e| e.event.get("data").cloned().unwrap_or_default())
            .collect()
    }

    fn deliveries_of(&self, id: &str) -> usize {
        self.counts.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn record(&self, event: &Event) -> Outcome {
        let before = {
            let mut counts = self.counts.lock().unwrap();
            let count = counts.entry(event.id().to_owned()).or_default();
            *count += 1;
            *count - 1
        };
        self.events.lock().unwrap().push(event.clone());
        (self.answer)(event, before)
    }
}

#[async_trait]
impl Sink for Recorder {
    async fn deliver(&self, event: &Event) -> Outcome {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.record(event)
    }

    async fn deliver_bulk(&self, bulk: &BulkEvent) -> BulkOutcome {
        self.batches.lock().unwrap().push(bulk.entries.len());
        let outcomes = bulk
            .entries
            .iter()
            .map(|entry| {
                let event = match &entry.payload {
                    BulkPayload::CloudEvent(event) => event.clone(),
                    BulkPayload::Raw(bytes) => cloudevent::from_raw_payload(
                        bytes,
                        &bulk.topic,
                        &bulk.pubsub,
                        &Metadata::new(),
                    ),
                };
                let event = Event {
                    pubsub: bulk.pubsub.clone(),
                    topic: bulk.topic.clone(),
                    path: bulk.path.clone(),
                    event,
                    body: Bytes::new(),
                    metadata: entry.metadata.clone(),
                };
                (entry.entry_id.clone(), self.record(&event))
            })
            .collect();
        BulkOutcome::PerEntry(outcomes)
    }
}

/// Waits until `done` holds, failing the case after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Setup {
    broker: PubSubHandle,
    subscriptions: Subscriptions,
}

impl Setup {
    async fn new(harness: &impl Harness, consumer_id: &str) -> Option<Self> {
        let component = harness.component(consumer_id).await?;
        Some(Self {
            broker: broker(component),
            subscriptions: Subscriptions::new(),
        })
    }

    async fn subscribe(&self, spec: SubscriptionSpec, sink: Arc<dyn Sink>) {
        self.subscriptions
            .start(spec, &self.broker, sink)
            .await
            .unwrap_or_else(|err| panic!("subscribing: {err}"));
    }

    /// Subscribes with at most `max_in_flight` deliveries at once.
    async fn subscribe_limited(
        &self,
        spec: SubscriptionSpec,
        sink: Arc<dyn Sink>,
        max_in_flight: usize,
    ) -> Subscription {
        let topic = spec.topic.clone();
        let context = crate::delivery::SubscriptionContext::new(
            spec,
            self.broker.clone(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        let handler = Arc::new(crate::delivery::Deliverer::new(Arc::new(context), sink));
        self.broker
            .subscribe(
                SubscribeRequest {
                    topic,
                    metadata: Metadata::new(),
                    max_in_flight: Some(max_in_flight),
                },
                handler,
            )
            .await
            .unwrap_or_else(|err| panic!("subscribing: {err}"))
    }

    async fn close(self) {
        self.subscriptions.close_all(Duration::from_secs(5)).await;
        self.broker.component().close().await;
    }
}

fn spec(topic: &str, path: &str) -> SubscriptionSpec {
    SubscriptionSpec::new(PUBSUB, topic, path, Kind::Declarative)
}

/// Events published are delivered to the subscriber, to the route's path.
pub async fn round_trip(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "round-trip").await else {
        return;
    };
    let topic = harness.topic("round-trip");
    let app = Recorder::accepting();
    setup.subscribe(spec(&topic, "/orders"), app.clone()).await;
    for n in 0..3 {
        publish(&setup.broker, &topic, serde_json::json!({ "n": n })).await;
    }
    eventually("three deliveries", || app.len() >= 3).await;
    let mut data = app.data();
    data.sort_by_key(|d| d["n"].as_i64());
    assert_eq!(
        data,
        (0..3)
            .map(|n| serde_json::json!({ "n": n }))
            .collect::<Vec<_>>()
    );
    for event in app.events() {
        assert_eq!(event.path, "/orders");
        assert_eq!(event.topic, topic);
        assert_eq!(event.pubsub, PUBSUB);
        assert_eq!(
            event.metadata.get(PUBSUB_NAME_KEY).map(String::as_str),
            Some(PUBSUB)
        );
    }
    setup.close().await;
}

/// The CloudEvent arrives as it was published: every field, and the very
/// bytes.
pub async fn cloudevent_fields(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "fields").await else {
        return;
    };
    let topic = harness.topic("fields");
    let app = Recorder::accepting();
    setup.subscribe(spec(&topic, "/fields"), app.clone()).await;
    let mut metadata = Metadata::new();
    metadata.insert("cloudevent.type".into(), "order.created".into());
    metadata.insert("cloudevent.subject".into(), "order-7".into());
    let event = cloudevent::wrap(
        br#"{"order":7,"items":["a","b"],"price":12.5}"#,
        Some("application/json"),
        &metadata,
        &Origin {
            app_id: APP,
            pubsub: PUBSUB,
            topic: &topic,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tracestate: "vendor=value",
        },
        SystemTime::now(),
        None,
    );
    let bytes = Bytes::from(serde_json::to_vec(&event).unwrap());
    setup
        .broker
        .publish(PublishRequest {
            topic: topic.clone(),
            data: bytes.clone(),
            content_type: Some(cloudevent::CONTENT_TYPE.into()),
            metadata: Metadata::new(),
        })
        .await
        .unwrap();
    eventually("the delivery", || app.len() >= 1).await;
    let delivered = &app.events()[0];
    assert_eq!(
        delivered.body, bytes,
        "the component carries the bytes unchanged"
    );
    for field in [
        "id",
        "source",
        "type",
        "specversion",
        "datacontenttype",
        "subject",
        "time",
        "topic",
        "pubsubname",
        "traceid",
        "traceparent",
        "tracestate",
        "data",
    ] {
        assert_eq!(
            delivered.event.get(field),
            event.get(field),
            "field {field}"
        );
    }
    assert_eq!(delivered.event["type"], "order.created");
    assert_eq!(delivered.event["source"], APP);
    assert_eq!(delivered.event["data"]["price"], 12.5);
    setup.close().await;
}

/// RETRY: the event comes again (with a back-off) until it is taken, and
/// not after.
pub async fn retry_redelivered(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "retry").await else {
        return;
    };
    let topic = harness.topic("retry");
    let app = Recorder::new(|_, before| {
        if before < 2 {
            Outcome::Retry("not yet".into())
        } else {
            Outcome::Success
        }
    });
    setup.subscribe(spec(&topic, "/retry"), app.clone()).await;
    let id = publish(&setup.broker, &topic, serde_json::json!("again")).await;
    eventually("three deliveries of one event", || {
        app.deliveries_of(&id) >= 3
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        app.deliveries_of(&id),
        3,
        "taken on the third delivery, then no more"
    );
    setup.close().await;
}

/// How soon a refused message must come again: the block's back-off
/// starts at 100 ms, so a broker timeout (Redis's `processingTimeout`,
/// JetStream's `ackWait`) must not stand in for it.
const PROMPT: Duration = Duration::from_secs(2);

/// RETRY is redelivered after the block's growing delay, not after a
/// broker timeout: three deliveries of one event come within [`PROMPT`].
pub async fn retry_redelivered_promptly(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "retry-prompt").await else {
        return;
    };
    let topic = harness.topic("retry-prompt");
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = times.clone();
    let app = Recorder::new(move |_, before| {
        seen.lock().unwrap().push(Instant::now());
        if before < 2 {
            Outcome::Retry("not yet".into())
        } else {
            Outcome::Success
        }
    });
    setup.subscribe(spec(&topic, "/retry"), app.clone()).await;
    publish(&setup.broker, &topic, serde_json::json!("soon")).await;
    eventually("three deliveries of one event", || {
        times.lock().unwrap().len() >= 3
    })
    .await;
    let times = times.lock().unwrap().clone();
    let span = times[2] - times[0];
    assert!(
        span <= PROMPT,
        "two redeliveries took {span:?}; the back-off starts at 100 ms"
    );
    setup.close().await;
}

/// A subscriber that refuses everything for a second (an app outage) gets
/// every message soon after it recovers: the messages refused during the
/// outage come back with the back-off, and the rest follow.
pub async fn outage_recovered_promptly(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "outage").await else {
        return;
    };
    let topic = harness.topic("outage");
    const MESSAGES: usize = 100;
    let outage = Duration::from_secs(1);
    let started = Arc::new(Mutex::new(None::<Instant>));
    let taken = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let (start, took) = (started.clone(), taken.clone());
    let app = Recorder::new(move |event, _| {
        let first = *start.lock().unwrap().get_or_insert_with(Instant::now);
        if first.elapsed() < outage {
            Outcome::Retry("the app is down".into())
        } else {
            took.lock().unwrap().insert(event.id().to_owned());
            Outcome::Success
        }
    });
    setup.subscribe(spec(&topic, "/outage"), app.clone()).await;
    let mut ids = BTreeSet::new();
    for n in 0..MESSAGES {
        ids.insert(publish(&setup.broker, &topic, serde_json::json!(n)).await);
    }
    let published = Instant::now();
    eventually("the first delivery", || started.lock().unwrap().is_some()).await;
    // The budget counts from the later of the recovery and the last
    // publish, so a slow publisher does not eat into it.
    let recovered = (started.lock().unwrap().unwrap() + outage).max(published);
    let deadline = recovered + 2 * PROMPT;
    loop {
        let missing = ids.difference(&taken.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {MESSAGES} messages still not taken {:?} after the app recovered",
            2 * PROMPT
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    setup.close().await;
}

/// DROP: the event is not delivered again.
pub async fn drop_not_redelivered(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "drop").await else {
        return;
    };
    let topic = harness.topic("drop");
    let app = Recorder::new(|event, _| {
        if event.event["data"] == "drop me" {
            Outcome::Drop("dropped".into())
        } else {
            Outcome::Success
        }
    });
    setup.subscribe(spec(&topic, "/drop"), app.clone()).await;
    let dropped = publish(&setup.broker, &topic, serde_json::json!("drop me")).await;
    let next = publish(&setup.broker, &topic, serde_json::json!("keep me")).await;
    eventually("both deliveries", || {
        app.deliveries_of(&dropped) >= 1 && app.deliveries_of(&next) >= 1
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        app.deliveries_of(&dropped),
        1,
        "a dropped event never comes back"
    );
    assert_eq!(app.deliveries_of(&next), 1);
    setup.close().await;
}

/// With a dead-letter topic, dropped and failed events go there as they
/// were published, and are not redelivered.
pub async fn dead_letter(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "dead-letter").await else {
        return;
    };
    let topic = harness.topic("dl-main");
    let dead_letters = harness.topic("dl-dead");
    let app = Recorder::new(|event, _| match event.event["data"].as_str() {
        Some("drop") => Outcome::Drop("dropped".into()),
        Some("retry") => Outcome::Retry("failed".into()),
        _ => Outcome::Success,
    });
    let dead = Recorder::accepting();
    setup
        .subscribe(spec(&dead_letters, "/dead"), dead.clone())
        .await;
    let mut main = spec(&topic, "/main");
    main.dead_letter_topic = Some(dead_letters.clone());
    setup.subscribe(main, app.clone()).await;
    let dropped = publish(&setup.broker, &topic, serde_json::json!("drop")).await;
    let failed = publish(&setup.broker, &topic, serde_json::json!("retry")).await;
    let fine = publish(&setup.broker, &topic, serde_json::json!("fine")).await;
    eventually("two dead letters", || dead.len() >= 2).await;
    tokio::time::sleep(QUIET).await;
    let mut ids: Vec<String> = dead.events().iter().map(|e| e.id().to_owned()).collect();
    ids.sort();
    let mut expected = vec![dropped.clone(), failed.clone()];
    expected.sort();
    assert_eq!(ids, expected, "the dropped and the failed event, once each");
    for event in dead.events() {
        assert_eq!(
            event.event["topic"],
            topic.as_str(),
            "the event as it was published"
        );
    }
    assert_eq!(app.deliveries_of(&dropped), 1);
    assert_eq!(
        app.deliveries_of(&failed),
        1,
        "dead-lettered, not redelivered"
    );
    assert_eq!(app.deliveries_of(&fine), 1);
    setup.close().await;
}

/// Bulk publish and bulk subscribe: batches of more than one event, and
/// each entry settled by its own answer.
pub async fn bulk(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "bulk").await else {
        return;
    };
    let topic = harness.topic("bulk");
    let app = Recorder::new(|event, before| {
        if event.event["data"] == 3 && before == 0 {
            Outcome::Retry("entry 3 fails once".into())
        } else {
            Outcome::Success
        }
    });
    let mut subscription = spec(&topic, "/bulk");
    subscription.bulk = Some(BulkSettings {
        max_messages: 10,
        max_await: Duration::from_millis(300),
    });
    setup.subscribe(subscription, app.clone()).await;
    let requests: Vec<PublishRequest> = (0..25)
        .map(|n| {
            let event = envelope(&topic, serde_json::json!(n), None, SystemTime::now());
            PublishRequest {
                topic: topic.clone(),
                data: Bytes::from(serde_json::to_vec(&event).unwrap()),
                content_type: Some(cloudevent::CONTENT_TYPE.into()),
                metadata: Metadata::new(),
            }
        })
        .collect();
    let results = setup.broker.bulk_publish(&topic, requests).await.unwrap();
    assert_eq!(results.len(), 25);
    assert!(
        results.iter().all(Result::is_ok),
        "every entry is published"
    );
    eventually("25 events and the redelivered one", || app.len() >= 26).await;
    let distinct: BTreeSet<i64> = app.data().iter().filter_map(|d| d.as_i64()).collect();
    assert_eq!(distinct, (0..25).collect());
    let batches = app.batches.lock().unwrap().clone();
    assert!(
        batches.iter().all(|size| *size <= 10),
        "no batch is bigger than maxMessagesCount: {batches:?}"
    );
    assert!(
        batches.iter().any(|size| *size > 1),
        "events are delivered in batches: {batches:?}"
    );
    setup.close().await;
}

/// A raw payload subscription receives bytes that are not a CloudEvent,
/// wrapped in one.
pub async fn raw_payload(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "raw").await else {
        return;
    };
    let topic = harness.topic("raw");
    let app = Recorder::accepting();
    let mut subscription = spec(&topic, "/raw");
    subscription
        .metadata
        .insert("rawPayload".into(), "true".into());
    setup.subscribe(subscription, app.clone()).await;
    setup
        .broker
        .publish(PublishRequest {
            topic: topic.clone(),
            data: Bytes::from_static(&[0, 1, 2, 255]),
            content_type: Some(cloudevent::OCTET_STREAM.into()),
            metadata: Metadata::new(),
        })
        .await
        .unwrap();
    eventually("the delivery", || app.len() >= 1).await;
    let event = &app.events()[0];
    assert_eq!(event.event["data_base64"], "AAEC/w==");
    assert_eq!(event.event["datacontenttype"], cloudevent::OCTET_STREAM);
    setup.close().await;
}

/// An event past its `expiration` is not delivered.
pub async fn expired_events_dropped(harness: &impl Harness) {
    let Some(setup) = Setup::new(harness, "expired").await else {
        return;
    };
    let topic = harness.topic("expired");
    let app = Recorder::accepting();
    setup.subscribe(spec(&topic, "/expired"), app.clone()).await;
    let past = SystemTime::now() - Duration::from_secs(60);
    let expired = envelope(
        &topic,
        serde_json::json!("old"),
        Some(Duration::from_secs(1)),
        past,
    );
    setup
        .broker
        .publish(PublishRequest {
            topic: topic.clone(),
            data: Bytes::from(serde_json::to_vec(&expired).unwrap()),
            content_type: Some(cloudevent::CONTENT_TYPE.into()),
            metadata: Metadata::new(),
        })
        .await
        .unwrap();
    let fresh = publish(&setup.broker, &topic, serde_json::json!("new")).await;
    eventually("the fresh event", || app.deliveries_of(&fresh) == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.data(),
        vec![serde_json::json!("new")],
        "only the fresh event"
    );
    setup.close().await;
}

/// Skips a case whose capability the component does not declare, saying so.
async fn declares(harness: &impl Harness, feature: Feature, case: &str) -> bool {
    let Some(component) = harness.component("capabilities").await else {
        return false;
    };
    let declared = component.features().contains(&feature);
    component.close().await;
    if !declared {
        eprintln!("{case}: the component does not declare {feature:?}; nothing to check");
    }
    declared
}

/// Two consumer groups each get every message.
pub async fn consumer_groups(harness: &impl Harness) {
    if !declares(harness, Feature::ConsumerGroups, "consumer_groups").await {
        return;
    }
    let topic = harness.topic("groups");
    let (Some(first), Some(second), Some(publisher)) = (
        Setup::new(harness, &format!("group-a-{}", short_id())).await,
        Setup::new(harness, &format!("group-b-{}", short_id())).await,
        Setup::new(harness, &format!("publisher-{}", short_id())).await,
    ) else {
        return;
    };
    let (a, b) = (Recorder::accepting(), Recorder::accepting());
    first.subscribe(spec(&topic, "/a"), a.clone()).await;
    second.subscribe(spec(&topic, "/b"), b.clone()).await;
    for n in 0..10 {
        publish(&publisher.broker, &topic, serde_json::json!(n)).await;
    }
    eventually("every message in both groups", || {
        a.len() >= 10 && b.len() >= 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for app in [&a, &b] {
        let got: BTreeSet<i64> = app.data().iter().filter_map(|d| d.as_i64()).collect();
        assert_eq!(got, (0..10).collect());
        assert_eq!(app.len(), 10, "no duplicates");
    }
    for setup in [first, second, publisher] {
        setup.close().await;
    }
}

/// Two subscribers of one consumer group share its messages, each message
/// going to one of them.
pub async fn competing_consumers(harness: &impl Harness) {
    if !declares(harness, Feature::CompetingConsumers, "competing_consumers").await {
        return;
    }
    let topic = harness.topic("competing");
    let group = format!("competing-{}", short_id());
    let (Some(first), Some(second), Some(publisher)) = (
        Setup::new(harness, &group).await,
        Setup::new(harness, &group).await,
        Setup::new(harness, &format!("publisher-{}", short_id())).await,
    ) else {
        return;
    };
    let slow = || Recorder::slow(Duration::from_millis(20), |_, _| Outcome::Success);
    let (a, b) = (slow(), slow());
    let first_subscription = first
        .subscribe_limited(spec(&topic, "/a"), a.clone(), 1)
        .await;
    let second_subscription = second
        .subscribe_limited(spec(&topic, "/b"), b.clone(), 1)
        .await;
    for n in 0..40 {
        publish(&publisher.broker, &topic, serde_json::json!(n)).await;
    }
    eventually("all 40 messages", || a.len() + b.len() >= 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut all: Vec<i64> = a
        .data()
        .iter()
        .chain(b.data().iter())
        .filter_map(|d| d.as_i64())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..40).collect::<Vec<_>>(),
        "each message once, in one of them"
    );
    assert!(
        a.len() > 0 && b.len() > 0,
        "both subscribers took a share ({} and {})",
        a.len(),
        b.len()
    );
    first_subscription.close(Duration::from_secs(5)).await;
    second_subscription.close(Duration::from_secs(5)).await;
    for setup in [first, second, publisher] {
        setup.close().await;
    }
}

/// With one delivery in flight, one publisher's messages arrive in order.
pub async fn ordering(harness: &impl Harness) {
    if !declares(harness, Feature::Ordered, "ordering").await {
        return;
    }
    let Some(setup) = Setup::new(harness, "ordering").await else {
        return;
    };
    let topic = harness.topic("ordering");
    let app = Recorder::accepting();
    let subscription = setup
        .subscribe_limited(spec(&topic, "/ordered"), app.clone(), 1)
        .await;
    for n in 0..30 {
        publish(&setup.broker, &topic, serde_json::json!(n)).await;
    }
    eventually("30 messages", || app.len() >= 30).await;
    let got: Vec<i64> = app.data().iter().filter_map(|d| d.as_i64()).collect();
    assert_eq!(got, (0..30).collect::<Vec<_>>(), "in publish order");
    subscription.close(Duration::from_secs(5)).await;
    setup.close().await;
}

/// The variables that make the test binary a subscriber process.
const CHILD_TOPIC: &str = "MECHA_PUBSUB_CONFORMANCE_CHILD_TOPIC";
const CHILD_GROUP: &str = "MECHA_PUBSUB_CONFORMANCE_CHILD_GROUP";
const CHILD_LOG: &str = "MECHA_PUBSUB_CONFORMANCE_CHILD_LOG";
const KILL_NINE_MESSAGES: usize = 60;

fn read_log(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A subscriber killed with `kill -9` mid-stream, then restarted: every
/// message is delivered (some maybe twice), none lost. `child_test` is the
/// name of the suite's ignored `kill_nine_child` test, which this test
/// runs, in its own binary, as the subscriber process.
pub async fn kill_nine_no_loss(harness: &impl Harness, child_test: &str) {
    if !declares(harness, Feature::Durable, "kill_nine_no_loss").await {
        return;
    }
    let Some(publisher) = Setup::new(harness, &format!("publisher-{}", short_id())).await else {
        return;
    };
    let topic = harness.topic("kill-nine");
    let group = format!("kill-nine-{}", short_id());
    let dir = std::env::temp_dir().join(format!("mecha-kill-nine-{}", short_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("processed.log");
    let spawn = || {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                child_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_TOPIC, &topic)
            .env(CHILD_GROUP, &group)
            .env(CHILD_LOG, &log)
            .envs(harness.child_env())
            .stdout(std::process::Stdio::null());
        command.spawn().expect("starting the subscriber process")
    };
    let ready = |lines: &[String], n: usize| lines.iter().filter(|l| *l == "ready").count() >= n;
    let mut child = spawn();
    eventually("the subscriber process to subscribe", || {
        ready(&read_log(&log), 1)
    })
    .await;
    for n in 0..KILL_NINE_MESSAGES {
        publish(
            &publisher.broker,
            &topic,
            serde_json::json!(format!("m{n}")),
        )
        .await;
    }
    let processed = |lines: &[String]| -> BTreeSet<String> {
        lines
            .iter()
            .filter(|l| l.starts_with('m'))
            .cloned()
            .collect()
    };
    eventually("some messages processed", || {
        processed(&read_log(&log)).len() >= 10
    })
    .await;
    child.kill().expect("kill -9 the subscriber");
    child.wait().unwrap();
    let before = processed(&read_log(&log)).len();
    assert!(
        before < KILL_NINE_MESSAGES,
        "killed mid-stream ({before} of {KILL_NINE_MESSAGES} done)"
    );
    let mut child = spawn();
    eventually("every message processed after the restart", || {
        processed(&read_log(&log)).len() >= KILL_NINE_MESSAGES
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let expected: BTreeSet<String> = (0..KILL_NINE_MESSAGES).map(|n| format!("m{n}")).collect();
    assert_eq!(processed(&read_log(&log)), expected, "no message lost");
    let _ = std::fs::remove_dir_all(&dir);
    publisher.close().await;
}

/// The subscriber process of [`kill_nine_no_loss`]: subscribes, records
/// each message it processed, slowly, until it is killed.
pub async fn kill_nine_child(harness: &impl Harness) {
    let (Ok(topic), Ok(group), Ok(log)) = (
        std::env::var(CHILD_TOPIC),
        std::env::var(CHILD_GROUP),
        std::env::var(CHILD_LOG),
    ) else {
        eprintln!("kill_nine_child runs only as the subscriber process of kill_nine_no_loss");
        return;
    };
    let setup = Setup::new(harness, &group)
        .await
        .expect("the broker is reachable");
    let file = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap(),
    ));
    let writer = file.clone();
    let app = Recorder::slow(Duration::from_millis(30), move |event, _| {
        let data = event.event["data"].as_str().unwrap_or_default().to_owned();
        let mut file = writer.lock().unwrap();
        // One write call per line, so a kill never leaves half a line.
        file.write_all(format!("{data}\n").as_bytes()).unwrap();
        file.flush().unwrap();
        Outcome::Success
    });
    setup.subscribe(spec(&topic, "/kill-nine"), app).await;
    {
        let mut file = file.lock().unwrap();
        file.write_all(b"ready\n").unwrap();
        file.flush().unwrap();
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// Expands the pub/sub conformance suite into one `#[tokio::test]` per case
/// for a harness type that implements `Default` and [`Harness`].
#[macro_export]
macro_rules! pubsub_conformance {
    ($harness:ty) => {
        $crate::pubsub_conformance!(@cases $harness;
            round_trip, cloudevent_fields, retry_redelivered, retry_redelivered_promptly,
            outage_recovered_promptly, drop_not_redelivered,
            dead_letter, bulk, raw_payload, expired_events_dropped, consumer_groups,
            competing_consumers, ordering);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn kill_nine_no_loss() {
            let harness = <$harness as ::core::default::Default>::default();
            // The child's test name: this module's path without the crate.
            let module = module_path!();
            let module = module.split_once("::").map_or("", |(_, rest)| rest);
            let child = if module.is_empty() {
                "kill_nine_child".to_owned()
            } else {
                format!("{module}::kill_nine_child")
            };
            $crate::conformance::kill_nine_no_loss(&harness, &child).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "the subscriber process of kill_nine_no_loss, which runs it"]
        async fn kill_nine_child() {
            let harness = <$harness as ::core::default::Default>::default();
            $crate::conformance::kill_nine_child(&harness).await;
        }
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}
