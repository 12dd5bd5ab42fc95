//! The pub/sub benchmark, per broker, in one run: publish latency through
//! the runtime against the same component publishing in-process (the
//! broker's own client, no runtime), publish-to-delivered latency both
//! ways, and the runtime's delivered throughput, one event per request and
//! in bulk.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mecha_core::{ComponentContext, MetadataReader, Properties};
use mecha_pubsub::{Handler, Message, PubSub, PublishRequest, Redeliver, SubscribeRequest};
use serde_json::{Value, json};

use crate::process;
use crate::report::Measure;

#[derive(clap::Args)]
pub struct PubSubArgs {
    /// The brokers: in-memory, sqlite, redis, jetstream, rabbitmq, mqtt.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "in-memory,sqlite,redis,jetstream,rabbitmq,mqtt"
    )]
    brokers: Vec<String>,
    /// The fixed rate of the latency measurements, in messages per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds at that rate.
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Concurrent publishers of the throughput measurement.
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// Seconds of publishing in the throughput measurement.
    #[arg(long, default_value_t = 3)]
    throughput_seconds: u64,
    /// Events per bulk publish in the bulk throughput measurement.
    #[arg(long, default_value_t = 100)]
    bulk: usize,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// A ~1 KB JSON event carrying its sending time.
fn event() -> Bytes {
    Bytes::from(format!(
        r#"{{"t":{},"pad":"{}"}}"#,
        now_nanos(),
        "x".repeat(1000)
    ))
}

/// Arrivals: their latencies from the sending time in the event.
#[derive(Default)]
struct Arrivals {
    count: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

impl Arrivals {
    fn record(&self, data: &Value) {
        self.record_sent(data["t"].as_u64());
    }

    /// An arrival, with its latency when it carries its sending time.
    fn record_sent(&self, sent: Option<u64>) {
        if let Some(sent) = sent {
            let latency = Duration::from_nanos(now_nanos().saturating_sub(sent));
            self.latencies.lock().unwrap().push(latency);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.latencies.lock().unwrap())
    }

    async fn wait_for(&self, count: u64, patience: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + patience;
        while self.count.load(Ordering::Relaxed) < count {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {count} messages arrived",
                self.count.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Instant::now())
    }
}

#[async_trait]
impl Handler for Arrivals {
    async fn handle(&self, message: Message) -> Result<(), Redeliver> {
        let data: Value = serde_json::from_slice(&message.data).unwrap_or_default();
        self.record(&data);
        Ok(())
    }
}

/// The subscriber app: `/dapr/subscribe`, one route per event and one bulk
/// route, answering SUCCESS.
async fn serve_app(topic: String, arrivals: Arc<Arrivals>) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let subscriptions = Bytes::from(
        json!([
            {"pubsubname": "bench", "topic": topic, "route": "/deliver"},
            {"pubsubname": "bench", "topic": format!("{topic}-bulk"), "route": "/bulk",
             "bulkSubscribe": {"enabled": true, "maxMessagesCount": 100, "maxAwaitDurationMs": 5}},
        ])
        .to_string(),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let (arrivals, subscriptions) = (arrivals.clone(), subscriptions.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (arrivals, subscriptions) = (arrivals.clone(), subscriptions.clone());
                    async move {
                        let path = request.uri().path().to_owned();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let answer = match path.as_str() {
                            "/dapr/subscribe" => subscriptions,
                            "/deliver" => {
                                let event: Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                arrivals.record(&event["data"]);
                                Bytes::from_static(br#"{"status":"SUCCESS"}"#)
                            }
                            "/bulk" => bulk_answer(&body, &arrivals),
                            _ => Bytes::new(),
                        };
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(answer))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(port)
}

/// What the app reads of a bulk delivery: each entry's id and sending
/// time, skipping the rest of the event (a subscriber that builds a tree of
/// every event would measure its own parsing, not the runtime).
#[derive(serde::Deserialize)]
struct BulkDelivery<'a> {
    #[serde(borrow)]
    entries: Vec<BulkDelivered<'a>>,
}

#[derive(serde::Deserialize)]
struct BulkDelivered<'a> {
    #[serde(rename = "entryId", borrow)]
    entry_id: std::borrow::Cow<'a, str>,
    #[serde(default)]
    event: Option<Stamped>,
}

#[derive(serde::Deserialize)]
struct Stamped {
    #[serde(default)]
    data: Option<Stamp>,
}

#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(default)]
    t: Option<u64>,
}

