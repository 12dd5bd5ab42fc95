//! The secrets API: one secret and every secret of a store, with the
//! Configuration's scopes, and daprd's errors (a missing store is 401).

use std::collections::BTreeMap;

use mecha_core::{ApiError, GrpcCode};
use mecha_secrets::{AccessError, Metadata, Secret, SecretError, SecretsBlock, SecretsHandle};

use crate::Api;

impl Api {
    fn secrets(&self, store: &str) -> Result<SecretsHandle, ApiError> {
        let components = self.runtime().components();
        if !components.has::<SecretsBlock>() {
            return Err(ApiError::new(
                "ERR_SECRET_STORES_NOT_CONFIGURED",
                500,
                GrpcCode::FailedPrecondition,
                "secret store is not configured",
            ));
        }
        components
            .get::<SecretsBlock>(store)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "ERR_SECRET_STORE_NOT_FOUND",
                    401,
                    GrpcCode::InvalidArgument,
                    format!("failed finding secret store with key {store}"),
                )
            })
    }

    /// One secret (`GET /v1.0/secrets/{store}/{key}`, `GetSecret`).
    pub async fn get_secret(
        &self,
        store: &str,
        key: &str,
        metadata: Metadata,
    ) -> Result<Secret, ApiError> {
        let secrets = self.secrets(store)?;
        secrets.get(key, &metadata).await.map_err(|err| match err {
            AccessError::Denied { .. } => ApiError::new(
                "ERR_PERMISSION_DENIED",
                403,
                GrpcCode::PermissionDenied,
                err.to_string(),
            ),
            AccessError::Store(err) => secret_error(
                format!("failed getting secret with key {key} from secret store {store}"),
                err,
            ),
        })
    }

    /// Every secret the app may read (`GET /v1.0/secrets/{store}/bulk`,
    /// `GetBulkSecret`).
    pub async fn get_bulk_secret(
        &self,
        store: &str,
        metadata: Metadata,
    ) -> Result<BTreeMap<String, Secret>, ApiError> {
        let secrets = self.secrets(store)?;
        secrets.bulk(&metadata).await.map_err(|err| {
            secret_error(
                format!("failed getting secrets from secret store {store}"),
                err,
            )
        })
    }
}

fn secret_error(prefix: String, err: SecretError) -> ApiError {
    if let SecretError::Backend(inner) = &err {
        tracing::warn!(error = %format!("{inner:#}"), "secret store call failed");
    }
    ApiError::new(
        "ERR_SECRET_GET",
        500,
        GrpcCode::Internal,
        format!("{prefix}: {err:#}"),
    )
}
