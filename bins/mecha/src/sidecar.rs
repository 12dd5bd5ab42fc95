//! `mecha sidecar`: load and check resources, listen, build components, serve
//! until asked to stop, then drain.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mecha_api::Api;
use mecha_api_grpc::{CallLayer, PeerClient, Side};
use mecha_channel::{Channel, ChannelConfig, HealthCheck, Protocol};
use mecha_config::{LoadOptions, Report};
use mecha_core::units::parse_quantity;
use mecha_nameresolution::{Registration, Resolver};
use mecha_runtime::{
    AppConnection, AppHealthCheck, Runtime, RuntimeInfo, declarative_spec, start_subscriptions,
    stop_pubsub,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::flags::SidecarArgs;
use crate::planning::{Inputs, Planned, Source};
use crate::{logging, metrics};

pub fn main(args: SidecarArgs) -> ExitCode {
    let started = Instant::now();
    logging::init(&args.log_level, args.log_as_json);
    let tokio = match scheduler() {
        Ok(tokio) => tokio,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match tokio.block_on(run(args, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The async scheduler: one worker per core, or one thread in all with
/// `MECHA_WORKER_THREADS=1` (fewer thread wake-ups per call; less CPU at
/// moderate load, less throughput at full load).
fn scheduler() -> std::io::Result<tokio::runtime::Runtime> {
    match env_value("MECHA_WORKER_THREADS").and_then(|n| n.parse::<usize>().ok()) {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) if n > 1 => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `--max-body-size`, or the deprecated `--dapr-http-max-request-size` (MB)
/// when only that one is given.
fn max_body_size(args: &SidecarArgs) -> anyhow::Result<usize> {
    if let (Some(mb), "4Mi") = (args.dapr_http_max_request_size, args.max_body_size.as_str()) {
        return Ok(usize::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX));
    }
    let bytes = parse_quantity(&args.max_body_size)
        .map_err(|err| anyhow::anyhow!("--max-body-size: {err}"))?;
    Ok(usize::try_from(bytes).unwrap_or(usize::MAX))
}

fn listen_ips(args: &SidecarArgs) -> anyhow::Result<Vec<IpAddr>> {
    let Some(list) = args
        .dapr_listen_addresses
        .as_deref()
        .filter(|l| !l.trim().is_empty())
    else {
        return Ok(vec![IpAddr::from([0, 0, 0, 0])]);
    };
    list.split(',')
        .map(|addr| {
            let addr = addr.trim();
            let addr = if addr == "localhost" {
                "127.0.0.1"
            } else {
                addr
            };
            addr.parse::<IpAddr>()
                .with_context(|| format!("--dapr-listen-addresses: '{addr}' is not an IP address"))
        })
        .collect()
}

async fn bind(ip: IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for the {what} on {addr}"))
}

fn report_problems(report: &Report) -> anyhow::Result<()> {
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    for error in &report.errors {
        tracing::error!("{error}");
    }
    if !report.is_ok() {
        bail!(
            "{} error(s) in the resources; nothing was started",
            report.errors.len()
        );
    }
    Ok(())
}

async fn run(args: SidecarArgs, started: Instant) -> anyhow::Result<()> {
    for flag in args.unsupported() {
        tracing::warn!(
            flag,
            "daprd flag accepted but not supported by mecha yet; ignored"
        );
    }
    // A flag given at all asks for it, unless its value says false.
    let off = |value: &str| mecha_core::metadata::parse_bool(value) == Some(false);
    if args.enable_mtls.as_deref().is_some_and(|value| !off(value)) {
        bail!(
            "--enable-mtls: mTLS between runtimes is not supported by mecha yet, and running \
             without it was not asked for; leave the flag off (or set it to false)"
        );
    }
    if args.mode == "kubernetes" {
        tracing::warn!("--mode kubernetes is not supported yet; running as standalone");
    }
    let max_body = max_body_size(&args)?;
    let data_dir = crate::data_dir(args.data_dir.clone());
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let namespace = env_value("NAMESPACE");

    // Resources: the folders given, or the embedded defaults.
    let options = LoadOptions {
        app_id: Some(args.app_id.clone()),
        namespace: namespace.clone(),
    };
    let source = if args.resources_path.is_empty() {
        tracing::info!(data_dir = %data_dir.display(), "no resources path given: using the embedded defaults");
        Source::Defaults(&data_dir)
    } else {
        Source::Paths(&args.resources_path)
    };
    let inputs = Inputs::load(source, &options, &args.config);
    for skipped in &inputs.skipped {
        tracing::info!(file = %skipped.file.display(), kind = %skipped.kind, name = %skipped.name, "resource skipped: {}", skipped.reason);
    }

    let info = RuntimeInfo {
        app_id: args.app_id.clone(),
        namespace,
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir,
        app: AppConnection {
            port: args.app_port,
            protocol: args.app_protocol.clone(),
            channel_address: args.app_channel_address.clone(),
            max_concurrency: u32::try_from(args.app_max_concurrency)
                .ok()
                .filter(|n| *n > 0),
            health: args.enable_app_health_check.then(|| AppHealthCheck {
                path: args.app_health_check_path.clone(),
                interval: Duration::from_secs(args.app_health_probe_interval),
                timeout: Duration::from_millis(args.app_health_probe_timeout),
                threshold: args.app_health_threshold,
            }),
        },
        enabled_features: inputs.configuration.enabled_features(),
        placement_addresses: args
            .placement_host_address
            .iter()
            .flat_map(|list| list.split(','))
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect(),
        api_token: env_value("DAPR_API_TOKEN"),
        app_api_token: env_value("APP_API_TOKEN"),
        max_body_size: max_body,
    };
    if !info.placement_addresses.is_empty() {
        tracing::warn!("--placement-host-address given, but actors are not supported by mecha yet");
    }
    // Every problem, from loading and from checking, is reported at once.
    let Planned {
        components: plan,
        name_resolution,
        subscriptions,
        report,
    } = inputs.plan(&info);
    report_problems(&report)?;

    let runtime = Runtime::new(info);
    runtime.set_declarative_subscriptions(subscriptions.iter().map(declarative_spec).collect());
    let api = Api::new(runtime.clone());
    let app_channel = start_app_channel(&args, &runtime, max_body);

    // Listen first, so health checks answer (500) while components start.
    let mut servers = JoinSet::new();
    let http = mecha_api_http::router(api.clone());
    let grpc = mecha_api_grpc::routes(api.clone());
    for ip in listen_ips(&args)? {
        let listener = bind(ip, args.dapr_http_port, "HTTP API").await?;
        servers.spawn(serve_http(listener, http.clone(), runtime.clone()));
        let listener = bind(ip, args.dapr_grpc_port, "gRPC API").await?;
        let (routes, rt) = (grpc.clone(), runtime.clone());
        servers.spawn(async move {
            let calls = CallLayer::new(Api::new(rt.clone()), Side::Caller);
            mecha_api_grpc::serve(listener, routes, calls, async move {
                rt.shutdown_requested().await
            })
            .await
            .map_err(anyhow::Error::from)
        });
    }
    // The app may come up while name resolution starts.
    if let Some(channel) = app_channel {
        let rt = runtime.clone();
        tokio::spawn(async move {
            channel.wait_for_app().await;
            tracing::info!("the app is listening");
            rt.set_app_ready();
        });
    }
    let resolver = match name_resolution {
        Some(builder) => Some(
            builder
                .build()
                .await
                .context("name resolution failed to initialise")?,
        ),
        None => None,
    };
    // The runtime-to-runtime port (an OS-chosen port unless given). Until
    // callers are authenticated (mTLS), it is reachable from this host
    // only when every peer is on this host.
    let internal_ip: IpAddr = match &args.dapr_internal_grpc_listen_address {
        Some(address) => address
            .parse()
            .context("--dapr-internal-grpc-listen-address is not an IP address")?,
        None if resolver.as_ref().is_none_or(|r| r.host_local()) => IpAddr::from([127, 0, 0, 1]),
        None => IpAddr::from([0, 0, 0, 0]),
    };
    let internal = bind(
        internal_ip,
        args.dapr_internal_grpc_port.unwrap_or(0),
        "internal gRPC",
    )
    .await?;
    let internal_port = internal.local_addr()?.port();
    {
        let rt = runtime.clone();
        let routes = mecha_api_grpc::internal_routes(api.clone());
        let calls = CallLayer::new(api.clone(), Side::Callee);
        servers.spawn(async move {
            mecha_api_grpc::serve(internal, routes, calls, async move {
                rt.shutdown_requested().await
            })
            .await
            .map_err(anyhow::Error::from)
        });
    }
    if args.enable_metrics {
        let ip: IpAddr = args
            .metrics_listen_address
            .parse()
            .context("--metrics-listen-address is not an IP address")?;
        let listener = bind(ip, args.metrics_port, "metrics").await?;
        servers.spawn(serve_http(
            listener,
            metrics::router(runtime.clone()),
            runtime.clone(),
        ));
    }
    runtime.set_api_ready();
    tracing::info!(
        app_id = %args.app_id,
        http_port = args.dapr_http_port,
        grpc_port = args.dapr_grpc_port,
        internal_grpc_port = internal_port,
        internal_grpc_address = %internal_ip,
        "API listening"
    );
    if let Some(resolver) = &resolver {
        let peers: Arc<dyn mecha_invoke::Peers> = Arc::new(PeerClient::default());
        runtime.set_invocation(Arc::new(Resolver::new(resolver.clone())), peers);
        if !args.app_id.is_empty() {
            let registration = Registration {
                app_id: args.app_id.clone(),
                namespace: runtime.info.namespace.clone(),
                host: None,
                port: internal_port,
            };
            resolver
                .register(&registration)
                .await
                .context("registering with name resolution")?;
        }
    }

    // Input bindings read until shutdown.
    let inputs_stop = tokio_util::sync::CancellationToken::new();
    // Build (connect) the components.
    tokio::select! {
        built = plan.build() => match built {
            Ok(store) => {
                runtime.set_components(store);
                let (rt, inputs) = (runtime.clone(), inputs_stop.clone());
                tokio::spawn(async move {
                    rt.wait_ready().await;
                    if !rt.is_shutting_down() {
                        start_subscriptions(&rt).await;
                        mecha_runtime::start_input_bindings(&rt, inputs).await;
                    }
                });
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!("{error}");
                }
                runtime.request_shutdown();
                drain(&mut servers, Duration::from_secs(args.dapr_graceful_shutdown_seconds)).await;
                bail!("{} component(s) failed to initialise", errors.len());
            }
        },
        () = stop_signal(runtime.clone()) => {}
    }
    if !runtime.is_shutting_down() {
        tracing::info!(
            startup_ms = started.elapsed().as_millis() as u64,
            components = runtime.components().infos().len(),
            "mecha is up and running"
        );
        stop_signal(runtime.clone()).await;
    }
    tracing::info!("shutting down: draining in-flight requests");
    let grace = Duration::from_secs(args.dapr_graceful_shutdown_seconds);
    // Stop taking messages first, and let deliveries in flight settle.
    inputs_stop.cancel();
    stop_pubsub(&runtime, grace).await;
    if let Some(resolver) = &resolver
        && let Err(err) = resolver.close().await
    {
        tracing::warn!("leaving name resolution: {err:#}");
    }
    drain(
        &mut servers,
        Duration::from_secs(args.dapr_graceful_shutdown_seconds),
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the app channel when there is an app (`--app-port`).
fn start_app_channel(
    args: &SidecarArgs,
    runtime: &Arc<Runtime>,
    max_body: usize,
) -> Option<Arc<Channel>> {
    let port = args.app_port?;
    let config = ChannelConfig {
        protocol: Protocol::parse(&args.app_protocol).expect("clap checked --app-protocol"),
        address: args.app_channel_address.clone(),
        port,
        max_concurrency: usize::try_from(args.app_max_concurrency)
            .ok()
            .filter(|n| *n > 0),
        token: runtime.info.app_api_token.clone(),
        health: args.enable_app_health_check.then(|| HealthCheck {
            path: args.app_health_check_path.clone(),
            interval: Duration::from_secs(args.app_health_probe_interval.max(1)),
            timeout: Duration::from_millis(args.app_health_probe_timeout.max(1)),
            threshold: args.app_health_threshold,
        }),
        max_body,
    };
    let channel = Channel::start(config);
    runtime.set_app_channel(channel.clone());
    runtime.set_app_subscriber(channel.clone());
    runtime.set_app_bindings(channel.clone());
    Some(channel)
}

async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    runtime: Arc<Runtime>,
) -> anyhow::Result<()> {
    mecha_api_http::serve(listener, router, async move {
        runtime.shutdown_requested().await
    })
    .await
    .map_err(anyhow::Error::from)
}

/// Resolves on SIGTERM, SIGINT or a shutdown requested through the API, and
/// marks the runtime as shutting down.
async fn stop_signal(runtime: Arc<Runtime>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = runtime.shutdown_requested() => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        () = terminate => tracing::info!("terminated"),
    }
    runtime.request_shutdown();
}

/// Waits for the servers to finish their in-flight requests, up to `grace`.
async fn drain(servers: &mut JoinSet<anyhow::Result<()>>, grace: Duration) {
    let all = async {
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::warn!("server stopped with an error: {err:#}");
            }
        }
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        );
    }
}
