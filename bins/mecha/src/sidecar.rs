//! `mecha sidecar`: load and check resources, listen, build components, serve
//! until asked to stop, then drain.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use mecha_actors::{ActorHost, Actors, Seams};
use mecha_api::{Api, Handles};
use mecha_bindings::InputBindings;
use mecha_channel::{Channel, ChannelConfig, HealthCheck, Protocol};
use mecha_core::units::parse_quantity;
use mecha_core::{HostStatus, Service};
use mecha_invoke::Peers;
use mecha_nameresolution::{Registered, Registration, Resolver};
use mecha_peers::PeerClient;
use mecha_pubsub::{AppSubscriptions, Subscriptions};
use mecha_resources::{LoadOptions, Report};
use mecha_runtime::{AppConnection, AppHealthCheck, Components, Host, Runtime, RuntimeInfo};
use mecha_scheduler::Firing;
use tokio_util::sync::CancellationToken;

use crate::actors::PlacementSeam;

use crate::flags::SidecarArgs;
use crate::listeners::Listeners;
use crate::logging;
use crate::planning::{Inputs, Planned, Source};
use crate::subscriptions::declarative_spec;

pub fn main(args: SidecarArgs) -> ExitCode {
    let started = Instant::now();
    logging::init(&args.log_level, args.log_as_json);
    let tokio = match scheduler(args.worker_threads.map(usize::from).or_else(env_workers)) {
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

/// The worker threads a sidecar starts by default: one, a single thread
/// in all (tokio's current-thread scheduler). A sidecar beside one app
/// spends most of each call waiting for the network, and with two or more
/// workers tokio wakes an idle worker to look for work on nearly every
/// call: through two runtimes, that took the added p50 from about +100 to
/// about +200 µs on a 2-core machine, for no more throughput even at 16
/// connections (`docs/benchmarks.md`, issue 13, fifth part). More workers
/// (`--worker-threads`) are for a sidecar whose calls cost CPU of their own
/// (large bodies to parse) under heavy load.
const DEFAULT_WORKERS: usize = 1;

/// The async scheduler: `--worker-threads` workers, by default
/// [`DEFAULT_WORKERS`]; with 1, one thread in all.
pub(crate) fn scheduler(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = workers.unwrap_or(DEFAULT_WORKERS);
    if workers == 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// `MECHA_WORKER_THREADS`, when set to a number from 1 to 1024. The
/// variable was read leniently before the flag existed, so a value out of
/// range is warned about and left at the default, not refused.
fn env_workers() -> Option<usize> {
    let value = env_value("MECHA_WORKER_THREADS")?;
    match value.trim().parse::<usize>() {
        Ok(n @ 1..=1024) => Some(n),
        _ => {
            tracing::warn!(
                value,
                "MECHA_WORKER_THREADS is not a number from 1 to 1024; ignored"
            );
            None
        }
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
        Source::Paths(&args.resources_path, &data_dir)
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
        request_memory_budget: parse_quantity(&args.request_memory_budget)
            .map_err(|err| anyhow::anyhow!("--request-memory-budget: {err}"))?
            .try_into()
            .unwrap_or(usize::MAX),
        request_memory_wait: mecha_core::units::parse_go_duration(&args.request_memory_wait)
            .map_err(|err| anyhow::anyhow!("--request-memory-wait: {err}"))?,
    };
    // Every problem, from loading and from checking, is reported at once.
    let Planned {
        components: plan,
        name_resolution,
        subscriptions,
        report,
    } = inputs.plan(&info);
    report_problems(&report)?;
    let declarative = subscriptions.iter().map(declarative_spec).collect();

    let runtime = Runtime::new(info);
    let app = start_app_channel(&args, &runtime, max_body);
    let resolver = match name_resolution {
        Some(builder) => Some(
            builder
                .build()
                .await
                .context("name resolution failed to initialise")?,
        ),
        None => None,
    };
    let subscriptions = Arc::new(Subscriptions::new());
    let peers: Option<Arc<dyn Peers>> = resolver
        .is_some()
        .then(|| Arc::new(PeerClient::default()) as _);
    let placement = Arc::new(PlacementSeam::new(
        &runtime.info.placement_addresses,
        &runtime.info.data_dir,
        &args.app_id,
        runtime.info.namespace.as_deref(),
    ));
    let actors = Actors::new(Seams {
        app_id: args.app_id.clone(),
        namespace: runtime.info.namespace.clone(),
        app: app.clone().map(|app| app as _),
        http_app: app.is_some() && !args.app_protocol.starts_with("grpc"),
        peers: peers.clone(),
        placing: placement.clone(),
        max_answer: max_body,
    });
    let api = Api::new(
        runtime.clone(),
        Handles {
            app_channel: app.clone().map(|app| app as _),
            resolver: resolver.clone().map(|r| Arc::new(Resolver::new(r))),
            peers,
            subscriptions: subscriptions.clone(),
            actors: Some(actors.clone()),
        },
    );
    // The ports are bound now (a port in use stops the runtime before
    // anything starts), but they serve only once the components are built,
    // as daprd's do: no request meets a half-started runtime. Connections
    // made meanwhile wait in the listen backlog. (Name resolution is built
    // before: the API is made with it.)
    // The API ports stop taking requests when the runtime is asked to stop;
    // while it hosts actors, only once they are handed over, so that an
    // actor being drained can still call its runtime (another actor, its
    // state).
    let api_stop = CancellationToken::new();
    tokio::spawn({
        let (runtime, actors, api_stop) = (runtime.clone(), actors.clone(), api_stop.clone());
        async move {
            runtime.shutdown_requested().await;
            if actors.hosting() {
                let _ = tokio::time::timeout(API_HELD_OPEN, actors.handed_over()).await;
            }
            api_stop.cancel();
        }
    });
    let listeners = Listeners::bind(&args, &api, resolver.as_deref(), &api_stop).await?;
    let internal_port = listeners.internal_port();
    // Placement names this runtime by its internal address (it joins once
    // the runtime is ready, after this).
    placement.set_address(listeners.internal_ip(), internal_port);

    // The services, in start order; they drain in the reverse order.
    let status: Arc<dyn HostStatus> = runtime.clone();
    let mut host = Host::new(runtime.clone());
    if let Some(app) = &app {
        host.add(AppListening {
            app: app.clone(),
            runtime: runtime.clone(),
        });
    }
    host.add(Components::new(runtime.clone(), plan));
    host.add(listeners);
    // Other runtimes find this one only once it serves.
    if let Some(resolver) = resolver {
        let registration = (!args.app_id.is_empty()).then(|| Registration {
            app_id: args.app_id.clone(),
            namespace: runtime.info.namespace.clone(),
            host: None,
            port: internal_port,
        });
        host.add(Registered::new(resolver, registration));
    }
    host.add(AppSubscriptions::new(
        status.clone(),
        subscriptions,
        app.clone().map(|app| app as _),
        declarative,
    ));
    host.add(InputBindings::new(
        status.clone(),
        app.clone().map(|app| app as _),
    ));
    // Jobs fire once the runtime is ready, and only to an app.
    if let Some(app) = app {
        let owner = mecha_scheduler::Owner::new(runtime.info.namespace.as_deref(), &args.app_id);
        host.add(Firing::new(status.clone(), app, owner));
    }
    host.add(ActorHost::new(status, actors, has_actor_state_store));
    host.add(StartupPages {
        runtime: runtime.clone(),
    });
    tracing::debug!(services = ?host.names(), "starting");
    let grace = Duration::from_secs(args.dapr_graceful_shutdown_seconds);
    host.run(started, stop_signal(runtime), grace).await
}

/// Whether a state store is marked `actorStateStore: "true"`.
fn has_actor_state_store(host: &dyn HostStatus) -> bool {
    host.components()
        .all::<mecha_state::StateBlock>()
        .any(|store| store.actor_state_store)
}

/// Marks the runtime's app as ready once it listens on its port (the app
/// may come up while the rest starts).
struct AppListening {
    app: Arc<Channel>,
    runtime: Arc<Runtime>,
}

#[async_trait]
impl Service for AppListening {
    fn name(&self) -> &'static str {
        "app channel"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let (app, runtime) = (self.app.clone(), self.runtime.clone());
        tokio::spawn(async move {
            app.wait_for_app().await;
            tracing::info!("the app is listening");
            runtime.set_app_ready();
        });
        Ok(())
    }
}

/// Gives back the pages of code that only start-up ran, once every service
/// has started, and again once the app's side has started (its
/// subscriptions and input bindings): see [`crate::pages`].
struct StartupPages {
    runtime: Arc<Runtime>,
}

/// How long after the runtime is ready the rest of start-up is taken to be
/// over: the app-side services (reading the app's subscriptions, starting
/// input bindings) and the first rounds of periodic work (name resolution
/// heartbeats every 2.5 s, the first pub/sub cleanup at 10 s, whose
/// statements are compiled once).
/// The longest the API ports stay open, once the runtime is asked to stop,
/// for the actors' hand-over.
const API_HELD_OPEN: Duration = Duration::from_secs(30);

const APP_START_SETTLES: Duration = Duration::from_secs(15);

#[async_trait]
impl Service for StartupPages {
    fn name(&self) -> &'static str {
        "start-up pages"
    }

    async fn start(&self) -> anyhow::Result<()> {
        // In a task of its own: reading /proc/self/smaps is no part of
        // start-up.
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            let released = crate::pages::release_startup_pages();
            tracing::debug!(released, "start-up pages given back");
            runtime.wait_ready().await;
            tokio::time::sleep(APP_START_SETTLES).await;
            let released = crate::pages::release_startup_pages();
            tracing::debug!(released, "app start-up pages given back");
        });
        Ok(())
    }
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
    Some(Channel::start(config))
}

/// Resolves on SIGTERM, SIGINT or a shutdown requested through the API, and
/// marks the runtime as shutting down.
async fn stop_signal(runtime: Arc<Runtime>) {
    tokio::select! {
        () = runtime.shutdown_requested() => {}
        () = signalled() => {}
    }
    runtime.request_shutdown();
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn signalled() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        () = terminate => tracing::info!("terminated"),
    }
}
