//! The gRPC surface: Dapr's exact service and method names, reflection, and
//! errors whose details the SDKs can read.

use mecha_proto::runtime as pb;
use tonic::Code;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_types::StatusExt;

use crate::harness::{Options, Sidecar};

#[tokio::test]
async fn reflection_lists_the_dapr_service() {
    let sidecar = Sidecar::start(Options::default());
    let mut client = ServerReflectionClient::new(sidecar.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"dapr.proto.runtime.v1.Dapr".to_owned()),
        "{names:?}"
    );

    // The older reflection version, which grpcurl falls back to.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let mut alpha = Alpha::new(sidecar.channel().await);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut stream = alpha
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(AlphaResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected v1alpha reflection answer");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "dapr.proto.runtime.v1.Dapr"),
        "{:?}",
        list.service
    );
}

/// The status details are encoded so that the Python SDK's
/// `rpc_status.from_call` accepts them: the embedded status repeats the
/// call's code and message, and carries ErrorInfo, ResourceInfo and
/// BadRequest for an illegal key.
#[tokio::test]
async fn rich_error_details() {
    let sidecar = Sidecar::start(Options::default());
    let mut grpc = sidecar.grpc().await;
    let item = mecha_proto::common::StateItem {
        key: "a||b".into(),
        value: "1".into(),
        ..Default::default()
    };
    let err = grpc
        .save_state(pb::SaveStateRequest {
            store_name: "statestore".into(),
            states: vec![item],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("DAPR_STATE_ILLEGAL_KEY", "dapr.io")
    );
    let resource = details.resource_info().expect("ResourceInfo");
    assert_eq!(
        (
            resource.resource_type.as_str(),
            resource.resource_name.as_str()
        ),
        ("state", "statestore")
    );
    let violations = &details.bad_request().expect("BadRequest").field_violations;
    assert_eq!(violations[0].field, "a||b");

    use prost::Message;
    let status = mecha_proto::google::rpc::Status::decode(err.details()).unwrap();
    assert_eq!(status.code, Code::InvalidArgument as i32);
    assert_eq!(status.message, err.message());
}
