//! The `Dapr` service: each method maps its message onto the API layer.

use mecha_api::Api;
use mecha_api::state::TransactionOperation;
use mecha_proto::runtime::{self as pb, dapr_server::Dapr};
use mecha_state::DeleteRequest;
use tonic::{Request, Response, Status};

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
                active_actors: vec![],
                host_ready: false,
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

    async fn shutdown(&self, _request: Request<pb::ShutdownRequest>) -> Answer<()> {
        self.api.shutdown();
        Ok(Response::new(()))
    }
}
