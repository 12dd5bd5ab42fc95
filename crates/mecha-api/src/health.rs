//! `/v1.0/healthz` and `/v1.0/healthz/outbound`.

use mecha_core::{ApiError, GrpcCode};

use crate::Api;

impl Api {
    /// Ready: every component initialised, the API listening, the app
    /// (when there is one) listening on its port, and every service
    /// started (the runtime can be found by others).
    pub fn healthz(&self) -> Result<(), ApiError> {
        let rt = self.runtime();
        if rt.is_ready() && !rt.is_shutting_down() {
            Ok(())
        } else {
            Err(ApiError::new(
                "ERR_HEALTH_NOT_READY",
                500,
                GrpcCode::Internal,
                "dapr is not ready",
            ))
        }
    }

    /// Ready for outbound calls: components loaded and the API listening,
    /// without waiting for the app (SDK apps call this while they start).
    pub fn outbound_healthz(&self) -> Result<(), ApiError> {
        let rt = self.runtime();
        if rt.components_ready() && rt.api_ready() {
            Ok(())
        } else {
            Err(ApiError::new(
                "ERR_OUTBOUND_HEALTH_NOT_READY",
                500,
                GrpcCode::Internal,
                "dapr outbound is not ready",
            ))
        }
    }

    /// `?appid=X` on healthz: the caller checks it reached the right runtime.
    pub fn check_app_id(&self, app_id: &str) -> Result<(), ApiError> {
        if app_id == self.runtime().info.app_id {
            Ok(())
        } else {
            Err(ApiError::new(
                "ERR_HEALTH_APPID_NOT_MATCH",
                500,
                GrpcCode::Internal,
                "dapr app-id does not match",
            ))
        }
    }
}
