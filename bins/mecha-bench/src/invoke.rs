//! The invocation benchmark: app → runtime → runtime → app against
//! app → app directly, over HTTP and gRPC, with 1 KB each way.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mecha_proto::testing::v1::EchoRequest;
use mecha_proto::testing::v1::echo_client::EchoClient;
use tonic::transport::Channel;

use crate::process;
use crate::report;

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// Repetitions of each measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The fixed rate of the latency measurement, in calls per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds at that rate.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Concurrent connections for the throughput measurement.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds of the throughput measurement.
    #[arg(long, default_value_t = 3)]
    throughput_seconds: u64,
}

#[derive(Clone)]
enum Target {
    Http {
        client: HttpClient<HttpConnector, Full<Bytes>>,
        url: String,
    },
    Grpc {
        client: EchoClient<Channel>,
        /// `dapr-app-id` for proxying through the runtime.
        app_id: Option<&'static str>,
    },
}

fn payload() -> Bytes {
    crate::load::value_1k()
}

impl Target {
    async fn call(&self, body: &Bytes) -> anyhow::Result<()> {
        match self {
            Target::Http { client, url } => {
                let request = hyper::Request::post(url.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let response = client.request(request).await?;
                let status = response.status();
                let answer = response.into_body().collect().await?.to_bytes();
                anyhow::ensure!(
                    status == 200,
                    "status {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
                anyhow::ensure!(answer.len() == body.len(), "short answer");
            }
            Target::Grpc { client, app_id } => {
                let mut request = tonic::Request::new(EchoRequest {
                    payload: body.clone(),
                    ..Default::default()
                });
                if let Some(app_id) = app_id {
                    request
                        .metadata_mut()
                        .insert("dapr-app-id", app_id.parse()?);
                }
                let reply = client.clone().unary(request).await?.into_inner();
                anyhow::ensure!(reply.payload.len() == body.len(), "short answer");
            }
        }
        Ok(())
    }
}

/// Latency of calls sent at a fixed rate (open loop: calls do not wait for
/// each other). Each call is timed from when it is sent; tokio's timer
/// fires up to a millisecond late, so timing from the due time would add
/// the timer's lateness to every call.
async fn at_rate(
    target: &Target,
    rate: u32,
    seconds: u32,
    body: &Bytes,
) -> anyhow::Result<Vec<Duration>> {
    let every = Duration::from_secs(1) / rate;
    let total = rate * seconds;
    let start = tokio::time::Instant::now();
    let mut calls = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + every * i;
        tokio::time::sleep_until(due).await;
        let (target, body) = (target.clone(), body.clone());
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            target.call(&body).await?;
            anyhow::Ok(sent.elapsed())
        }));
    }
    let mut samples = Vec::with_capacity(calls.len());
    for call in calls {
        samples.push(call.await??);
    }
    Ok(samples)
}

