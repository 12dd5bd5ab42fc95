//! The `Dapr` service: each method maps its message onto the API layer.

use mecha_api::Api;
use mecha_api::actors::{ActorStateOperation, Reminder, ReminderSpec, TimerSpec};
use mecha_api::invoke::{ServiceCall, ServiceFailure};
use mecha_api::pubsub::{BulkEntry, BulkPublish, Publish};
use mecha_api::state::DeleteRequest;
use mecha_api::state::TransactionOperation;
use mecha_proto::runtime::{self as pb, dapr_server::Dapr};
use tonic::codegen::BoxStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, status_from};

/// The `dapr.proto.runtime.v1.Dapr` service.
pub struct DaprService {
    api: Api,
}

impl DaprService {
    pub fn new(api: Api) -> Self {
        Self { api }
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// A reminder as gRPC carries it: its data as the bytes it holds.
fn actor_reminder(reminder: Reminder) -> pb::ActorReminder {
    let some = |text: String| Some(text).filter(|t| !t.is_empty());
    pb::ActorReminder {
        actor_type: reminder.actor.actor_type,
        actor_id: reminder.actor.actor_id,
        due_time: some(reminder.due_time),
        period: some(reminder.period),
        data: reminder.data.map(|data| prost_types::Any {
            type_url: String::new(),
            value: data.to_vec(),
        }),
        ttl: some(reminder.ttl),
    }
}

fn verb_of(number: i32) -> http::Method {
    match number {
        1 => http::Method::GET,
        2 => http::Method::HEAD,
        4 => http::Method::PUT,
        5 => http::Method::DELETE,
        6 => http::Method::CONNECT,
        7 => http::Method::OPTIONS,
        8 => http::Method::TRACE,
        9 => http::Method::PATCH,
        // POST, and NONE (no HTTP extension): daprd refuses NONE for HTTP
        // apps; Mecha takes it as POST.
        _ => http::Method::POST,
    }
}

#[tonic::async_trait]
impl Dapr for DaprService {
    async fn get_state(
        &self,
        request: Request<pb::GetStateRequest>,
    ) -> Answer<pb::GetStateResponse> {
        let req = request.into_inner();
        let found = self
            .api
            .get_state(
                &req.store_name,
                &req.key,
                convert::consistency(req.consistency),
                convert::metadata(req.metadata),
            )
            .await
            .map_err(status_from)?;
        Ok(Response::new(match found {
            Some(item) => pb::GetStateResponse {
                data: item.data,
                etag: item.etag.unwrap_or_default(),
                metadata: item.metadata.into_iter().collect(),
            },
            None => pb::GetStateResponse::default(),
        }))
    }

    async fn query_state_alpha1(
        &self,
        request: Request<pb::QueryStateRequest>,
    ) -> Answer<pb::QueryStateResponse> {
        let req = request.into_inner();
        let response = self
            .api
            .query_state(&req.store_name, &req.query, convert::metadata(req.metadata))
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::QueryStateResponse {
            results: response
                .results
                .into_iter()
                .map(|item| pb::QueryStateItem {
                    key: item.key,
                    data: item.data,
                    etag: item.etag.unwrap_or_default(),
                    error: String::new(),
                })
                .collect(),
            token: response.token.unwrap_or_default(),
            metadata: response.metadata.into_iter().collect(),
        }))
    }

    async fn invoke_binding(
        &self,
        request: Request<pb::InvokeBindingRequest>,
    ) -> Answer<pb::InvokeBindingResponse> {
        let (metadata, _, req) = request.into_parts();
        let invoke = mecha_api::bindings::InvokeRequest {
            operation: req.operation,
            data: req.data,
            metadata: convert::metadata(req.metadata),
        };
        // As daprd, what the binding answered with goes back as
        // `metadata.<key>` headers too, failure or not.
        let answer = match self
            .api
            .invoke_binding(&req.name, invoke, &metadata.into_headers())
            .await
        {
            Ok(answer) => answer.unwrap_or_default(),
            Err(failure) => {
                let mut status = status_from(failure.error);
                binding_headers(status.metadata_mut(), &failure.metadata);
                return Err(status);
            }
        };
        let mut headers = tonic::metadata::MetadataMap::new();
        binding_headers(&mut headers, &answer.metadata);
        let mut response = Response::new(pb::InvokeBindingResponse {
            data: answer.data,
            metadata: answer.metadata.into_iter().collect(),
        });
        *response.metadata_mut() = headers;
        Ok(response)
    }

