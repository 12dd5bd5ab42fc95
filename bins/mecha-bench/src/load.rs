//! The state benchmark: the same get and save, at 1 KB, in-process and
//! through the runtime over HTTP and gRPC.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mecha_proto::common::StateItem;
use mecha_proto::runtime as pb;
use mecha_proto::runtime::dapr_client::DaprClient;
use mecha_state::{GetRequest, SetRequest, StateStore};
use tonic::transport::Channel;

use crate::process;
use crate::report::{self, Measure, Row};

#[derive(clap::Args)]
pub struct StateArgs {
    /// Repetitions of each measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Sequential requests per latency measurement.
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Concurrent connections for throughput.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Start-ups timed for the start-up figure.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
}

const RESOURCES: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mem
spec:
  type: state.in-memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: durable
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: \"{dir}/bench.db\"
";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Get,
    Save,
}

/// A database's own client, doing the same get and save directly.
#[async_trait::async_trait]
pub trait Direct: Send + Sync {
    /// Reads `key`; the length of its value.
    async fn get(&self, key: &str) -> anyhow::Result<usize>;
    async fn save(&self, key: &str, value: &Bytes) -> anyhow::Result<()>;
}

/// One way of reaching a store.
#[derive(Clone)]
pub enum Target {
    Direct(Arc<dyn Direct>),
    InProcess(Arc<dyn StateStore>),
    Http {
        client: HttpClient<HttpConnector, Full<Bytes>>,
        base: String,
        store: &'static str,
    },
    Grpc {
        client: DaprClient<Channel>,
        store: &'static str,
    },
}