async fn throughput(targets: Vec<Target>, duration: Duration, body: &Bytes) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|target| {
            let (done, body) = (done.clone(), body.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    target.call(&body).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn echo_client(port: u16) -> anyhow::Result<EchoClient<Channel>> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(EchoClient::new(channel))
}

/// One path's figures.
pub struct Figures {
    pub name: &'static str,
    pub latency: report::Measure,
    pub runtime_cpu_per_1000: Option<Duration>,
    pub runtime_vcpu: Option<f64>,
}

pub async fn invoke(mecha: &Path, args: InvokeArgs) -> anyhow::Result<()> {
    let (mut app, app_http, app_grpc) = crate::floor::spawn()?;
    let data = tempfile::tempdir()?;
    let runtime = |app_id: &str, extra: Vec<String>| {
        process::spawn_app(mecha, app_id, None, &extra, Some(data.path()))
    };
    let (http_callee, _) = runtime(
        "bench-http-app",
        vec!["--app-port".into(), app_http.to_string()],
    )?;
    let (grpc_callee, _) = runtime(
        "bench-grpc-app",
        vec![
            "--app-port".into(),
            app_grpc.to_string(),
            "--app-protocol".into(),
            "grpc".into(),
        ],
    )?;
    let (caller, _) = runtime("bench-caller", vec![])?;
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let body = payload();

    let direct_http = Target::Http {
        client: http.clone(),
        url: format!("http://127.0.0.1:{app_http}/echo"),
    };
    let via_http = Target::Http {
        client: http.clone(),
        url: format!(
            "http://127.0.0.1:{}/v1.0/invoke/bench-http-app/method/echo",
            caller.http_port
        ),
    };
    let direct_grpc = |client| Target::Grpc {
        client,
        app_id: None,
    };
    let via_grpc = |client| Target::Grpc {
        client,
        app_id: Some("bench-grpc-app"),
    };

    // (name, target for latency, runtimes whose CPU counts, port for more connections, through the runtime?)
    let paths: Vec<(&'static str, Target, Vec<u32>)> = vec![
        ("HTTP app → app (direct)", direct_http.clone(), vec![]),
        (
            "HTTP app → runtime → runtime → app",
            via_http.clone(),
            vec![caller.child.id(), http_callee.child.id()],
        ),
        (
            "gRPC app → app (direct)",
            direct_grpc(echo_client(app_grpc).await?),
            vec![],
        ),
        (
            "gRPC app → runtime → runtime → app (proxied)",
            via_grpc(echo_client(caller.grpc_port).await?),
            vec![caller.child.id(), grpc_callee.child.id()],
        ),
    ];
    // Warm up every path (connections, name resolution).
    for (_, target, _) in &paths {
        for _ in 0..200 {
            target.call(&body).await?;
        }
    }

    let mut rows = Vec::new();
    for (name, target, pids) in &paths {
        let mut measures = Vec::new();
        let mut cpu_per_1000 = Vec::new();
        let mut vcpu = Vec::new();
        let mut rates = Vec::new();
        for _ in 0..args.runs {
            let cpu_before: Duration = pids.iter().map(|p| process::cpu_time(*p)).sum();
            let wall = Instant::now();
            let samples = at_rate(target, args.rate, args.seconds, &body).await?;
            let calls = samples.len() as f64;
            let cpu = pids
                .iter()
                .map(|p| process::cpu_time(*p))
                .sum::<Duration>()
                .saturating_sub(cpu_before);
            cpu_per_1000.push(cpu.mul_f64(1000.0 / calls));
            vcpu.push(cpu.as_secs_f64() / wall.elapsed().as_secs_f64());
            // Throughput: one connection per caller.
            let mut targets = Vec::new();
            for _ in 0..args.connections {
                targets.push(match target {
                    Target::Http { .. } => target.clone(),
                    Target::Grpc { app_id, .. } => {
                        let port = if app_id.is_some() {
                            caller.grpc_port
                        } else {
                            app_grpc
                        };
                        Target::Grpc {
                            client: echo_client(port).await?,
                            app_id: *app_id,
                        }
                    }
                });
            }
            rates.push(
                throughput(targets, Duration::from_secs(args.throughput_seconds), &body).await?,
            );
            measures.push(report::Measure::new(samples, 0.0, Duration::ZERO));
        }
        let mut latency = report::median_of(&measures);
        latency.rate = report::median_f64(&rates);
        let median_duration = |values: &mut Vec<Duration>| {
            values.sort();
            values[values.len() / 2]
        };
        rows.push(Figures {
            name,
            latency,
            runtime_cpu_per_1000: (!pids.is_empty()).then(|| median_duration(&mut cpu_per_1000)),
            runtime_vcpu: (!pids.is_empty()).then(|| report::median_f64(&vcpu)),
        });
    }
    let rss: Vec<(String, f64, f64)> = [
        ("caller", &caller),
        ("HTTP callee", &http_callee),
        ("gRPC callee", &grpc_callee),
    ]
    .iter()
    .map(|(name, sidecar)| {
        let pid = sidecar.child.id();
        (
            (*name).to_owned(),
            process::status_kb(pid, "VmRSS:") as f64 / 1024.0,
            process::status_kb(pid, "VmHWM:") as f64 / 1024.0,
        )
    })
    .collect();
    println!("{}", report::invoke_table(&rows, &rss, &args.summary()));
    drop((caller, http_callee, grpc_callee));
    let _ = app.kill();
    let _ = app.wait();
    Ok(())
}

impl InvokeArgs {
    fn summary(&self) -> String {
        format!(
            "{} runs (medians); latency at a fixed {} calls/s for {} s (open loop, each call timed from its sending); throughput: {} connections for {} s; 1 KB request and answer",
            self.runs, self.rate, self.seconds, self.connections, self.throughput_seconds
        )
    }
}
