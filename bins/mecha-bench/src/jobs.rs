//! The scheduler benchmark (issue 14), in one run, on the embedded SQLite
//! store:
//! - registration: `ScheduleJob` over gRPC from many connections against
//!   the store registering in-process (no runtime);
//! - fires from the store in-process, without the app hop (the firing loop
//!   over `scheduler.sqlite` and `scheduler.in-memory`, with an app that
//!   takes each fire at once);
//! - fires delivered through the runtime to an HTTP app;
//! - lateness (fire time minus due time, at the app) at a steady rate;
//! - start-up time and RSS with many registered jobs against an empty store.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mecha_proto::runtime as pb;
use mecha_proto::runtime::dapr_client::DaprClient;
use mecha_scheduler::{AppJobs, Job, JobData, JobStore, Owner, Refused, Scheduler};
use tokio_util::sync::CancellationToken;

use crate::process;

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Concurrent connections registering jobs.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds of registration.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Jobs fired in the in-process and delivered measurements.
    #[arg(long, default_value_t = 50_000)]
    fires: usize,
    /// Fires per second of the lateness measurement.
    #[arg(long, default_value_t = 1000)]
    rate: usize,
    /// Registered jobs of the start-up and memory measurement.
    #[arg(long, default_value_t = 1_000_000)]
    registered: usize,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn rfc3339_ms(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    mecha_core::units::format_rfc3339_nanos(at)
}

fn job(name: String, schedule: Option<&str>, due: Option<String>) -> Job {
    Job {
        name,
        schedule: schedule.map(Into::into),
        due_time: due,
        ..Job::default()
    }
}

async fn sqlite_store(path: &Path) -> anyhow::Result<Arc<dyn JobStore>> {
    let config = mecha_component_sqlite::SchedulerConfig::new(path.to_string_lossy());
    Ok(mecha_component_sqlite::SqliteJobStore::open(config).await?)
}

