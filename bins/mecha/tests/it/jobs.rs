//! The Jobs API through the real binary, on the embedded scheduler store:
//! jobs fire with their data to HTTP apps (`POST /job/{name}`) and to gRPC
//! apps (`OnJobEvent`); a job survives `kill -9` of its runtime; two
//! runtimes of one app sharing a data directory fire each tick once in
//! all; a failing app is retried by the job's policy, then the tick is
//! dropped; jobs belong to their app id; bad input gets daprd's errors.

use std::time::{Duration, Instant};

use mecha_proto::common::job_failure_policy::Policy;
use mecha_proto::common::{JobFailurePolicy, JobFailurePolicyConstant};
use mecha_proto::runtime as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::apps::App;
use crate::harness::{Options, Sidecar};

async fn eventually(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn with_app(app: &App, data_dir: Option<std::path::PathBuf>, app_id: &str) -> Options {
    Options {
        app_id: app_id.into(),
        data_dir,
        args: vec!["--app-port".into(), app.port.to_string()],
        ..Options::default()
    }
}

async fn post_job(sidecar: &Sidecar, version: &str, name: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(sidecar.http(&format!("/{version}/jobs/{name}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_job(sidecar: &Sidecar, name: &str) -> (u16, Value) {
    let response = reqwest::get(sidecar.http(&format!("/v1.0/jobs/{name}")))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["errorCode"].as_str().unwrap_or_default().to_owned(),
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Fires of job `name` the app has received.
fn fires(app: &App, name: &str) -> Vec<crate::apps::Received> {
    app.state
        .events()
        .into_iter()
        .filter(|e| e.event["id"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_fire_to_an_http_app_with_their_data() {
    let app = App::http(0).await;
    let sidecar = Sidecar::start(with_app(&app, None, "jobs-http"));
    let registered = Instant::now();
    let response = post_job(
        &sidecar,
        "v1.0",
        "hello",
        json!({"dueTime": "1s", "data": {"k": "v", "n": 2}}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    // Read back as daprd answers it, with the failure policy it got.
    let (status, job) = get_job(&sidecar, "hello").await;
    assert_eq!(status, 200);
    assert_eq!(
        job,
        json!({
            "name": "hello",
            "dueTime": "1s",
            "data": {"@type": "type.googleapis.com/google.protobuf.Value", "value": {"k": "v", "n": 2}},
            "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}},
        })
    );
    eventually("the job fires", Duration::from_secs(10), async || {
        !fires(&app, "hello").is_empty()
    })
    .await;
    assert!(
        registered.elapsed() >= Duration::from_secs(1),
        "never early"
    );
    let fire = &fires(&app, "hello")[0];
    assert_eq!(fire.path, "/job/hello");
    assert_eq!(fire.event["data"], json!({"k": "v", "n": 2}));
    assert_eq!(fire.headers["content-type"], "application/json");
    // A one-shot job is gone once it fired.
    eventually("the job is deleted", Duration::from_secs(5), async || {
        get_job(&sidecar, "hello").await.0 == 500
    })
    .await;

    // The alpha routes, a repeating job, and delete.
    let response = post_job(
        &sidecar,
        "v1.0-alpha1",
        "ticks",
        json!({"schedule": "@every 200ms", "repeats": 3, "data": "tick"}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    eventually("three ticks", Duration::from_secs(10), async || {
        fires(&app, "ticks").len() == 3
    })
    .await;
    assert!(
        fires(&app, "ticks")
            .iter()
            .all(|f| f.event["data"] == json!("tick"))
    );
    let response = post_job(
        &sidecar,
        "v1.0",
        "later",
        json!({"schedule": "@every 1h", "data": 1}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    let deleted = reqwest::Client::new()
        .delete(sidecar.http("/v1.0/jobs/later"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(get_job(&sidecar, "later").await.0, 500);
    assert_eq!(fires(&app, "ticks").len(), 3, "no more than its repeats");
    // The counts, in the metadata API's extended section.
    let metadata: Value = reqwest::get(sidecar.http("/v1.0/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let extended = &metadata["extended"];
    assert_eq!(extended["scheduler.jobsCreated"], "3");
    assert_eq!(extended["scheduler.jobsFired"], "4");
    assert_eq!(extended["scheduler.jobsFailed"], "0");
    assert_eq!(extended["scheduler.firesInFlight"], "0");
}

fn grpc_job(name: &str, due: &str, data: &[u8]) -> pb::Job {
    pb::Job {
        name: name.into(),
        due_time: Some(due.into()),
        // As the Python SDK sends it: raw JSON bytes, no type.
        data: Some(prost_types::Any {
            type_url: String::new(),
            value: data.to_vec(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_fire_to_a_grpc_app_and_are_managed_over_grpc() {
    let app = App::grpc(0).await;
    let mut options = with_app(&app, None, "jobs-grpc");
    options
        .args
        .extend(["--app-protocol".into(), "grpc".into()]);
    let sidecar = Sidecar::start(options);
    let mut client = sidecar.grpc().await;
    client
        .schedule_job(pb::ScheduleJobRequest {
            job: Some(grpc_job("report", "500ms", br#"{"message":"hi"}"#)),
            overwrite: false,
        })
        .await
        .unwrap();
    eventually("the job fires", Duration::from_secs(10), async || {
        !fires(&app, "report").is_empty()
    })
    .await;
    let fire = &fires(&app, "report")[0];
    assert_eq!(fire.path, "job/report");
    assert_eq!(fire.event["data"], json!({"message": "hi"}));
    assert_eq!(fire.event["method"], "job/report");
    assert_eq!(fire.event["verb"], json!(3), "POST");

    // Get, list and delete by prefix, stable and alpha names.
    for name in ["batch-1", "batch-2", "other"] {
        #[allow(deprecated)]
        client
            .schedule_job_alpha1(pb::ScheduleJobRequest {
                job: Some(pb::Job {
                    schedule: Some("@every 1h".into()),
                    ..grpc_job(name, "1h", b"{}")
                }),
                overwrite: false,
            })
            .await
            .unwrap();
    }
    let job = client
        .get_job(pb::GetJobRequest {
            name: "batch-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.schedule.as_deref(), Some("@every 1h"));
    assert_eq!(job.data.unwrap().value, b"{}");
    let listed = |jobs: Vec<pb::Job>| jobs.into_iter().map(|j| j.name).collect::<Vec<_>>();
    let all = client
        .list_jobs(pb::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(all.jobs), ["batch-1", "batch-2", "other"]);
    client
        .delete_jobs_by_prefix(pb::DeleteJobsByPrefixRequest {
            name_prefix: Some("batch-".into()),
        })
        .await
        .unwrap();
    #[allow(deprecated)]
    let left = client
        .list_jobs_alpha1(pb::ListJobsRequestAlpha1 {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(left.jobs), ["other"]);
    client
        .delete_job(pb::DeleteJobRequest {
            name: "other".into(),
        })
        .await
        .unwrap();

    // daprd's codes.
    let code = |result: Result<tonic::Response<pb::ScheduleJobResponse>, tonic::Status>| {
        result.unwrap_err().code()
    };
    let mut request = pb::ScheduleJobRequest {
        job: None,
        overwrite: false,
    };
    assert_eq!(
        code(client.schedule_job(request.clone()).await),
        Code::InvalidArgument
    );
    request.job = Some(grpc_job(" ", "1s", b""));
    assert_eq!(
        code(client.schedule_job(request.clone()).await),
        Code::InvalidArgument
    );
    request.job = Some(pb::Job {
        due_time: None,
        ..grpc_job("nothing", "", b"")
    });
    assert_eq!(
        code(client.schedule_job(request.clone()).await),
        Code::InvalidArgument
    );
    request.job = Some(pb::Job {
        schedule: Some("* * * * *".into()),
        ..grpc_job("five-fields", "1h", b"")
    });
    assert_eq!(
        code(client.schedule_job(request.clone()).await),
        Code::Internal
    );
    request.job = Some(grpc_job("twice", "1h", b""));
    client.schedule_job(request.clone()).await.unwrap();
    assert_eq!(
        code(client.schedule_job(request.clone()).await),
        Code::AlreadyExists
    );
    request.overwrite = true;
    client.schedule_job(request.clone()).await.unwrap();
    let missing = client
        .get_job(pb::GetJobRequest {
            name: "missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_get_daprs_errors() {
    let app = App::http(0).await;
    let sidecar = Sidecar::start(with_app(&app, None, "jobs-errors"));
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("empty", json!({}), 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
        (
            "named",
            json!({"name": "x", "dueTime": "1s"}),
            400,
            "DAPR_SCHEDULER_JOB_NAME",
        ),
        (
            "bad-schedule",
            json!({"schedule": "often"}),
            500,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
        ),
        (
            "five-fields",
            json!({"schedule": "* * * * *"}),
            500,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
        ),
        (
            "bad-due",
            json!({"dueTime": "soon"}),
            500,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
        ),
        (
            "iso-repeats",
            json!({"dueTime": "R5/PT1S"}),
            500,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
        ),
        (
            "zero-repeats",
            json!({"schedule": "@every 1s", "repeats": 0}),
            500,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
        ),
        (
            "negative-repeats",
            json!({"schedule": "@every 1s", "repeats": -1}),
            400,
            "ERR_MALFORMED_REQUEST",
        ),
        ("array", json!([{}]), 400, "ERR_MALFORMED_REQUEST"),
        (
            "a%23b",
            json!({"dueTime": "1s"}),
            500,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
        ),
        (
            "%20",
            json!({"dueTime": "1s"}),
            400,
            "DAPR_SCHEDULER_JOB_NAME_EMPTY",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got_status, got_code, message) =
            error_of(post_job(&sidecar, "v1.0", name, body).await).await;
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{name}: {message}"
        );
    }
    let malformed = reqwest::Client::new()
        .post(sidecar.http("/v1.0/jobs/broken"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(malformed).await.1, "ERR_MALFORMED_REQUEST");
    // An existing name: 409 without overwrite, replaced with it.
    let job = json!({"dueTime": "1h"});
    assert_eq!(
        post_job(&sidecar, "v1.0", "once", job.clone())
            .await
            .status()
            .as_u16(),
        204
    );
    let (status, code, _) = error_of(post_job(&sidecar, "v1.0", "once", job).await).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "DAPR_SCHEDULER_SCHEDULE_JOB")
    );
    let replaced = post_job(
        &sidecar,
        "v1.0",
        "once",
        json!({"dueTime": "2h", "overwrite": true}),
    )
    .await;
    assert_eq!(replaced.status().as_u16(), 204);
    assert_eq!(get_job(&sidecar, "once").await.1["dueTime"], "2h");
    // A job not there: GET is 500 (daprd's), DELETE succeeds.
    let (status, body) = get_job(&sidecar, "missing").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (500, Some("DAPR_SCHEDULER_GET_JOB"))
    );
    let deleted = reqwest::Client::new()
        .delete(sidecar.http("/v1.0/jobs/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_app_is_retried_by_the_policy_then_dropped() {
    let app = App::http(0).await;
    let sidecar = Sidecar::start(with_app(&app, None, "jobs-retries"));
    let response = post_job(
        &sidecar,
        "v1.0",
        "will-fail",
        json!({"dueTime": "0s", "failurePolicy": {"constant": {"interval": "0.2s", "maxRetries": 2}}}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    let dropped = post_job(
        &sidecar,
        "v1.0",
        "fail-and-drop",
        json!({"dueTime": "0s", "failurePolicy": {"drop": {}}}),
    )
    .await;
    assert_eq!(dropped.status().as_u16(), 204);
    eventually("both are given up", Duration::from_secs(10), async || {
        get_job(&sidecar, "will-fail").await.0 == 500
            && get_job(&sidecar, "fail-and-drop").await.0 == 500
    })
    .await;
    assert_eq!(
        fires(&app, "will-fail").len(),
        3,
        "the first try and two retries"
    );
    assert_eq!(fires(&app, "fail-and-drop").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_kill_9_of_its_runtime() {
    let app = App::http(0).await;
    let data = tempfile::tempdir().unwrap();
    let mut sidecar = Sidecar::start(with_app(&app, Some(data.path().to_owned()), "jobs-kill"));
    let registered = Instant::now();
    let response = post_job(
        &sidecar,
        "v1.0",
        "durable",
        json!({"dueTime": "3s", "data": "kept"}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    sidecar.signal("KILL");
    sidecar.wait_exit(Duration::from_secs(5));
    assert!(fires(&app, "durable").is_empty(), "not before its due time");
    let _restarted = Sidecar::start(with_app(&app, Some(data.path().to_owned()), "jobs-kill"));
    eventually(
        "the job fires after the restart",
        Duration::from_secs(15),
        async || !fires(&app, "durable").is_empty(),
    )
    .await;
    assert!(registered.elapsed() >= Duration::from_secs(3));
    assert_eq!(fires(&app, "durable")[0].event["data"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_of_one_app_fire_each_tick_once() {
    let app = App::http(0).await;
    let data = tempfile::tempdir().unwrap();
    let first = Sidecar::start(with_app(&app, Some(data.path().to_owned()), "jobs-pair"));
    let _second = Sidecar::start(with_app(&app, Some(data.path().to_owned()), "jobs-pair"));
    let response = post_job(
        &first,
        "v1.0",
        "shared",
        json!({"schedule": "@every 100ms", "repeats": 60}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    eventually("60 ticks", Duration::from_secs(30), async || {
        get_job(&first, "shared").await.0 == 500
    })
    .await;
    assert_eq!(fires(&app, "shared").len(), 60, "each tick once in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_belong_to_their_app_id() {
    let data = tempfile::tempdir().unwrap();
    let options = |app_id: &str| Options {
        app_id: app_id.into(),
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let a = Sidecar::start(options("jobs-owner-a"));
    let b = Sidecar::start(options("jobs-owner-b"));
    let response = post_job(&a, "v1.0", "mine", json!({"schedule": "@every 1h"})).await;
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(
        get_job(&b, "mine").await.0,
        500,
        "another app does not see it"
    );
    let mut client = b.grpc().await;
    client
        .delete_jobs_by_prefix(pb::DeleteJobsByPrefixRequest { name_prefix: None })
        .await
        .unwrap();
    assert!(
        client
            .list_jobs(pb::ListJobsRequest {})
            .await
            .unwrap()
            .into_inner()
            .jobs
            .is_empty()
    );
    assert_eq!(get_job(&a, "mine").await.0, 200, "nor deletes it");
    // The job waits: a runtime without an app fires nothing.
    let policy = JobFailurePolicy {
        policy: Some(Policy::Constant(JobFailurePolicyConstant {
            interval: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            max_retries: None,
        })),
    };
    let mut client = a.grpc().await;
    client
        .schedule_job(pb::ScheduleJobRequest {
            job: Some(pb::Job {
                failure_policy: Some(policy),
                ..grpc_job("policy", "1h", b"")
            }),
            overwrite: false,
        })
        .await
        .unwrap();
    let job = client
        .get_job(pb::GetJobRequest {
            name: "policy".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.failure_policy, Some(policy));
}