/// A 1 KB JSON value.
pub fn value_1k() -> Bytes {
    let filler = "x".repeat(1024 - r#"{"data":""}"#.len());
    Bytes::from(format!(r#"{{"data":"{filler}"}}"#))
}

/// A value read back is the 1 KB written (PostgreSQL's jsonb may add a
/// space or two).
fn full_length(len: usize, value: &Bytes) -> anyhow::Result<()> {
    anyhow::ensure!(len + 8 >= value.len(), "short value: {len} bytes");
    Ok(())
}

impl Target {
    pub async fn call(&self, op: Op, value: &Bytes) -> anyhow::Result<()> {
        match (self, op) {
            (Target::Direct(client), Op::Get) => {
                full_length(client.get("bench||bench-key").await?, value)?
            }
            (Target::Direct(client), Op::Save) => client.save("bench||bench-save", value).await?,
            (Target::InProcess(store), Op::Get) => {
                let req = GetRequest {
                    key: "bench||bench-key".into(),
                    ..Default::default()
                };
                anyhow::ensure!(store.get(&req).await?.is_some(), "missing");
            }
            (Target::InProcess(store), Op::Save) => {
                store
                    .set(&SetRequest::new("bench||bench-save", value.clone()))
                    .await?;
            }
            (
                Target::Http {
                    client,
                    base,
                    store,
                },
                Op::Get,
            ) => {
                let uri = format!("{base}/v1.0/state/{store}/bench-key");
                let response = client.get(uri.parse()?).await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
                let body = response.into_body().collect().await?.to_bytes();
                full_length(body.len(), value)?;
            }
            (
                Target::Http {
                    client,
                    base,
                    store,
                },
                Op::Save,
            ) => {
                let mut body = Vec::with_capacity(value.len() + 40);
                body.extend_from_slice(br#"[{"key":"bench-save","value":"#);
                body.extend_from_slice(value);
                body.extend_from_slice(b"}]");
                let request = hyper::Request::post(format!("{base}/v1.0/state/{store}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                let response = client.request(request).await?;
                anyhow::ensure!(response.status() == 204, "status {}", response.status());
                response.into_body().collect().await?;
            }
            (Target::Grpc { client, store }, Op::Get) => {
                let request = pb::GetStateRequest {
                    store_name: (*store).into(),
                    key: "bench-key".into(),
                    ..Default::default()
                };
                let data = client.clone().get_state(request).await?.into_inner().data;
                full_length(data.len(), value)?;
            }
            (Target::Grpc { client, store }, Op::Save) => {
                let item = StateItem {
                    key: "bench-save".into(),
                    value: value.clone(),
                    ..Default::default()
                };
                let request = pb::SaveStateRequest {
                    store_name: (*store).into(),
                    states: vec![item],
                };
                client.clone().save_state(request).await?;
            }
        }
        Ok(())
    }
}

/// Sequential latency of `requests` calls (after a warm-up).
pub async fn latency(
    target: &Target,
    op: Op,
    requests: usize,
    value: &Bytes,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..requests / 10 {
        target.call(op, value).await?;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        target.call(op, value).await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// Calls per second with `targets.len()` concurrent callers for `duration`,
/// and the CPU time the process `pid` used per call.
pub async fn throughput(
    targets: Vec<Target>,
    op: Op,
    duration: Duration,
    value: &Bytes,
    pid: u32,
) -> anyhow::Result<(f64, Duration)> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let cpu_before = process::cpu_time(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for target in targets {
        let (done, value) = (done.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                target.call(op, &value).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let calls = done.load(Ordering::Relaxed).max(1);
    let cpu = process::cpu_time(pid).saturating_sub(cpu_before);
    Ok((
        calls as f64 / elapsed.as_secs_f64(),
        cpu / u32::try_from(calls).unwrap_or(u32::MAX),
    ))
}

async fn grpc_client(port: u16) -> anyhow::Result<DaprClient<Channel>> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    Ok(DaprClient::new(channel))
}

pub async fn state(mecha: &Path, args: StateArgs) -> anyhow::Result<()> {
    let startup = process::startup(mecha, args.startup_runs)?;
    println!("{}", report::startup_table(&startup));

    let (sidecar, _) = process::spawn(mecha, Some(RESOURCES))?;
    let pid = sidecar.child.id();
    let own_pid = std::process::id();
    let value = value_1k();
    let dir = tempfile::tempdir()?;
    let memory: Arc<dyn StateStore> = mecha_component_memory::MemoryStateStore::start();
    let sqlite_config =
        mecha_component_sqlite::StateConfig::new(dir.path().join("inprocess.db").to_string_lossy());
    let sqlite: Arc<dyn StateStore> =
        mecha_component_sqlite::SqliteStateStore::open(sqlite_config).await?;
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let base = format!("http://127.0.0.1:{}", sidecar.http_port);
    let (mut floor, floor_http, floor_grpc) = crate::floor::spawn()?;
    let floor_base = format!("http://127.0.0.1:{floor_http}");
    let floor_pid = floor.id();

    let mut rows = Vec::new();
    for (store, component, label) in [
        ("mem", memory, "state.in-memory"),
        ("durable", sqlite, "state.sqlite"),
    ] {
        // The key every get reads, in both places.
        component
            .set(&SetRequest::new("bench||bench-key", value.clone()))
            .await?;
        let seed = Target::Http {
            client: http.clone(),
            base: base.clone(),
            store,
        };
        seed_http(&seed, &value).await?;
        for op in [Op::Get, Op::Save] {
            let mut measures: Vec<Vec<Measure>> = vec![Vec::new(); 5];
            for _ in 0..args.runs {
                let http_target = |base: &String| Target::Http {
                    client: http.clone(),
                    base: base.clone(),
                    store,
                };
                let paths: Vec<(usize, Vec<Target>, u32)> = vec![
                    (
                        0,
                        vec![Target::InProcess(component.clone()); args.connections],
                        own_pid,
                    ),
                    (1, vec![http_target(&base); args.connections], pid),
                    (
                        2,
                        grpc_targets(sidecar.grpc_port, store, args.connections).await?,
                        pid,
                    ),
                    (
                        3,
                        vec![http_target(&floor_base); args.connections],
                        floor_pid,
                    ),
                    (
                        4,
                        grpc_targets(floor_grpc, store, args.connections).await?,
                        floor_pid,
                    ),
                ];
                for (index, targets, cpu_pid) in paths {
                    let samples = latency(&targets[0], op, args.requests, &value).await?;
                    let (rate, cpu) = throughput(
                        targets,
                        op,
                        Duration::from_secs(args.seconds),
                        &value,
                        cpu_pid,
                    )
                    .await?;
                    measures[index].push(Measure::new(samples, rate, cpu));
                }
            }
            rows.push(Row::new(label, op, measures));
        }
    }
    let rss_kb = process::status_kb(pid, "VmRSS:");
    let hwm_kb = process::status_kb(pid, "VmHWM:");
    println!("{}", report::state_table(&rows, &args_summary(&args)));
    println!(
        "sidecar memory after the load: RSS {:.1} MB, peak {:.1} MB",
        rss_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0
    );
    drop(sidecar);
    let _ = floor.kill();
    let _ = floor.wait();
    Ok(())
}

fn args_summary(args: &StateArgs) -> String {
    format!(
        "{} runs (medians); latency: {} sequential calls after {} warm-up; throughput: {} connections for {} s",
        args.runs,
        args.requests,
        args.requests / 10,
        args.connections,
        args.seconds
    )
}

pub async fn seed_http(target: &Target, value: &Bytes) -> anyhow::Result<()> {
    let Target::Http {
        client,
        base,
        store,
    } = target
    else {
        unreachable!()
    };
    let mut body = Vec::new();
    body.extend_from_slice(br#"[{"key":"bench-key","value":"#);
    body.extend_from_slice(value);
    body.extend_from_slice(b"}]");
    let request = hyper::Request::post(format!("{base}/v1.0/state/{store}"))
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    anyhow::ensure!(
        response.status() == 204,
        "seeding failed: {}",
        response.status()
    );
    Ok(())
}

pub async fn grpc_targets(
    port: u16,
    store: &'static str,
    count: usize,
) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::with_capacity(count);
    for _ in 0..count {
        targets.push(Target::Grpc {
            client: grpc_client(port).await?,
            store,
        });
    }
    Ok(targets)
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Get => "get",
            Op::Save => "save",
        })
    }
}
