//! The distributed lock API (alpha): try-lock and unlock, with daprd's
//! checks in daprd's order.

use std::time::Duration;

use mecha_core::{ApiError, GrpcCode};
use mecha_lock::{LockBlock, LockError, LockHandle, UnlockStatus};

use crate::Api;

/// Which call failed, for its error code.
#[derive(Clone, Copy)]
enum Call {
    TryLock,
    Unlock,
}

impl Call {
    fn code(self) -> &'static str {
        match self {
            Call::TryLock => "ERR_TRY_LOCK",
            Call::Unlock => "ERR_UNLOCK",
        }
    }

    fn failure(self) -> &'static str {
        match self {
            Call::TryLock => "failed to try acquiring lock",
            Call::Unlock => "failed to release lock",
        }
    }
}

impl Api {
    fn lock_store(
        &self,
        store: &str,
        resource_id: &str,
        owner: &str,
    ) -> Result<LockHandle, ApiError> {
        let components = self.runtime().components();
        if !components.has::<LockBlock>() {
            return Err(ApiError::new(
                "ERR_LOCK_STORE_NOT_CONFIGURED",
                500,
                GrpcCode::FailedPrecondition,
                "lock store is not configured",
            ));
        }
        if resource_id.is_empty() {
            return Err(ApiError::malformed_request(format!(
                "ResourceId is empty in lock store {store}"
            )));
        }
        if owner.is_empty() {
            return Err(ApiError::malformed_request(format!(
                "LockOwner is empty in lock store {store}"
            )));
        }
        components.get::<LockBlock>(store).cloned().ok_or_else(|| {
            ApiError::new(
                "ERR_LOCK_STORE_NOT_FOUND",
                400,
                GrpcCode::InvalidArgument,
                format!("lock store {store} not found"),
            )
        })
    }

    /// Takes a lock for `owner` for `expiry_seconds`; false when it is held.
    pub async fn try_lock(
        &self,
        store: &str,
        resource_id: &str,
        owner: &str,
        expiry_seconds: i32,
    ) -> Result<bool, ApiError> {
        if expiry_seconds <= 0 {
            return Err(ApiError::malformed_request(format!(
                "ExpiryInSeconds is not positive in lock store {store}"
            )));
        }
        let locks = self.lock_store(store, resource_id, owner)?;
        locks
            .try_lock(
                resource_id,
                owner,
                Duration::from_secs(expiry_seconds as u64),
            )
            .await
            .map_err(|err| lock_error(Call::TryLock, err))
    }

    /// Releases a lock held by `owner`.
    pub async fn unlock(
        &self,
        store: &str,
        resource_id: &str,
        owner: &str,
    ) -> Result<UnlockStatus, ApiError> {
        let locks = self.lock_store(store, resource_id, owner)?;
        locks
            .unlock(resource_id, owner)
            .await
            .map_err(|err| lock_error(Call::Unlock, err))
    }
}

fn lock_error(call: Call, err: LockError) -> ApiError {
    match err {
        // daprd answers a resource id it cannot turn into a key as any
        // failed lock call: 500.
        LockError::IllegalKey(_) => ApiError::new(
            call.code(),
            500,
            GrpcCode::Internal,
            format!("{}: {err}", call.failure()),
        ),
        // A client's mistake, answered as daprd answers an empty resource id.
        LockError::ResourceIdTooLong(_) => {
            ApiError::malformed_request(format!("{}: {err}", call.failure()))
        }
        LockError::Backend(inner) => {
            tracing::warn!(code = call.code(), error = %format!("{inner:#}"), "lock operation failed");
            ApiError::new(
                call.code(),
                500,
                GrpcCode::Internal,
                format!("{}: {inner:#}", call.failure()),
            )
        }
    }
}