    async fn get_secret(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Answer<pb::GetSecretResponse> {
        let req = request.into_inner();
        let secret = self
            .api
            .get_secret(&req.store_name, &req.key, convert::metadata(req.metadata))
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::GetSecretResponse {
            data: secret.into_iter().collect(),
        }))
    }

    async fn get_bulk_secret(
        &self,
        request: Request<pb::GetBulkSecretRequest>,
    ) -> Answer<pb::GetBulkSecretResponse> {
        let req = request.into_inner();
        let all = self
            .api
            .get_bulk_secret(&req.store_name, convert::metadata(req.metadata))
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::GetBulkSecretResponse {
            data: all
                .into_iter()
                .map(|(name, secret)| {
                    let secrets = secret.into_iter().collect();
                    (name, pb::SecretResponse { secrets })
                })
                .collect(),
        }))
    }

    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Answer<pb::GetConfigurationResponse> {
        crate::configuration::get(&self.api, request).await
    }

    async fn get_configuration_alpha1(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Answer<pb::GetConfigurationResponse> {
        crate::configuration::get(&self.api, request).await
    }

    async fn subscribe_configuration(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Answer<BoxStream<pb::SubscribeConfigurationResponse>> {
        crate::configuration::subscribe(&self.api, request).await
    }

    async fn subscribe_configuration_alpha1(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Answer<BoxStream<pb::SubscribeConfigurationResponse>> {
        crate::configuration::subscribe(&self.api, request).await
    }

    async fn unsubscribe_configuration(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Answer<pb::UnsubscribeConfigurationResponse> {
        crate::configuration::unsubscribe(&self.api, request).await
    }

    async fn unsubscribe_configuration_alpha1(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Answer<pb::UnsubscribeConfigurationResponse> {
        crate::configuration::unsubscribe(&self.api, request).await
    }

    async fn try_lock_alpha1(
        &self,
        request: Request<pb::TryLockRequest>,
    ) -> Answer<pb::TryLockResponse> {
        let req = request.into_inner();
        let success = self
            .api
            .try_lock(
                &req.store_name,
                &req.resource_id,
                &req.lock_owner,
                req.expiry_in_seconds,
            )
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::TryLockResponse { success }))
    }

    async fn unlock_alpha1(
        &self,
        request: Request<pb::UnlockRequest>,
    ) -> Answer<pb::UnlockResponse> {
        let req = request.into_inner();
        let status = self
            .api
            .unlock(&req.store_name, &req.resource_id, &req.lock_owner)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::UnlockResponse {
            status: status as i32,
        }))
    }

    async fn schedule_job(
        &self,
        request: Request<pb::ScheduleJobRequest>,
    ) -> Answer<pb::ScheduleJobResponse> {
        let req = request.into_inner();
        let job = req.job.ok_or_else(|| status_from(self.api.empty_job()))?;
        self.api
            .schedule_job(crate::jobs::job_of(job), req.overwrite)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::ScheduleJobResponse {}))
    }

    async fn schedule_job_alpha1(
        &self,
        request: Request<pb::ScheduleJobRequest>,
    ) -> Answer<pb::ScheduleJobResponse> {
        self.schedule_job(request).await
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Answer<pb::GetJobResponse> {
        let job = self
            .api
            .get_job(&request.into_inner().name)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(crate::jobs::job_message(job)),
        }))
    }

    async fn get_job_alpha1(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Answer<pb::GetJobResponse> {
        self.get_job(request).await
    }

    async fn delete_job(
        &self,
        request: Request<pb::DeleteJobRequest>,
    ) -> Answer<pb::DeleteJobResponse> {
        self.api
            .delete_job(&request.into_inner().name)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::DeleteJobResponse {}))
    }

    async fn delete_job_alpha1(
        &self,
        request: Request<pb::DeleteJobRequest>,
    ) -> Answer<pb::DeleteJobResponse> {
        self.delete_job(request).await
    }

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Answer<pb::ListJobsResponse> {
        let jobs = self.api.list_jobs().await.map_err(status_from)?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.into_iter().map(crate::jobs::job_message).collect(),
        }))
    }

    async fn list_jobs_alpha1(
        &self,
        _request: Request<pb::ListJobsRequestAlpha1>,
    ) -> Answer<pb::ListJobsResponseAlpha1> {
        let jobs = self.api.list_jobs().await.map_err(status_from)?;
        Ok(Response::new(pb::ListJobsResponseAlpha1 {
            jobs: jobs.into_iter().map(crate::jobs::job_message).collect(),
        }))
    }

    async fn delete_jobs_by_prefix(
        &self,
        request: Request<pb::DeleteJobsByPrefixRequest>,
    ) -> Answer<pb::DeleteJobsByPrefixResponse> {
        let prefix = request.into_inner().name_prefix.unwrap_or_default();
        self.api
            .delete_jobs_by_prefix(&prefix)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::DeleteJobsByPrefixResponse {}))
    }

    async fn delete_jobs_by_prefix_alpha1(
        &self,
        request: Request<pb::DeleteJobsByPrefixRequestAlpha1>,
    ) -> Answer<pb::DeleteJobsByPrefixResponseAlpha1> {
        let prefix = request.into_inner().name_prefix.unwrap_or_default();
        self.api
            .delete_jobs_by_prefix(&prefix)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::DeleteJobsByPrefixResponseAlpha1 {}))
    }

    async fn get_bulk_state(
        &self,
        request: Request<pb::GetBulkStateRequest>,
    ) -> Answer<pb::GetBulkStateResponse> {
        let req = request.into_inner();
        let items = self
            .api
            .get_bulk_state(
                &req.store_name,
                req.keys,
                i64::from(req.parallelism),
                convert::metadata(req.metadata),
            )
            .await
            .map_err(status_from)?;
        let items = items
            .into_iter()
            .map(|item| pb::BulkStateItem {
                key: item.key,
                data: item.data.unwrap_or_default(),
                etag: item.etag.unwrap_or_default(),
                error: item.error.unwrap_or_default(),
                metadata: item.metadata.into_iter().collect(),
            })
            .collect();
        Ok(Response::new(pb::GetBulkStateResponse { items }))
    }

    async fn save_state(&self, request: Request<pb::SaveStateRequest>) -> Answer<()> {
        let req = request.into_inner();
        let items = req.states.into_iter().map(convert::set_request).collect();
        self.api
            .save_state(&req.store_name, items)
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn delete_state(&self, request: Request<pb::DeleteStateRequest>) -> Answer<()> {
        let req = request.into_inner();
        let (concurrency, consistency) = convert::options(req.options);
        let delete = DeleteRequest {
            key: req.key,
            etag: req.etag.map(|etag| etag.value),
            concurrency,
            consistency,
            metadata: convert::metadata(req.metadata),
        };
        self.api
            .delete_state(&req.store_name, delete)
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn delete_bulk_state(&self, request: Request<pb::DeleteBulkStateRequest>) -> Answer<()> {
        let req = request.into_inner();
        let deletes = req
            .states
            .into_iter()
            .map(|item| DeleteRequest::from(convert::set_request(item)))
            .collect();
        self.api
            .delete_bulk_state(&req.store_name, deletes)
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn execute_state_transaction(
        &self,
        request: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Answer<()> {
        let req = request.into_inner();
        let operations = req
            .operations
            .into_iter()
            .map(|op| TransactionOperation {
                operation: op.operation_type,
                item: convert::set_request(op.request.unwrap_or_default()),
            })
            .collect();
        self.api
            .execute_state_transaction(&req.store_name, operations, convert::metadata(req.metadata))
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn invoke_actor(
        &self,
        request: Request<pb::InvokeActorRequest>,
    ) -> Answer<pb::InvokeActorResponse> {
        let req = request.into_inner();
        let mut headers = http::HeaderMap::new();
        for (name, value) in &req.metadata {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        mecha_api::invoke::headers::set(
            &mut headers,
            "content-length",
            &req.data.len().to_string(),
        );
        let call = mecha_api::invoke::InvokeRequest {
            headers,
            ..mecha_api::invoke::InvokeRequest::new(
                http::Method::PUT,
                req.method.clone(),
                mecha_api::invoke::body::full(req.data),
            )
        };
        let answer = self
            .api
            .invoke_actor(&req.actor_type, &req.actor_id, &req.method, call)
            .await
            .map_err(status_from)?;
        let data = mecha_api::invoke::body::collect(answer.body, usize::MAX)
            .await
            .map_err(|err| Status::internal(format!("reading the actor's answer: {err}")))?;
        Ok(Response::new(pb::InvokeActorResponse { data }))
    }

    async fn get_actor_state(
        &self,
        request: Request<pb::GetActorStateRequest>,
    ) -> Answer<pb::GetActorStateResponse> {
        let req = request.into_inner();
        let found = self
            .api
            .get_actor_state(&req.actor_type, &req.actor_id, &req.key)
            .await
            .map_err(status_from)?;
        Ok(Response::new(match found {
            Some(found) => pb::GetActorStateResponse {
                data: found.data,
                metadata: found.metadata.into_iter().collect(),
            },
            None => pb::GetActorStateResponse::default(),
        }))
    }

    async fn execute_actor_state_transaction(
        &self,
        request: Request<pb::ExecuteActorStateTransactionRequest>,
    ) -> Answer<()> {
        let req = request.into_inner();
        let operations = req
            .operations
            .into_iter()
            .map(|op| ActorStateOperation {
                operation: op.operation_type,
                key: op.key,
                // The bytes a gRPC app sends are stored as they are.
                value: op.value.map(|any| any.value.into()),
                metadata: op.metadata.into_iter().collect(),
            })
            .collect();
        self.api
            .actor_state_transaction(&req.actor_type, &req.actor_id, operations)
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn register_actor_timer(
        &self,
        request: Request<pb::RegisterActorTimerRequest>,
    ) -> Answer<()> {
        let req = request.into_inner();
        let spec = TimerSpec {
            due_time: req.due_time,
            period: req.period,
            ttl: req.ttl,
            callback: req.callback,
            data: Some(req.data).filter(|d| !d.is_empty()),
        };
        self.api
            .create_actor_timer(&req.actor_type, &req.actor_id, &req.name, spec)
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn unregister_actor_timer(
        &self,
        request: Request<pb::UnregisterActorTimerRequest>,
    ) -> Answer<()> {
        let req = request.into_inner();
        self.api
            .delete_actor_timer(&req.actor_type, &req.actor_id, &req.name)
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn register_actor_reminder(
        &self,
        request: Request<pb::RegisterActorReminderRequest>,
    ) -> Answer<()> {
        let req = request.into_inner();
        let spec = ReminderSpec {
            due_time: req.due_time,
            period: req.period,
            ttl: req.ttl,
            data: Some(req.data).filter(|d| !d.is_empty()),
            overwrite: req.overwrite,
        };
        self.api
            .create_actor_reminder(&req.actor_type, &req.actor_id, &req.name, spec)
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn unregister_actor_reminder(
        &self,
        request: Request<pb::UnregisterActorReminderRequest>,
    ) -> Answer<()> {
        let req = request.into_inner();
        self.api
            .delete_actor_reminder(&req.actor_type, &req.actor_id, &req.name)
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn get_actor_reminder(
        &self,
        request: Request<pb::GetActorReminderRequest>,
    ) -> Answer<pb::GetActorReminderResponse> {
        let req = request.into_inner();
        let reminder = self
            .api
            .get_actor_reminder(&req.actor_type, &req.actor_id, &req.name)
            .await
            .map_err(status_from)?;
        let wire = actor_reminder(reminder);
        Ok(Response::new(pb::GetActorReminderResponse {
            actor_type: wire.actor_type,
            actor_id: wire.actor_id,
            due_time: wire.due_time,
            period: wire.period,
            data: wire.data,
            ttl: wire.ttl,
        }))
    }

    async fn list_actor_reminders(
        &self,
        request: Request<pb::ListActorRemindersRequest>,
    ) -> Answer<pb::ListActorRemindersResponse> {
        let req = request.into_inner();
        let reminders = self
            .api
            .list_actor_reminders(&req.actor_type, req.actor_id.as_deref())
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::ListActorRemindersResponse {
            reminders: reminders
                .into_iter()
                .map(|reminder| pb::NamedActorReminder {
                    name: reminder.name.clone(),
                    reminder: Some(actor_reminder(reminder)),
                })
                .collect(),
        }))
    }

    async fn unregister_actor_reminders_by_type(
        &self,
        request: Request<pb::UnregisterActorRemindersByTypeRequest>,
    ) -> Answer<pb::UnregisterActorRemindersByTypeResponse> {
        let req = request.into_inner();
        self.api
            .delete_actor_reminders(&req.actor_type, req.actor_id.as_deref())
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::UnregisterActorRemindersByTypeResponse {}))
    }

    async fn get_metadata(
        &self,
        _request: Request<pb::GetMetadataRequest>,
    ) -> Answer<pb::GetMetadataResponse> {
        let meta = self.api.metadata();
        let app = meta.app_connection;
        let health = app.health.map(|health| pb::AppConnectionHealthProperties {
            health_check_path: health.path,
            health_probe_interval: mecha_core::units::format_go_duration(health.interval),
            health_probe_timeout: mecha_core::units::format_go_duration(health.timeout),
            health_threshold: i32::try_from(health.threshold).unwrap_or(i32::MAX),
        });
        let active: Vec<pb::ActiveActorsCount> = meta
            .active_actors
            .iter()
            .map(|(actor_type, count)| pb::ActiveActorsCount {
                r#type: actor_type.clone(),
                count: i32::try_from(*count).unwrap_or(i32::MAX),
            })
            .collect();
        let status = match meta.actor_runtime_status {
            "RUNNING" => pb::actor_runtime::ActorRuntimeStatus::Running,
            "INITIALIZING" => pb::actor_runtime::ActorRuntimeStatus::Initializing,
            _ => pb::actor_runtime::ActorRuntimeStatus::Disabled,
        };
        Ok(Response::new(pb::GetMetadataResponse {
            id: meta.id,
            registered_components: meta
                .components
                .into_iter()
                .map(|c| pb::RegisteredComponents {
                    name: c.name,
                    r#type: c.type_name,
                    version: c.version,
                    capabilities: c.capabilities,
                })
                .collect(),
            extended_metadata: meta.extended.into_iter().collect(),
            subscriptions: meta
                .subscriptions
                .iter()
                .map(|s| pb::PubsubSubscription {
                    pubsub_name: s.pubsub.clone(),
                    topic: s.topic.clone(),
                    metadata: s.metadata.clone().into_iter().collect(),
                    rules: Some(pb::PubsubSubscriptionRules {
                        rules: s
                            .rules
                            .iter()
                            .map(|r| pb::PubsubSubscriptionRule {
                                r#match: r.matches.clone(),
                                path: r.path.clone(),
                            })
                            .collect(),
                    }),
                    dead_letter_topic: s.dead_letter_topic.clone().unwrap_or_default(),
                    r#type: s.kind.grpc_value(),
                })
                .collect(),
            app_connection_properties: Some(pb::AppConnectionProperties {
                port: app.port.map(i32::from).unwrap_or(0),
                protocol: app.protocol,
                channel_address: app.channel_address,
                max_concurrency: i32::try_from(app.max_concurrency).unwrap_or(i32::MAX),
                health,
            }),
            runtime_version: meta.runtime_version,
            enabled_features: meta.enabled_features,
            actor_runtime: Some(pb::ActorRuntime {
                runtime_status: status as i32,
                active_actors: active,
                host_ready: meta.host_ready,
                placement: meta.placement,
            }),
            ..Default::default()
        }))
    }

    async fn set_metadata(&self, request: Request<pb::SetMetadataRequest>) -> Answer<()> {
        let req = request.into_inner();
        self.api
            .set_metadata(&req.key, req.value)
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn invoke_service(
        &self,
        request: Request<pb::InvokeServiceRequest>,
    ) -> Answer<mecha_proto::common::InvokeResponse> {
        let (metadata, _, req) = request.into_parts();
        let message = req
            .message
            .ok_or_else(|| Status::invalid_argument("InvokeServiceRequest.message is required"))?;
        let extension = message.http_extension.unwrap_or_default();
        let data = message.data.unwrap_or_default();
        let call = ServiceCall {
            target: req.id,
            method: message.method,
            verb: verb_of(extension.verb),
            query: extension.querystring,
            metadata: metadata.into_headers(),
            data: data.value.into(),
            content_type: message.content_type,
            type_url: data.type_url,
        };
        match self.api.invoke_service(call).await {
            Ok(answer) => {
                let mut response = Response::new(mecha_proto::common::InvokeResponse {
                    data: Some(prost_types::Any {
                        type_url: String::new(),
                        value: answer.data.to_vec(),
                    }),
                    content_type: answer.content_type,
                });
                *response.metadata_mut() = MetadataMap::from_headers(answer.metadata);
                Ok(response)
            }
            Err(ServiceFailure::Error { error, metadata }) => {
                let mut status = status_from(error);
                *status.metadata_mut() = MetadataMap::from_headers(metadata);
                Err(status)
            }
            // A gRPC app's error goes to the caller whole, as daprd passes
            // it: code, message, details, and the app's metadata.
            Err(ServiceFailure::App { status, metadata }) => {
                Err(Status::with_details_and_metadata(
                    tonic::Code::from_i32(status.code),
                    status.message,
                    status.details,
                    MetadataMap::from_headers(metadata),
                ))
            }
        }
    }

    async fn publish_event(&self, request: Request<pb::PublishEventRequest>) -> Answer<()> {
        let (metadata, _, req) = request.into_parts();
        self.api
            .publish(Publish {
                pubsub: req.pubsub_name,
                topic: req.topic,
                data: req.data,
                content_type: Some(req.data_content_type).filter(|c| !c.is_empty()),
                metadata: convert::metadata(req.metadata),
                trace: metadata.into_headers(),
            })
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }

    async fn bulk_publish_event(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Answer<pb::BulkPublishResponse> {
        let (metadata, _, req) = request.into_parts();
        let entries = req
            .entries
            .into_iter()
            .map(|entry| BulkEntry {
                entry_id: entry.entry_id,
                event: entry.event,
                content_type: entry.content_type,
                metadata: convert::metadata(entry.metadata),
            })
            .collect();
        // As daprd, a failed entry fails the call (`INTERNAL`).
        self.api
            .bulk_publish(BulkPublish {
                pubsub: req.pubsub_name,
                topic: req.topic,
                entries,
                metadata: convert::metadata(req.metadata),
                trace: metadata.into_headers(),
            })
            .await
            .map_err(|failure| status_from(failure.error))?;
        Ok(Response::new(pb::BulkPublishResponse::default()))
    }

    async fn bulk_publish_event_alpha1(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Answer<pb::BulkPublishResponse> {
        self.bulk_publish_event(request).await
    }

    async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Answer<BoxStream<pb::SubscribeTopicEventsResponseAlpha1>> {
        crate::stream::subscribe(&self.api, request).await
    }

    async fn subscribe_actor_events_alpha1(
        &self,
        request: Request<Streaming<pb::SubscribeActorEventsRequestAlpha1>>,
    ) -> Answer<BoxStream<pb::SubscribeActorEventsResponseAlpha1>> {
        crate::actor_stream::subscribe(&self.api, request).await
    }

    async fn shutdown(&self, _request: Request<pb::ShutdownRequest>) -> Answer<()> {
        self.api.shutdown();
        Ok(Response::new(()))
    }
}

/// A binding's answer metadata as `metadata.<key>` gRPC headers (keys that
/// cannot be metadata keys are left out; they are in the answer's body).
fn binding_headers(
    headers: &mut tonic::metadata::MetadataMap,
    metadata: &mecha_api::bindings::Metadata,
) {
    for (key, value) in metadata {
        let key = format!("metadata.{}", key.to_ascii_lowercase());
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            headers.insert(key, value);
        }
    }
}
