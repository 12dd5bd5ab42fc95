//! `DAPR_API_TOKEN`: every API call must carry `dapr-api-token`, except the
//! health checks.

use mecha_proto::runtime as pb;
use tonic::Code;

use crate::harness::{Options, Sidecar};

fn with_token() -> Sidecar {
    Sidecar::start(Options {
        env: vec![("DAPR_API_TOKEN".into(), "s3cret".into())],
        ..Options::default()
    })
}

#[tokio::test]
async fn http_calls_need_the_token() {
    let sidecar = with_token();
    let client = reqwest::Client::new();
    let save = |token: Option<&str>| {
        let mut request = client
            .post(sidecar.http("/v1.0/state/statestore"))
            .body(r#"[{"key":"k","value":1}]"#);
        if let Some(token) = token {
            request = request.header("dapr-api-token", token);
        }
        request.send()
    };
    let response = save(None).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.text().await.unwrap(), "invalid api token\n");
    assert_eq!(save(Some("wrong")).await.unwrap().status().as_u16(), 401);
    assert_eq!(save(Some("s3cret")).await.unwrap().status().as_u16(), 204);
    // Unknown routes are refused too, before anything else.
    let response = client.get(sidecar.http("/anything")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // So is another spelling of a health route, which would be an
    // invocation of the app named by dapr-app-id.
    for path in [
        "/v1.0/healthz/",
        "//v1.0/healthz",
        "/v1.0/healthz/outbound/",
    ] {
        let response = client
            .get(sidecar.http(path))
            .header("dapr-app-id", "e2e-app")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    // The health checks stay open, to GET only, as in daprd.
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let response = client.get(sidecar.http(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204, "{path}");
        let response = client.post(sidecar.http(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "POST {path}");
    }
}

#[tokio::test]
async fn grpc_calls_need_the_token() {
    let sidecar = with_token();
    let mut client = sidecar.grpc().await;
    let err = client
        .get_metadata(pb::GetMetadataRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // daprd's answer: the HTTP status text, with the detail in ErrorInfo.
    assert_eq!(err.message(), "Unauthorized");
    let info = tonic_types::StatusExt::get_details_error_info(&err).expect("ErrorInfo");
    assert_eq!(info.reason, "Unauthorized");
    assert_eq!(info.metadata["http.code"], "401");
    assert_eq!(
        info.metadata["http.error_message"],
        "missing api token in request metadata"
    );
    let mut request = tonic::Request::new(pb::GetMetadataRequest {});
    request
        .metadata_mut()
        .insert("dapr-api-token", "wrong".parse().unwrap());
    assert_eq!(
        client.get_metadata(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut request = tonic::Request::new(pb::GetMetadataRequest {});
    request
        .metadata_mut()
        .insert("dapr-api-token", "s3cret".parse().unwrap());
    assert_eq!(
        client.get_metadata(request).await.unwrap().into_inner().id,
        "e2e-app"
    );

    // gRPC health is open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(sidecar.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// The runtime-to-runtime port named in the startup log.
pub(crate) fn internal_port(sidecar: &Sidecar) -> u16 {
    let logs = sidecar.logs();
    let (_, rest) = logs
        .split_once("internal_grpc_port=")
        .unwrap_or_else(|| panic!("no internal_grpc_port in the log:\n{logs}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port number")
}

/// Whether a TCP connection to `ip:port` is accepted.
fn accepts(ip: &str, port: u16) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
}

/// With the embedded registry every peer is on this host, so the
/// runtime-to-runtime port is reachable on loopback only: another address
/// of this host (127.0.0.2, which a socket bound to every interface would
/// answer) is refused. With mDNS, peers may be on other hosts, and it
/// listens on every interface, as daprd's does.
#[test]
fn the_internal_port_is_closed_to_other_addresses_when_peers_are_local() {
    let local = Sidecar::start(Options::default());
    let port = internal_port(&local);
    assert!(accepts("127.0.0.1", port), "loopback reaches it");
    assert!(
        !accepts("127.0.0.2", port),
        "another address of this host must not reach it"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = crate::harness::mdns_configuration(dir.path());
    let lan = Sidecar::start(Options {
        app_id: "lan-listener".into(),
        args: vec!["--config".into(), config.to_string_lossy().into_owned()],
        ..Options::default()
    });
    let port = internal_port(&lan);
    assert!(
        accepts("127.0.0.2", port),
        "with mDNS it listens on every interface"
    );
}

/// `--enable-mtls` is refused until mTLS exists, rather than ignored.
#[test]
fn enable_mtls_is_refused() {
    for flag in ["--enable-mtls", "--enable-mtls=true"] {
        let mut sidecar = Sidecar::start(Options {
            args: vec![flag.into()],
            wait_healthy: false,
            ..Options::default()
        });
        let status = sidecar.wait_exit(std::time::Duration::from_secs(10));
        assert!(!status.success(), "{flag} must stop the runtime");
        let logs = sidecar.logs();
        assert!(
            logs.contains("--enable-mtls") && logs.contains("not supported"),
            "{logs}"
        );
    }
    let sidecar = Sidecar::start(Options {
        args: vec!["--enable-mtls=false".into()],
        ..Options::default()
    });
    assert!(sidecar.logs().contains("API listening"));
}

/// The internal port forwards a gRPC call to the local app only when it
/// names its app, as daprd's proxy: without `dapr-app-id` it is UNKNOWN.
#[tokio::test]
async fn the_internal_port_proxies_only_calls_naming_their_app() {
    let sidecar = Sidecar::start(Options::default());
    let port = internal_port(&sidecar);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut echo = mecha_proto::testing::v1::echo_client::EchoClient::new(channel);
    let err = echo
        .unary(tonic::Request::new(
            mecha_proto::testing::v1::EchoRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(
        err.message(),
        "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found"
    );
}
