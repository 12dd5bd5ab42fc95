//! The listeners as the first service of the runtime: the API ports (HTTP
//! and gRPC on each listen address), the runtime-to-runtime port and the
//! metrics port. They are bound when made, so a port in use stops the
//! runtime before anything starts; they serve once the components are
//! built, each within the limits of `connections`, and drain letting
//! requests in flight finish within the grace period.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use mecha_api::Api;
use mecha_core::Service;
use mecha_nameresolution::NameResolver;
use mecha_runtime::Runtime;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connections::{self, Limits, RequestBody};
use crate::flags::SidecarArgs;
use crate::metrics;

type Server = BoxFuture<'static, ()>;

pub struct Listeners {
    runtime: Arc<Runtime>,
    /// Bound, not serving yet.
    bound: Mutex<Vec<Server>>,
    serving: tokio::sync::Mutex<JoinSet<()>>,
    app_id: String,
    http_port: u16,
    grpc_port: u16,
    internal_port: u16,
    internal_ip: IpAddr,
    /// Stops the runtime-to-runtime port: only when the listeners drain,
    /// after the services started later (the actor runtime hands its
    /// actors over through it while the runtime stops).
    internal_stop: Arc<tokio::sync::Notify>,
}

impl Listeners {
    /// Binds every port. The runtime-to-runtime port is an OS-chosen one
    /// unless given; until callers are authenticated (mTLS), it is
    /// reachable from this host only when every peer is on this host.
    /// The API ports stop taking requests once `api_stop` is cancelled.
    pub async fn bind(
        args: &SidecarArgs,
        api: &Api,
        resolver: Option<&dyn NameResolver>,
        api_stop: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let runtime = api.runtime().clone();
        let mut bound: Vec<Server> = Vec::new();
        let http = mecha_api_http::router(api.clone());
        let grpc = mecha_api_grpc::service(api.clone());
        for ip in listen_ips(args)? {
            let listener = bind(ip, args.dapr_http_port, "HTTP API").await?;
            bound.push(serve(
                listener,
                http.clone(),
                axum::body::Body::new,
                Limits::HTTP,
                api_stop.clone().cancelled_owned(),
            ));
            let listener = bind(ip, args.dapr_grpc_port, "gRPC API").await?;
            bound.push(serve(
                listener,
                grpc.clone(),
                tonic::body::Body::new,
                Limits::GRPC,
                api_stop.clone().cancelled_owned(),
            ));
        }
        let internal_ip: IpAddr = match &args.dapr_internal_grpc_listen_address {
            Some(address) => address
                .parse()
                .context("--dapr-internal-grpc-listen-address is not an IP address")?,
            None if resolver.is_none_or(|r| r.host_local()) => IpAddr::from([127, 0, 0, 1]),
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let internal = bind(
            internal_ip,
            args.dapr_internal_grpc_port.unwrap_or(0),
            "internal gRPC",
        )
        .await?;
        let internal_port = internal.local_addr()?.port();
        let internal_stop = Arc::new(tokio::sync::Notify::new());
        let stopped = internal_stop.clone();
        bound.push(serve(
            internal,
            mecha_peers::service(api.clone()),
            tonic::body::Body::new,
            Limits::PEERS,
            async move { stopped.notified().await },
        ));
        if args.enable_metrics {
            let ip: IpAddr = args
                .metrics_listen_address
                .parse()
                .context("--metrics-listen-address is not an IP address")?;
            let listener = bind(ip, args.metrics_port, "metrics").await?;
            bound.push(serve_http(
                listener,
                metrics::router(runtime.clone()),
                &runtime,
            ));
        }
        Ok(Self {
            runtime,
            bound: Mutex::new(bound),
            serving: tokio::sync::Mutex::new(JoinSet::new()),
            app_id: args.app_id.clone(),
            http_port: args.dapr_http_port,
            grpc_port: args.dapr_grpc_port,
            internal_port,
            internal_ip,
            internal_stop,
        })
    }

    /// The runtime-to-runtime port, as bound.
    pub fn internal_port(&self) -> u16 {
        self.internal_port
    }

    /// The address the runtime-to-runtime port is bound on.
    pub fn internal_ip(&self) -> IpAddr {
        self.internal_ip
    }
}

#[async_trait]
impl Service for Listeners {
    fn name(&self) -> &'static str {
        "listeners"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let bound = std::mem::take(&mut *self.bound.lock().expect("lock"));
        let mut serving = self.serving.lock().await;
        // Ready, and said, before the first request is served (health
        // answers from it; callers read the ports from the log).
        self.runtime.set_api_ready();
        tracing::info!(
            app_id = %self.app_id,
            http_port = self.http_port,
            grpc_port = self.grpc_port,
            internal_grpc_port = self.internal_port,
            internal_grpc_address = %self.internal_ip,
            "API listening"
        );
        for server in bound {
            serving.spawn(server);
        }
        Ok(())
    }

    /// Waits for the servers (told to stop by the runtime's shutdown) to
    /// finish their in-flight requests, up to `grace`.
    async fn drain(&self, grace: Duration) {
        self.internal_stop.notify_one();
        let mut serving = self.serving.lock().await;
        let all = async { while serving.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                ?grace,
                "in-flight requests did not finish within the grace period"
            );
        }
    }
}

/// Serves an HTTP port (the metrics; HTTP/1.1 and h2c) until shutdown is
/// requested.
fn serve_http<S>(listener: TcpListener, service: S, runtime: &Arc<Runtime>) -> Server
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    serve(
        listener,
        service,
        axum::body::Body::new,
        Limits::HTTP,
        shutdown_requested(runtime),
    )
}

/// Resolves once the runtime is asked to stop: the API ports stop taking
/// requests then.
fn shutdown_requested(runtime: &Arc<Runtime>) -> impl Future<Output = ()> + Send + 'static {
    let runtime = runtime.clone();
    async move { runtime.shutdown_requested().await }
}

/// Serves `service`, whose requests carry bodies of type `In` (made from
/// the port's own by `into`), within `limits`, until `shutdown`.
fn serve<S, In, Out>(
    listener: TcpListener,
    service: S,
    into: fn(RequestBody) -> In,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Server
where
    S: tower::Service<http::Request<In>, Response = http::Response<Out>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    In: 'static,
    Out: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    Out::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = tower::ServiceBuilder::new()
        .map_request(move |request: http::Request<RequestBody>| request.map(into))
        .service(service);
    Box::pin(connections::serve(listener, service, limits, shutdown))
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
