//! The loopback floor: a bare HTTP server and a bare gRPC `Dapr` server,
//! in a process of their own (so they pay the same process switches as the
//! sidecar), answering the same 1 KB get and save with no work at all. The
//! gap between them and the runtime is what the runtime itself adds; the gap
//! between them and the in-process call is what any out-of-process hop
//! costs on this machine.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mecha_proto::runtime as pb;
use mecha_proto::runtime::dapr_server::{Dapr, DaprServer};
use mecha_proto::testing::v1::echo_server::{Echo, EchoServer};
use mecha_proto::testing::v1::{EchoReply, EchoRequest};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Serves the floor on the given ports until killed (`mecha-bench floor`),
/// on the same kind of runtime as the sidecar's.
pub fn serve(http_port: u16, grpc_port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        start(crate::load::value_1k(), http_port, grpc_port).await?;
        std::future::pending::<anyhow::Result<()>>().await
    })
}

/// Runs the floor in a child process; returns it with its ports (HTTP, gRPC).
pub fn spawn() -> anyhow::Result<(std::process::Child, u16, u16)> {
    let (http_port, grpc_port) = (crate::process::free_port(), crate::process::free_port());
    let child = crate::process::command(&std::env::current_exe()?)
        .args([
            "floor",
            "--http-port",
            &http_port.to_string(),
            "--grpc-port",
            &grpc_port.to_string(),
        ])
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", grpc_port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err()
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the floor servers did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok((child, http_port, grpc_port))
}

async fn start(value: Bytes, http_port: u16, grpc_port: u16) -> anyhow::Result<()> {
    let http = TcpListener::bind(("127.0.0.1", http_port)).await?;
    let body = value.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = http.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let is_get = request.method() == hyper::Method::GET;
                        let echo = request.uri().path().ends_with("/echo");
                        let received = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let response = if echo {
                            // The app of the invocation benchmark: echoes.
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(received))
                        } else if is_get {
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .header("etag", "1")
                                .body(Full::new(body))
                        } else {
                            hyper::Response::builder()
                                .status(204)
                                .body(Full::new(Bytes::new()))
                        };
                        Ok::<_, Infallible>(response.expect("valid response"))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let grpc = TcpListener::bind(("127.0.0.1", grpc_port)).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DaprServer::new(Floor(value)))
            .add_service(EchoServer::new(EchoApp))
            .serve_with_incoming(incoming),
    );
    Ok(())
}

/// The gRPC app of the invocation benchmark: echoes the payload.
struct EchoApp;

#[tonic::async_trait]
impl Echo for EchoApp {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            payload: request.into_inner().payload,
            ..Default::default()
        }))
    }
}

struct Floor(Bytes);

#[tonic::async_trait]
impl Dapr for Floor {
    async fn get_state(
        &self,
        _: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        Ok(Response::new(pb::GetStateResponse {
            data: self.0.clone(),
            etag: "1".into(),
            ..Default::default()
        }))
    }

    async fn save_state(&self, _: Request<pb::SaveStateRequest>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}