/// Records a bulk delivery's events and answers SUCCESS for each; an
/// unreadable delivery gets no statuses (so the runtime retries it).
fn bulk_answer(body: &[u8], arrivals: &Arrivals) -> Bytes {
    let mut answer = String::from(r#"{"statuses":["#);
    if let Ok(batch) = serde_json::from_slice::<BulkDelivery<'_>>(body) {
        for (index, entry) in batch.entries.iter().enumerate() {
            arrivals.record_sent(entry.event.as_ref().and_then(|e| e.data.as_ref()?.t));
            if index > 0 {
                answer.push(',');
            }
            let id = serde_json::to_string(&entry.entry_id).expect("strings serialise");
            answer += &format!(r#"{{"entryId":{id},"status":"SUCCESS"}}"#);
        }
    }
    answer += "]}";
    Bytes::from(answer)
}

/// A bulk publish body of `count` events, written as text.
fn bulk_body(count: usize, first: u64) -> Bytes {
    let mut body = String::with_capacity(count * 1100 + 2);
    body.push('[');
    for i in 0..count {
        if i > 0 {
            body.push(',');
        }
        let event = event();
        let event = std::str::from_utf8(&event).expect("events are text");
        body += &format!(
            r#"{{"entryId":"{}-{i}","event":{event},"contentType":"application/json"}}"#,
            first + i as u64
        );
    }
    body.push(']');
    Bytes::from(body)
}

/// A broker: its component type and metadata (`{dir}` is a temporary
/// folder), after what it needs set up.
async fn broker(name: &str) -> anyhow::Result<(&'static str, Vec<(&'static str, String)>)> {
    Ok(match name {
        "in-memory" => (
            "pubsub.in-memory",
            vec![("concurrencyMode", "parallel".into())],
        ),
        "sqlite" => (
            "pubsub.sqlite",
            vec![
                ("connectionString", "{dir}/bench-pubsub.db".into()),
                ("concurrencyMode", "parallel".into()),
            ],
        ),
        "redis" => (
            "pubsub.redis",
            vec![
                ("redisHost", "127.0.0.1:6379".into()),
                ("concurrency", "64".into()),
            ],
        ),
        "jetstream" => {
            let client = async_nats::connect("127.0.0.1:4222").await?;
            let context = async_nats::jetstream::new(client);
            let _ = context.delete_stream("mecha-bench").await;
            context
                .create_stream(async_nats::jetstream::stream::Config {
                    name: "mecha-bench".into(),
                    subjects: vec!["mecha-bench.>".into()],
                    max_age: Duration::from_secs(600),
                    ..Default::default()
                })
                .await?;
            (
                "pubsub.jetstream",
                vec![
                    ("natsURL", "nats://127.0.0.1:4222".into()),
                    ("streamName", "mecha-bench".into()),
                    ("concurrency", "parallel".into()),
                ],
            )
        }
        "rabbitmq" => (
            "pubsub.rabbitmq",
            vec![(
                "connectionString",
                "amqp://guest:guest@127.0.0.1:5672".into(),
            )],
        ),
        "mqtt" => (
            "pubsub.mqtt3",
            vec![
                ("url", "tcp://127.0.0.1:1883".into()),
                ("concurrencyMode", "parallel".into()),
            ],
        ),
        other => anyhow::bail!("unknown broker '{other}'"),
    })
}

fn topic_for(broker: &str, what: &str) -> String {
    let id = now_nanos() % 1_000_000_000;
    if broker == "jetstream" {
        format!("mecha-bench.{what}-{id}")
    } else {
        format!("mecha-bench-{what}-{id}")
    }
}

/// Sends `publish` at a fixed rate (open loop); the publish latencies.
async fn at_rate<F, Fut>(rate: u32, seconds: u32, publish: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let every = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for i in 0..rate * seconds {
        tokio::time::sleep_until(start + every * i).await;
        let call = publish();
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            call.await?;
            anyhow::Ok(sent.elapsed())
        }));
    }
    let mut samples = Vec::with_capacity(calls.len());
    for call in calls {
        samples.push(call.await??);
    }
    Ok(samples)
}

