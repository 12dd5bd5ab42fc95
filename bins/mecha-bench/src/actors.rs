//! The actor benchmark (issue 15), in one run, against one runtime hosting
//! actor type `Bench` for an app in this process (hyper, answering at once):
//! - an actor method call (`PUT /v1.0/actors/Bench/{id}/method/echo`, on
//!   actors already active) against a plain invocation of the same app
//!   method through the same runtime (`/v1.0/invoke/{self}/method/echo`),
//!   at a fixed rate;
//! - activation: calls to fresh ids at a fixed rate;
//! - calls per second on one hot id and across 10,000 ids (closed loop);
//! - reminders registered per second (`RegisterActorReminder` over gRPC
//!   from many connections), and fired per second to the app through the
//!   actor path, with many more reminders registered in the store.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mecha_proto::runtime as pb;
use mecha_proto::runtime::dapr_client::DaprClient;
use mecha_scheduler::{Job, JobData, Owner, Scheduler};

use crate::process;
use crate::report::Measure;

#[derive(clap::Args)]
pub struct ActorsArgs {
    /// The fixed rate of the latency measurements, in calls per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds at that rate.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// The rate of the activation measurement (Dapr's published figure is
    /// at 500 calls/s).
    #[arg(long, default_value_t = 500)]
    activation_rate: u32,
    /// Concurrent connections of the throughput and registration
    /// measurements.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Reminders fired in the fire measurement.
    #[arg(long, default_value_t = 50_000)]
    fires: usize,
    /// Reminders registered in the store (due in an hour) besides those.
    #[arg(long, default_value_t = 1_000_000)]
    registered: usize,
}

/// The app: `Bench` actors whose methods answer at once, the same method
/// as a plain route, and a count of reminder fires.
async fn serve_app(reminders: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let reminders = reminders.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let reminders = reminders.clone();
                    async move {
                        let path = request.uri().path();
                        let body = if path == "/dapr/config" {
                            Bytes::from_static(br#"{"entities":["Bench"],"actorIdleTimeout":"1h"}"#)
                        } else {
                            if path.contains("/method/remind/") {
                                reminders.fetch_add(1, Ordering::Relaxed);
                            }
                            Bytes::from_static(b"{\"ok\":true}")
                        };
                        let _ = request.into_body().collect().await;
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(body)))
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

type Client = HttpClient<HttpConnector, Full<Bytes>>;

async fn put(client: &Client, url: String) -> anyhow::Result<()> {
    let request = hyper::Request::put(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == 200,
        "status {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// Latencies of calls to `url(i)` sent at `rate` for `seconds` (open loop,
/// each timed from its sending).
async fn at_rate<F>(
    client: &Client,
    rate: u32,
    seconds: u32,
    url: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(u32) -> String,
{
    let every = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for i in 0..rate * seconds {
        tokio::time::sleep_until(start + every * i).await;
        let (client, url) = (client.clone(), url(i));
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            put(&client, url).await?;
            anyhow::Ok(sent.elapsed())
        }));
    }
    let mut samples = Vec::with_capacity(calls.len());
    for call in calls {
        samples.push(call.await??);
    }
    Ok(samples)
}

/// Calls per second from `connections` closed loops for `seconds`.
async fn closed_loop<F>(
    client: &Client,
    connections: usize,
    seconds: u64,
    url: F,
) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> String + Clone + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                put(&client, url(c, done)).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

async fn grpc(port: u16) -> anyhow::Result<DaprClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(DaprClient::new(channel))
}

fn reminder(id: String, due: &str) -> pb::RegisterActorReminderRequest {
    pb::RegisterActorReminderRequest {
        actor_type: "Bench".into(),
        actor_id: id,
        name: "r".into(),
        due_time: due.into(),
        data: Bytes::from_static(b"{}"),
        ..Default::default()
    }
}

