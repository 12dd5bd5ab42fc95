//! The Jobs API's messages (`Job`, `JobFailurePolicy`) as the API layer's
//! types, both ways. The stable methods and their `Alpha1` names share
//! them.

use std::time::Duration;

use mecha_api::jobs::{FailurePolicy, Job, JobData};
use mecha_proto::common::job_failure_policy::Policy;
use mecha_proto::common::{JobFailurePolicy, JobFailurePolicyConstant, JobFailurePolicyDrop};
use mecha_proto::runtime as pb;

fn duration_of(duration: &prost_types::Duration) -> Duration {
    // A negative interval reads as zero, which the scheduler refuses.
    Duration::new(
        u64::try_from(duration.seconds).unwrap_or(0),
        u32::try_from(duration.nanos).unwrap_or(0),
    )
}

fn policy_of(policy: JobFailurePolicy) -> Option<FailurePolicy> {
    match policy.policy? {
        Policy::Drop(_) => Some(FailurePolicy::Drop),
        Policy::Constant(constant) => Some(FailurePolicy::Constant {
            interval: constant.interval.as_ref().map(duration_of),
            max_retries: constant.max_retries,
        }),
    }
}

/// A job as the app sent it.
pub(crate) fn job_of(job: pb::Job) -> Job {
    Job {
        name: job.name,
        schedule: job.schedule,
        repeats: job.repeats,
        due_time: job.due_time,
        ttl: job.ttl,
        data: job
            .data
            .map(|any| JobData {
                type_url: any.type_url,
                value: any.value,
            })
            .unwrap_or_default(),
        failure_policy: job.failure_policy.and_then(policy_of),
    }
}

/// A job as the app reads it.
pub(crate) fn job_message(job: Job) -> pb::Job {
    let policy = job.failure_policy.map(|policy| JobFailurePolicy {
        policy: Some(match policy {
            FailurePolicy::Drop => Policy::Drop(JobFailurePolicyDrop {}),
            FailurePolicy::Constant {
                interval,
                max_retries,
            } => Policy::Constant(JobFailurePolicyConstant {
                interval: interval.map(|interval| prost_types::Duration {
                    seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
                    nanos: interval.subsec_nanos() as i32,
                }),
                max_retries,
            }),
        }),
    });
    let data =
        (!job.data.type_url.is_empty() || !job.data.value.is_empty()).then_some(prost_types::Any {
            type_url: job.data.type_url,
            value: job.data.value,
        });
    pb::Job {
        name: job.name,
        schedule: job.schedule,
        repeats: job.repeats,
        due_time: job.due_time,
        ttl: job.ttl,
        data,
        failure_policy: policy,
    }
}
