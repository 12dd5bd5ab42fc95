//! The app as the receiver of its jobs: `POST /job/{name}` with the job's
//! data, or `OnJobEvent` (falling back to `OnJobEventAlpha1` when the app
//! has only that, as daprd does), read the way daprd reads the answers: a
//! 2xx is taken, and so is a 404 or `NOT_FOUND` (daprd counts it as done,
//! without retries); anything else is a failure, for the job's failure
//! policy. Deliveries wait while the app is unhealthy.

use async_trait::async_trait;
use http::{HeaderValue, Request, StatusCode};
use mecha_invoke::body;
use mecha_proto::runtime as pb;
use mecha_proto::runtime::app_callback_alpha_client::AppCallbackAlphaClient;
use mecha_proto::runtime::app_callback_client::AppCallbackClient;
use mecha_scheduler::{AppJobs, JobData, Refused};

use crate::Channel;

/// The most of an app's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

/// The body of `POST /job/{name}`: a `google.protobuf.Value` as its JSON,
/// any other data as its bytes (trimmed), as daprd sends them.
fn http_body(data: &JobData) -> Vec<u8> {
    if let Some(json) = mecha_proto::wkt::any_json(&data.type_url, &data.value) {
        return json.to_string().into_bytes();
    }
    data.value.trim_ascii().to_vec()
}

fn job_path(name: &str) -> String {
    // The name goes in the path as it is, percent-encoding what a path
    // cannot hold.
    let mut path = String::from("/job/");
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            path.push(byte as char);
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

impl Channel {
    pub(crate) async fn deliver_job_http(&self, name: &str, data: &JobData) -> Result<(), Refused> {
        let uri = self
            .uri(&job_path(name))
            .map_err(|err| Refused(err.to_string()))?;
        let payload = http_body(data);
        let length = payload.len();
        let mut request = Request::post(uri)
            .body(body::full(payload))
            .map_err(|err| Refused(err.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(http::header::CONTENT_LENGTH, length.into());
        let response = self
            .send(request)
            .await
            .map_err(|err| Refused(err.to_string()))?;
        let status = response.status();
        let answer = body::collect(response.into_body(), MAX_ANSWER)
            .await
            .unwrap_or_default();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(Refused(format!(
            "the app answered job {name} with status {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&answer)
        )))
    }

    pub(crate) async fn deliver_job_grpc(&self, name: &str, data: &JobData) -> Result<(), Refused> {
        let message = pb::JobEventRequest {
            name: name.to_owned(),
            data: Some(prost_types::Any {
                type_url: data.type_url.clone(),
                value: data.value.clone(),
            }),
            method: format!("job/{name}"),
            content_type: data.type_url.clone(),
            http_extension: Some(mecha_proto::common::HttpExtension {
                verb: mecha_proto::common::http_extension::Verb::Post as i32,
                querystring: String::new(),
            }),
        };
        let service = self.grpc_service();
        let metadata = self.grpc_metadata(&http::HeaderMap::new());
        let call = async move {
            let mut request = tonic::Request::new(message.clone());
            *request.metadata_mut() = metadata.clone();
            match AppCallbackClient::new(service.clone())
                .on_job_event(request)
                .await
            {
                // Apps of older SDKs (the JS SDK) have only the alpha method.
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    let mut request = tonic::Request::new(message);
                    *request.metadata_mut() = metadata;
                    #[allow(deprecated)]
                    AppCallbackAlphaClient::new(service)
                        .on_job_event_alpha1(request)
                        .await
                }
                other => other,
            }
        };
        let (answer, _slot) = self
            .limit
            .run(call)
            .await
            .map_err(|err| Refused(err.to_string()))?;
        match answer {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(status) => Err(Refused(format!(
                "the app answered job {name} with {:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}

#[async_trait]
impl AppJobs for Channel {
    async fn deliver(&self, name: &str, data: &JobData) -> Result<(), Refused> {
        self.wait_healthy().await;
        self.speaks.deliver_job(self, name, data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_bodies_and_paths() {
        let (type_url, value) = mecha_proto::wkt::json_any(&serde_json::json!({"k": [1, "v"]}));
        let data = JobData { type_url, value };
        assert_eq!(http_body(&data), br#"{"k":[1,"v"]}"#.to_vec());
        let raw = JobData {
            type_url: String::new(),
            value: b"  {\"raw\":true}\n".to_vec(),
        };
        assert_eq!(http_body(&raw), br#"{"raw":true}"#.to_vec());
        assert_eq!(job_path("a b/c"), "/job/a%20b%2Fc");
        assert_eq!(job_path("my||job@x"), "/job/my%7C%7Cjob@x");
    }
}