pub async fn actors(mecha: &Path, args: ActorsArgs) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    // Reminders due in an hour, in the store before the runtime starts (as
    // the runtime would write them: the type's partition).
    let filled = Instant::now();
    if args.registered > 0 {
        let config = mecha_component_sqlite::SchedulerConfig::new(
            data.path().join("scheduler.db").to_string_lossy(),
        );
        let scheduler = Scheduler::new(
            "bench",
            mecha_component_sqlite::SqliteJobStore::open(config).await?,
        );
        let owner = Owner::actor_reminders(None, "Bench");
        let per = args.registered.div_ceil(64);
        let mut tasks = Vec::new();
        for t in 0..64 {
            let (scheduler, owner, count) = (scheduler.clone(), owner.clone(), args.registered);
            tasks.push(tokio::spawn(async move {
                for i in t * per..((t + 1) * per).min(count) {
                    let job = Job {
                        name: format!("far-{i}||r"),
                        due_time: Some("1h".into()),
                        data: JobData {
                            type_url: "mecha.actors/reminder".into(),
                            value: br#"{"dueTime":"1h"}"#.to_vec(),
                        },
                        ..Job::default()
                    };
                    scheduler.schedule(&owner, job, false).await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
    }
    let fill_seconds = filled.elapsed().as_secs_f64();

    let reminders = Arc::new(AtomicU64::new(0));
    let app_port = serve_app(reminders.clone()).await?;
    let app_args = ["--app-port".to_owned(), app_port.to_string()];
    let (sidecar, _) =
        process::spawn_app(mecha, "bench-actors", None, &app_args, Some(data.path()))?;
    let base = format!("http://127.0.0.1:{}", sidecar.http_port);
    let client: Client = HttpClient::builder(TokioExecutor::new()).build_http();
    let actor = {
        let base = base.clone();
        move |id: String| format!("{base}/v1.0/actors/Bench/{id}/method/echo")
    };
    let invoke = format!("{base}/v1.0/invoke/bench-actors/method/echo");

    // Warm up both paths, and activate the ids the latency run calls.
    for i in 0..1000u32 {
        put(&client, actor(format!("warm-{i}"))).await?;
        put(&client, invoke.clone()).await?;
    }
    let direct = at_rate(&client, args.rate, args.seconds, |_| invoke.clone()).await?;
    let through_actor = at_rate(&client, args.rate, args.seconds, |i| {
        actor(format!("warm-{}", i % 1000))
    })
    .await?;
    let activation = at_rate(&client, args.activation_rate, args.seconds, |i| {
        actor(format!("fresh-{i}"))
    })
    .await?;
    let direct = Measure::new(direct, 0.0, Duration::ZERO);
    let through_actor = Measure::new(through_actor, 0.0, Duration::ZERO);
    let activation = Measure::new(activation, 0.0, Duration::ZERO);

    let hot = {
        let actor = actor.clone();
        closed_loop(&client, args.connections, 3, move |_, _| {
            actor("hot".to_owned())
        })
        .await?
    };
    let spread = {
        let actor = actor.clone();
        closed_loop(&client, args.connections, 3, move |c, i| {
            actor(format!(
                "spread-{}",
                (i as usize * args.connections + c) % 10_000
            ))
        })
        .await?
    };
    let invoke_rate = {
        let invoke = invoke.clone();
        closed_loop(&client, args.connections, 3, move |_, _| invoke.clone()).await?
    };

    // Reminders: registration over gRPC, then fires due at once.
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        clients.push(grpc(sidecar.grpc_port).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                client
                    .register_actor_reminder(reminder(format!("reg-{c}-{done}"), "1h"))
                    .await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut registered = 0;
    for task in tasks {
        registered += task.await??;
    }
    let register_rate = registered as f64 / started.elapsed().as_secs_f64();

    // One due time for all, so they fall due together (RFC 3339).
    let due_in = 30u64;
    let due = mecha_core::units::format_rfc3339_nanos(
        std::time::SystemTime::now() + Duration::from_secs(due_in),
    );
    let registering = Instant::now();
    let per = args.fires.div_ceil(args.connections);
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (mut client, due) = (client.clone(), due.clone());
        let fires = args.fires;
        tasks.push(tokio::spawn(async move {
            for i in c * per..((c + 1) * per).min(fires) {
                client
                    .register_actor_reminder(reminder(format!("fire-{i}"), &due))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let register_span = registering.elapsed().as_secs_f64();
    anyhow::ensure!(
        registering.elapsed() < Duration::from_secs(due_in),
        "registering the fires took longer than their due time"
    );
    // The first fire starts the clock.
    let waited = Instant::now();
    while reminders.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(due_in + 30),
            "no reminder fired"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first = Instant::now();
    while (reminders.load(Ordering::Relaxed) as usize) < args.fires {
        anyhow::ensure!(
            first.elapsed() < Duration::from_secs(300),
            "fired {} of {}",
            reminders.load(Ordering::Relaxed),
            args.fires
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fire_rate = args.fires as f64 / first.elapsed().as_secs_f64();
    let rss = process::status_kb(sidecar.child.id(), "VmHWM:");
    drop(sidecar);

    let added = |m: &Measure, base: &Measure| {
        format!(
            "+{} / +{} ms ({:+.0} % at p50)",
            ms(m.p50.saturating_sub(base.p50)),
            ms(m.p99.saturating_sub(base.p99)),
            (m.p50.as_secs_f64() / base.p50.as_secs_f64() - 1.0) * 100.0
        )
    };
    println!("| measure | Mecha | baseline | difference |");
    println!("|---|---|---|---|");
    println!(
        "| actor method call, active actors, {} calls/s, p50 / p99 (ms) | {} / {} | {} / {} (plain invocation of the same app method, same runtime) | {} |",
        args.rate,
        ms(through_actor.p50),
        ms(through_actor.p99),
        ms(direct.p50),
        ms(direct.p99),
        added(&through_actor, &direct)
    );
    println!(
        "| activation: calls to fresh ids, {} calls/s, p50 / p99 (ms) | {} / {} | {} / {} (plain invocation) | {} |",
        args.activation_rate,
        ms(activation.p50),
        ms(activation.p99),
        ms(direct.p50),
        ms(direct.p99),
        added(&activation, &direct)
    );
    println!(
        "| calls/s on one hot id, {} connections | {hot:.0} | {invoke_rate:.0} (plain invocation) | {:.0} % |",
        args.connections,
        hot / invoke_rate * 100.0
    );
    println!(
        "| calls/s across 10,000 ids, {} connections | {spread:.0} | {invoke_rate:.0} (plain invocation) | {:.0} % |",
        args.connections,
        spread / invoke_rate * 100.0
    );
    println!(
        "| reminders registered/s, `RegisterActorReminder` over gRPC from {} connections | {register_rate:.0} | — | — |",
        args.connections
    );
    println!(
        "| reminders fired/s to the app through the actor path, {} due, {} more registered | {fire_rate:.0} | — | — |",
        args.fires, args.registered
    );
    println!(
        "| peak RSS of the runtime (MB) | {:.1} | — | — |",
        rss as f64 / 1024.0
    );
    println!(
        "\nFilling the store with {} reminders in-process took {fill_seconds:.1} s; registering the {} fired ones took {register_span:.1} s.",
        args.registered, args.fires
    );
    Ok(())
}
