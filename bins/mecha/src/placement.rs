//! `mecha placement`: the actor placement service
//! (`dapr.proto.placement.v1.Placement`, `mecha_placement`), with daprd's
//! placement flags. Its health is `GET /healthz` on `--healthz-port` (with
//! daprd's `GET /placement/state` there under `--metadata-enabled`), and
//! Prometheus text on `--metrics-port`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use mecha_placement::{Options, PlacementService};

use crate::logging;

#[derive(clap::Args, Debug)]
pub struct PlacementArgs {
    /// The gRPC port runtimes report to.
    #[arg(long, default_value_t = 50005)]
    pub port: u16,
    /// The address every port listens on.
    #[arg(long = "listen-address", default_value = "0.0.0.0")]
    pub listen_address: IpAddr,
    /// The port of `GET /healthz`.
    #[arg(long = "healthz-port", default_value_t = 8080)]
    pub healthz_port: u16,
    /// The Prometheus port.
    #[arg(long = "metrics-port", default_value_t = 9090)]
    pub metrics_port: u16,
    /// Serve metrics.
    #[arg(long = "enable-metrics", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_metrics: bool,
    /// Virtual nodes per runtime on the ring.
    #[arg(long = "replicationFactor", default_value_t = mecha_placement::DEFAULT_REPLICATION_FACTOR)]
    pub replication_factor: usize,
    /// How long a runtime has to acknowledge each phase of a dissemination
    /// round before it is disconnected (a Go duration).
    #[arg(long = "disseminate-timeout", default_value = "8s", value_parser = go_duration)]
    pub disseminate_timeout: Duration,
    /// Serve placement's tables at `GET /placement/state` on the healthz
    /// port (unauthenticated, so off by default, as in daprd).
    #[arg(
        long = "metadata-enabled",
        env = "DAPR_PLACEMENT_METADATA_ENABLED",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub metadata_enabled: bool,
    /// debug, info, warn or error.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Logs as JSON lines.
    #[arg(long = "log-as-json")]
    pub log_as_json: bool,
}

fn go_duration(input: &str) -> Result<Duration, String> {
    mecha_core::units::parse_go_duration(input)
}

pub fn main(args: PlacementArgs) -> ExitCode {
    logging::init(&args.log_level, args.log_as_json);
    let tokio = match crate::sidecar::scheduler(None) {
        Ok(tokio) => tokio,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match tokio.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bind(address: IpAddr, port: u16, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::new(address, port))
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {address}:{port} ({what}): {err}"))
}

/// daprd's placement state page: every runtime of every namespace.
fn state_page(service: &PlacementService) -> serde_json::Value {
    let (version, hosts) = service.reported();
    let hosts: Vec<serde_json::Value> = hosts
        .into_iter()
        .map(|reported| {
            serde_json::json!({
                "name": reported.host.name,
                "namespace": reported.host.namespace,
                "appId": reported.host.id,
                "actorTypes": reported.host.entities,
                "updatedAt": reported.updated_at,
            })
        })
        .collect();
    serde_json::json!({"hostList": hosts, "tableVersion": version})
}

/// How long connections get to close once placement is asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

async fn serve(args: PlacementArgs) -> anyhow::Result<()> {
    if args.replication_factor == 0 {
        anyhow::bail!("--replicationFactor must be at least 1");
    }
    // Every port is bound before anything serves: one in use stops the
    // service at once.
    let grpc = bind(args.listen_address, args.port, "--port").await?;
    let healthz = bind(args.listen_address, args.healthz_port, "--healthz-port").await?;
    let metrics = match args.enable_metrics {
        true => Some(bind(args.listen_address, args.metrics_port, "--metrics-port").await?),
        false => None,
    };
    let service = PlacementService::new(Options {
        replication_factor: args.replication_factor,
        disseminate_timeout: args.disseminate_timeout,
    });
    let mut health = Router::new().route("/healthz", get(|| async { StatusCode::OK }));
    if args.metadata_enabled {
        let reported = service.clone();
        health = health.route(
            "/placement/state",
            get(move || {
                let page = state_page(&reported);
                async move { axum::Json(page) }
            }),
        );
    }
    tokio::spawn(async move { axum::serve(healthz, health).await });
    if let Some(metrics) = metrics {
        let counted = service.clone();
        let page = Router::new().route(
            "/metrics",
            get(move || {
                let streams = counted.streams();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        format!(
                            "# HELP mecha_placement_runtimes Runtimes connected to placement.\n\
                             # TYPE mecha_placement_runtimes gauge\n\
                             mecha_placement_runtimes {streams}\n"
                        ),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(metrics, page).await });
    }
    tracing::info!(port = args.port, "placement is up and running");
    let stopping = service.clone();
    let (asked, stop_asked) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        crate::sidecar::signalled().await;
        tracing::info!("shutting down");
        stopping.shutdown();
        let _ = asked.send(());
    };
    let server = tonic::transport::Server::builder()
        // daprd's keepalive: a runtime that stops answering is gone within
        // about 5 s, and leaves its namespace.
        .http2_keepalive_interval(Some(Duration::from_secs(2)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        .add_service(service.server())
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), stop);
    // Streams are ended at once; connections get a while to close.
    let overdue = async move {
        if stop_asked.await.is_ok() {
            tokio::time::sleep(STOP_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        () = overdue => tracing::warn!(
            "connections still open {}s after the stop; stopping anyway",
            STOP_GRACE.as_secs()
        ),
    }
    tracing::info!("stopped");
    Ok(())
}
