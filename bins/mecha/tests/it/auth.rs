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
    assert_eq!(response.text().await.unwrap(), "invalid api token");
    assert_eq!(save(Some("wrong")).await.unwrap().status().as_u16(), 401);
    assert_eq!(save(Some("s3cret")).await.unwrap().status().as_u16(), 204);
    // Unknown routes are refused too, before anything else.
    let response = client.get(sidecar.http("/anything")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // The health checks stay open.
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let response = client.get(sidecar.http(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204, "{path}");
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
