//! The Jobs API (stable `v1.0` since Dapr 1.18, `v1.0-alpha1` kept):
//! schedule, get and delete a job over both transports, list and delete by
//! prefix over gRPC, with daprd's checks in daprd's order and its codes.
//! Jobs belong to the runtime's app id and namespace: an app never sees or
//! deletes another's. A job is answered as scheduled once it is durable.

use mecha_core::{ApiError, GrpcCode};
pub use mecha_scheduler::{FailurePolicy, Job, JobData};
use mecha_scheduler::{Owner, Scheduler, SchedulerBlock, SchedulerError};

use crate::Api;

/// Which call failed, for its error code.
#[derive(Clone, Copy)]
enum Call {
    Schedule,
    Get,
    List,
    Delete,
}

impl Call {
    fn code(self) -> &'static str {
        match self {
            Call::Schedule => "DAPR_SCHEDULER_SCHEDULE_JOB",
            Call::Get => "DAPR_SCHEDULER_GET_JOB",
            Call::List => "DAPR_SCHEDULER_LIST_JOBS",
            Call::Delete => "DAPR_SCHEDULER_DELETE_JOB",
        }
    }

    fn failure(self) -> &'static str {
        match self {
            Call::Schedule => "failed to schedule job due to: ",
            Call::Get => "failed to get job due to: ",
            Call::List => "failed to list jobs due to: ",
            Call::Delete => "failed to delete job due to: ",
        }
    }
}

impl Api {
    /// daprd's ErrorInfo metadata on every scheduler error.
    fn job_error(
        &self,
        code: &'static str,
        status: u16,
        grpc: GrpcCode,
        message: impl Into<String>,
    ) -> ApiError {
        let info = &self.runtime().info;
        ApiError::new(code, status, grpc, message)
            .with_info_metadata("appID", info.app_id.clone())
            .with_info_metadata("namespace", self.job_owner().namespace)
    }

    /// A failure of the scheduler in `call` (500 `INTERNAL`, as daprd
    /// answers every error its scheduler gives but an existing name).
    fn scheduler_failure(&self, call: Call, cause: impl std::fmt::Display) -> ApiError {
        self.job_error(
            call.code(),
            500,
            GrpcCode::Internal,
            format!("{}{cause}", call.failure()),
        )
    }

    fn job_owner(&self) -> Owner {
        let info = &self.runtime().info;
        Owner::new(info.namespace.as_deref(), &info.app_id)
    }

    fn scheduler(&self, call: Call) -> Result<Scheduler, ApiError> {
        let components = self.runtime().components();
        components
            .all::<SchedulerBlock>()
            .next()
            .cloned()
            .ok_or_else(|| self.scheduler_failure(call, "no scheduler store is configured"))
    }

    fn job_name<'a>(&self, name: &'a str) -> Result<&'a str, ApiError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(self.job_error(
                "DAPR_SCHEDULER_JOB_NAME_EMPTY",
                400,
                GrpcCode::InvalidArgument,
                "Name is empty",
            ));
        }
        Ok(name)
    }

    /// A `ScheduleJob` without a job.
    pub fn empty_job(&self) -> ApiError {
        self.job_error(
            "DAPR_SCHEDULER_EMPTY",
            400,
            GrpcCode::InvalidArgument,
            "Job is empty",
        )
    }

    /// Schedules `job` (daprd's `ScheduleJob`); `overwrite` replaces a job
    /// of the same name.
    pub async fn schedule_job(&self, mut job: Job, overwrite: bool) -> Result<(), ApiError> {
        job.name = self.job_name(&job.name)?.to_owned();
        let empty = |field: &Option<String>| field.as_deref().is_none_or(str::is_empty);
        if empty(&job.schedule) && empty(&job.due_time) {
            return Err(self.job_error(
                "DAPR_SCHEDULER_SCHEDULE_EMPTY",
                400,
                GrpcCode::InvalidArgument,
                "Schedule is empty",
            ));
        }
        let scheduler = self.scheduler(Call::Schedule)?;
        let name = job.name.clone();
        match scheduler.schedule(&self.job_owner(), job, overwrite).await {
            Ok(()) => Ok(()),
            Err(SchedulerError::Invalid(reason)) => {
                Err(self
                    .scheduler_failure(Call::Schedule, format!("job failed validation: {reason}")))
            }
            // daprd passes its scheduler's code through: 409 on HTTP.
            Err(SchedulerError::AlreadyExists(_)) => Err(self.job_error(
                Call::Schedule.code(),
                409,
                GrpcCode::AlreadyExists,
                format!(
                    "{}job already exists: '{name}' (set overwrite to replace it)",
                    Call::Schedule.failure()
                ),
            )),
            Err(err) => Err(self.scheduler_failure(Call::Schedule, err)),
        }
    }

    /// The job `name` as it was scheduled (with the failure policy it got).
    pub async fn get_job(&self, name: &str) -> Result<Job, ApiError> {
        let name = self.job_name(name)?;
        let scheduler = self.scheduler(Call::Get)?;
        match scheduler.get(&self.job_owner(), name).await {
            Ok(Some(job)) => Ok(job),
            Ok(None) => Err(self.scheduler_failure(Call::Get, format!("job not found: {name}"))),
            Err(err) => Err(self.scheduler_failure(Call::Get, err)),
        }
    }

    /// Deletes the job `name`; deleting a job that does not exist succeeds,
    /// as in daprd.
    pub async fn delete_job(&self, name: &str) -> Result<(), ApiError> {
        let name = self.job_name(name)?;
        let scheduler = self.scheduler(Call::Delete)?;
        scheduler
            .delete(&self.job_owner(), name)
            .await
            .map(drop)
            .map_err(|err| self.scheduler_failure(Call::Delete, err))
    }

    /// Every job of this app (gRPC only, as in daprd).
    pub async fn list_jobs(&self) -> Result<Vec<Job>, ApiError> {
        let scheduler = self.scheduler(Call::List)?;
        scheduler
            .list(&self.job_owner())
            .await
            .map_err(|err| self.scheduler_failure(Call::List, err))
    }

    /// Deletes this app's jobs whose names start with `prefix` (all of them
    /// for an empty prefix; gRPC only, as in daprd).
    pub async fn delete_jobs_by_prefix(&self, prefix: &str) -> Result<(), ApiError> {
        let scheduler = self.scheduler(Call::Delete)?;
        scheduler
            .delete_prefix(&self.job_owner(), prefix)
            .await
            .map(drop)
            .map_err(|err| self.scheduler_failure(Call::Delete, err))
    }
}