/// Registers jobs from `connections` tasks for `seconds`: jobs per second.
async fn register_rate<F, Fut>(connections: usize, seconds: u64, register: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let register = register.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                register(connection, done).await?;
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

/// An app in the process that takes every fire at once.
#[derive(Default)]
struct Counting(AtomicU64);

#[async_trait]
impl AppJobs for Counting {
    async fn deliver(&self, _name: &str, _data: &JobData) -> Result<(), Refused> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Registers `count` one-shot jobs due now on `store`, then fires them with
/// the firing loop: fires per second.
async fn fires_in_process(store: Arc<dyn JobStore>, count: usize) -> anyhow::Result<f64> {
    let scheduler = Scheduler::new("bench", store);
    let owner = Owner::new(None, "bench-fires");
    let due = rfc3339_ms(now_ms());
    let mut pending = Vec::new();
    for chunk in (0..count)
        .collect::<Vec<_>>()
        .chunks(count.div_ceil(16).max(1))
    {
        let (scheduler, owner, due, chunk) = (
            scheduler.clone(),
            owner.clone(),
            due.clone(),
            chunk.to_vec(),
        );
        pending.push(tokio::spawn(async move {
            for i in chunk {
                scheduler
                    .schedule(&owner, job(format!("f{i}"), None, Some(due.clone())), false)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in pending {
        task.await??;
    }
    let app = Arc::new(Counting::default());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = {
        let (scheduler, app, stop) = (scheduler.clone(), app.clone(), stop.clone());
        tokio::spawn(async move { mecha_scheduler::fire_jobs(scheduler, app, &owner, stop).await })
    };
    while (app.0.load(Ordering::Relaxed) as usize) < count {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "fired {} of {count}",
            app.0.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = running.await;
    Ok(rate)
}

/// What the benchmark's HTTP app saw: fires, and their lateness against
/// the tick the job's name carries (`l{phase_ms}`: due at that phase of
/// every second).
#[derive(Default)]
struct Arrivals {
    count: AtomicU64,
    lateness: std::sync::Mutex<Vec<Duration>>,
}

async fn serve_app(arrivals: Arc<Arrivals>) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let now = now_ms();
                        let name = request.uri().path().trim_start_matches("/job/").to_owned();
                        if let Some(phase) =
                            name.strip_prefix('l').and_then(|p| p.parse::<i64>().ok())
                        {
                            // The tick: the last time at `phase` ms into a second.
                            let tick = (now - phase).div_euclid(1000) * 1000 + phase;
                            let late = Duration::from_millis((now - tick).max(0) as u64);
                            arrivals.lateness.lock().unwrap().push(late);
                        }
                        arrivals.count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
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

fn grpc_job(name: String, schedule: Option<&str>, due: Option<String>) -> pb::ScheduleJobRequest {
    pb::ScheduleJobRequest {
        job: Some(pb::Job {
            name,
            schedule: schedule.map(Into::into),
            due_time: due,
            ..Default::default()
        }),
        overwrite: false,
    }
}

async fn grpc(port: u16) -> anyhow::Result<DaprClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    Ok(DaprClient::new(channel))
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples
        .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

pub async fn jobs(mecha: &Path, args: JobsArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;

    // Registration: in-process against the runtime over gRPC.
    let store = sqlite_store(&dir.path().join("register.db")).await?;
    let scheduler = Scheduler::new("bench", store);
    let owner = Owner::new(None, "bench-register");
    let direct = register_rate(args.connections, args.seconds, move |c, i| {
        let (scheduler, owner) = (scheduler.clone(), owner.clone());
        async move {
            scheduler
                .schedule(
                    &owner,
                    job(format!("r{c}-{i}"), Some("@every 1h"), None),
                    false,
                )
                .await?;
            Ok(())
        }
    })
    .await?;
    let (sidecar, _) = process::spawn_app(mecha, "bench-jobs", None, &[], None)?;
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        clients.push(grpc(sidecar.grpc_port).await?);
    }
    let clients = Arc::new(clients);
    let through = register_rate(args.connections, args.seconds, move |c, i| {
        let mut client = clients[c].clone();
        async move {
            client
                .schedule_job(grpc_job(format!("g{c}-{i}"), Some("@every 1h"), None))
                .await?;
            Ok(())
        }
    })
    .await?;
    drop(sidecar);

    // Fires in-process, without the app hop.
    let sqlite_fires = fires_in_process(
        sqlite_store(&dir.path().join("fires.db")).await?,
        args.fires,
    )
    .await?;
    let memory_fires =
        fires_in_process(mecha_component_memory::MemoryJobStore::new(), args.fires).await?;

    // Fires delivered through the runtime to an HTTP app.
    let arrivals = Arc::new(Arrivals::default());
    let app_port = serve_app(arrivals.clone()).await?;
    let app_args = ["--app-port".to_owned(), app_port.to_string()];
    let (sidecar, _) = process::spawn_app(mecha, "bench-jobs-app", None, &app_args, None)?;
    let mut client = grpc(sidecar.grpc_port).await?;
    let due_at = now_ms() + 60_000;
    let mut registering = Vec::new();
    for c in 0..args.connections {
        let mut client = client.clone();
        let per = args.fires.div_ceil(args.connections);
        registering.push(tokio::spawn(async move {
            for i in c * per..((c + 1) * per).min(args.fires) {
                client
                    .schedule_job(grpc_job(format!("d{i}"), None, Some(rfc3339_ms(due_at))))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in registering {
        task.await??;
    }
    let wait = Duration::from_millis((due_at - now_ms()).max(0) as u64);
    anyhow::ensure!(!wait.is_zero(), "registering took longer than a minute");
    tokio::time::sleep(wait).await;
    let started = Instant::now();
    while (arrivals.count.load(Ordering::Relaxed) as usize) < args.fires {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "not every fire came"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = args.fires as f64 / started.elapsed().as_secs_f64();
    let rss_under_load = process::status_kb(sidecar.child.id(), "VmHWM:");

    // Lateness at a steady rate: `rate` jobs, each every second at its own
    // phase, for a few seconds.
    let before = arrivals.count.load(Ordering::Relaxed);
    arrivals.lateness.lock().unwrap().clear();
    let start = (now_ms() / 1000 + 3) * 1000;
    for i in 0..args.rate {
        let phase = (i * 1000 / args.rate) as i64;
        client
            .schedule_job(grpc_job(
                format!("l{phase}"),
                Some("@every 1s"),
                Some(rfc3339_ms(start + phase)),
            ))
            .await?;
    }
    let seconds = 5u64;
    let started = Instant::now();
    while arrivals.count.load(Ordering::Relaxed) < before + (args.rate as u64) * seconds {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(seconds + 60),
            "the steady fires did not come"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lateness = std::mem::take(&mut *arrivals.lateness.lock().unwrap());
    let (p50, p99) = (
        percentile(&mut lateness, 0.5),
        percentile(&mut lateness, 0.99),
    );
    drop(sidecar);

    // Start-up and memory with many registered jobs, against an empty store.
    let empty = tempfile::tempdir()?;
    let (sidecar, startup_empty) =
        process::spawn_app(mecha, "bench-big", None, &[], Some(empty.path()))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_empty = process::status_kb(sidecar.child.id(), "VmRSS:");
    drop(sidecar);
    let full = tempfile::tempdir()?;
    let filled = Instant::now();
    {
        let store = sqlite_store(&full.path().join("scheduler.db")).await?;
        let scheduler = Scheduler::new("bench", store);
        let owner = Owner::new(None, "bench-big");
        let due = rfc3339_ms(now_ms() + 3_600_000);
        let per = args.registered.div_ceil(64);
        let mut tasks = Vec::new();
        for t in 0..64 {
            let (scheduler, owner, due) = (scheduler.clone(), owner.clone(), due.clone());
            let count = args.registered;
            tasks.push(tokio::spawn(async move {
                for i in t * per..((t + 1) * per).min(count) {
                    scheduler
                        .schedule(&owner, job(format!("b{i}"), None, Some(due.clone())), false)
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
    }
    let fill_rate = args.registered as f64 / filled.elapsed().as_secs_f64();
    let app_port = serve_app(Arc::new(Arrivals::default())).await?;
    let app_args = ["--app-port".to_owned(), app_port.to_string()];
    let (sidecar, startup_full) =
        process::spawn_app(mecha, "bench-big", None, &app_args, Some(full.path()))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_full = process::status_kb(sidecar.child.id(), "VmRSS:");
    drop(sidecar);

    println!("| measure | Mecha | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| registration, `ScheduleJob` over gRPC from {} connections (jobs/s) | {:.0} | {:.0} (the store in-process) | {:.0} % |",
        args.connections,
        through,
        direct,
        through / direct * 100.0
    );
    println!(
        "| fires from the store in the runtime, no app hop, `scheduler.sqlite` (fires/s) | {sqlite_fires:.0} | {memory_fires:.0} (`scheduler.in-memory`) | {:.0} % |",
        sqlite_fires / memory_fires * 100.0
    );
    println!(
        "| fires delivered to an HTTP app through the runtime, {} one-shot jobs due at once (fires/s) | {delivered:.0} | {sqlite_fires:.0} (no app hop) | {:.0} % |",
        args.fires,
        delivered / sqlite_fires * 100.0
    );
    println!(
        "| lateness at the app at a steady {} fires/s, p50 / p99 | {} / {} ms | — | — |",
        args.rate,
        p50.as_millis(),
        p99.as_millis()
    );
    println!(
        "| start-up to healthy, {} registered jobs (ms) | {} | {} (empty store) | {:.0} % |",
        args.registered,
        startup_full.as_millis(),
        startup_empty.as_millis(),
        startup_full.as_secs_f64() / startup_empty.as_secs_f64() * 100.0
    );
    println!(
        "| RSS with an app, {} registered jobs (MB) | {:.1} | {:.1} (empty store, no app) | — |",
        args.registered,
        rss_full as f64 / 1024.0,
        rss_empty as f64 / 1024.0
    );
    println!(
        "| peak RSS of the runtime delivering {} fires (MB) | {:.1} | — | — |",
        args.fires,
        rss_under_load as f64 / 1024.0
    );
    println!(
        "\nFilling the store with {} jobs in-process took {:.1} s ({fill_rate:.0} jobs/s).",
        args.registered,
        args.registered as f64 / fill_rate
    );
    Ok(())
}