type Client = HttpClient<HttpConnector, Full<Bytes>>;

async fn post(client: &Client, url: &str, content_type: &str, body: Bytes) -> anyhow::Result<()> {
    let request = hyper::Request::post(url)
        .header("content-type", content_type)
        .body(Full::new(body))?;
    let response = client.request(request).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "status {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

/// One broker's figures.
pub struct Figures {
    pub broker: String,
    pub direct_publish: Measure,
    pub runtime_publish: Measure,
    pub direct_delivered: Measure,
    pub runtime_delivered: Measure,
    /// Delivered per second through the runtime: one event per publish,
    /// and bulk.
    pub throughput: f64,
    pub bulk_throughput: f64,
}

pub async fn pubsub(mecha: &Path, args: PubSubArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for name in &args.brokers {
        match run_broker(mecha, name, &args).await {
            Ok(figures) => rows.push(figures),
            Err(err) => eprintln!("{name}: skipped: {err:#}"),
        }
    }
    println!("{}", table(&rows, &args));
    Ok(())
}

async fn run_broker(mecha: &Path, name: &str, args: &PubSubArgs) -> anyhow::Result<Figures> {
    let (type_name, metadata) = broker(name).await?;
    let dir = tempfile::tempdir()?;
    let dir_text = dir.path().to_string_lossy().into_owned();

    // In process: the component alone, publishing and subscribing.
    let registry = mecha_catalog::registry();
    let factory = registry
        .factory::<mecha_pubsub::PubSubBlock>(type_name)
        .ok_or_else(|| anyhow::anyhow!("{type_name} is not compiled in"))?;
    let mut props = Properties::new().with("consumerID", "bench-direct");
    for (key, value) in &metadata {
        props = props.with(key, &value.replace("{dir}", &dir_text));
    }
    let reader = MetadataReader::new(&props);
    let context = ComponentContext {
        name: "bench".into(),
        app_id: "bench-direct".into(),
        namespace: None,
        data_dir: dir.path().to_path_buf(),
    };
    let builder = factory.configure("v1", &reader, &context);
    anyhow::ensure!(reader.errors().is_empty(), "{:?}", reader.errors());
    let component: Arc<dyn PubSub> = builder.build().await?;
    let direct_topic = topic_for(name, "direct");
    let direct_arrivals = Arc::new(Arrivals::default());
    let subscription = component
        .subscribe(
            SubscribeRequest {
                topic: direct_topic.clone(),
                ..Default::default()
            },
            direct_arrivals.clone(),
        )
        .await?;
    let direct_samples = at_rate(args.rate, args.seconds, || {
        let (component, topic) = (component.clone(), direct_topic.clone());
        async move {
            component
                .publish(PublishRequest {
                    topic,
                    data: event(),
                    content_type: Some("application/json".into()),
                    ..Default::default()
                })
                .await
        }
    })
    .await?;
    direct_arrivals
        .wait_for(direct_samples.len() as u64, Duration::from_secs(30))
        .await?;
    subscription.close(Duration::from_secs(5)).await;
    component.close().await;

    // Through the runtime: an app subscribed, publishing over HTTP.
    let topic = topic_for(name, "runtime");
    let arrivals = Arc::new(Arrivals::default());
    let app_port = serve_app(topic.clone(), arrivals.clone()).await?;
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: bench\nspec:\n  type: {type_name}\n  version: v1\n  metadata:\n"
    );
    for (key, value) in &metadata {
        yaml += &format!("  - name: {key}\n    value: \"{value}\"\n");
    }
    let (sidecar, _) = process::spawn_app(
        mecha,
        &format!("bench-{name}"),
        Some(&yaml),
        &["--app-port".into(), app_port.to_string()],
        None,
    )?;
    let client: Client = HttpClient::builder(TokioExecutor::new()).build_http();
    wait_subscribed(&client, sidecar.http_port).await?;
    let url = format!(
        "http://127.0.0.1:{}/v1.0/publish/bench/{topic}",
        sidecar.http_port
    );
    // Warm-up.
    for _ in 0..200 {
        post(&client, &url, "application/json", event()).await?;
    }
    arrivals.wait_for(200, Duration::from_secs(30)).await?;
    arrivals.take();
    let runtime_samples = at_rate(args.rate, args.seconds, || {
        let (client, url) = (client.clone(), url.clone());
        async move { post(&client, &url, "application/json", event()).await }
    })
    .await?;
    arrivals
        .wait_for(200 + runtime_samples.len() as u64, Duration::from_secs(60))
        .await?;
    let runtime_delivered = arrivals.take();

    // Throughput: publishers as fast as they go, until all is delivered.
    let throughput = {
        let before = arrivals.count.load(Ordering::Relaxed);
        let published = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.throughput_seconds);
        let tasks: Vec<_> = (0..args.publishers)
            .map(|_| {
                let (client, url, published) = (client.clone(), url.clone(), published.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        post(&client, &url, "application/json", event()).await?;
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let total = published.load(Ordering::Relaxed);
        let done = arrivals
            .wait_for(before + total, Duration::from_secs(120))
            .await?;
        total as f64 / (done - started).as_secs_f64()
    };
    arrivals.take();

    let bulk_throughput = {
        let bulk_url = format!(
            "http://127.0.0.1:{}/v1.0-alpha1/publish/bulk/bench/{topic}-bulk",
            sidecar.http_port
        );
        let before = arrivals.count.load(Ordering::Relaxed);
        let published = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.throughput_seconds);
        let per_request = args.bulk;
        let tasks: Vec<_> = (0..args.publishers.div_ceil(4))
            .map(|_| {
                let (client, url, published) =
                    (client.clone(), bulk_url.clone(), published.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let body = bulk_body(per_request, n);
                        n += per_request as u64;
                        post(&client, &url, "application/json", body).await?;
                        published.fetch_add(per_request as u64, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let total = published.load(Ordering::Relaxed);
        let done = arrivals
            .wait_for(before + total, Duration::from_secs(120))
            .await?;
        total as f64 / (done - started).as_secs_f64()
    };
    drop(sidecar);

    Ok(Figures {
        broker: name.to_owned(),
        direct_publish: Measure::new(direct_samples, 0.0, Duration::ZERO),
        runtime_publish: Measure::new(runtime_samples, 0.0, Duration::ZERO),
        direct_delivered: Measure::new(direct_arrivals.take(), 0.0, Duration::ZERO),
        runtime_delivered: Measure::new(runtime_delivered, 0.0, Duration::ZERO),
        throughput,
        bulk_throughput,
    })
}

async fn wait_subscribed(client: &Client, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .get(format!("http://127.0.0.1:{port}/v1.0/metadata").parse()?)
            .await?;
        let body = response.into_body().collect().await?.to_bytes();
        let meta: Value = serde_json::from_slice(&body)?;
        if meta["subscriptions"]
            .as_array()
            .is_some_and(|s| s.len() >= 2)
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the runtime never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn table(rows: &[Figures], args: &PubSubArgs) -> String {
    let mut out = format!(
        "Publish at a fixed {} msg/s for {} s (open loop), ~1 KB events; throughput: {} HTTP publishers for {} s, bulk: {} events per request; times in ms\n\n",
        args.rate, args.seconds, args.publishers, args.throughput_seconds, args.bulk
    );
    out += "| broker | publish p50 / p99, own client | publish p50 / p99, through the runtime | ratio p50 / p99 | delivered p50 / p99, own client | delivered p50 / p99, through the runtime | delivered/s through the runtime | delivered/s, bulk |\n|---|---|---|---|---|---|---|---|\n";
    for row in rows {
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        out += &format!(
            "| {} | {} / {} | {} / {} | {:.2}× / {:.2}× | {} / {} | {} / {} | {:.0} | {:.0} |\n",
            row.broker,
            ms(row.direct_publish.p50),
            ms(row.direct_publish.p99),
            ms(row.runtime_publish.p50),
            ms(row.runtime_publish.p99),
            ratio(row.direct_publish.p50, row.runtime_publish.p50),
            ratio(row.direct_publish.p99, row.runtime_publish.p99),
            ms(row.direct_delivered.p50),
            ms(row.direct_delivered.p99),
            ms(row.runtime_delivered.p50),
            ms(row.runtime_delivered.p99),
            row.throughput,
            row.bulk_throughput,
        );
    }
    out
}
