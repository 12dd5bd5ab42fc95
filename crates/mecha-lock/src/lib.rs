//! The distributed lock building block (alpha in Dapr).
//!
//! - [`LockStore`] is the contract every lock component implements: take a
//!   lock for an owner until it expires, and release it, only by its owner.
//! - [`LockHandle`] is the block's handle on one configured component: it turns
//!   the app's resource id into Dapr's lock key (`lock||{appID}||{id}`, per
//!   the component's `keyPrefix`) so every component gets the same keys.
//! - `conformance` (feature `conformance`) is the suite every component
//!   must pass, one test per case through [`lock_conformance!`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

mod block;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::LockBlock;

/// What an unlock found, with Dapr's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockStatus {
    Success = 0,
    LockDoesNotExist = 1,
    LockBelongsToOthers = 2,
    InternalError = 3,
}

/// A lock to take: the stored key (already prefixed), its owner and how
/// long it holds unless released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryLockRequest {
    pub key: String,
    pub owner: String,
    pub expiry: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnlockRequest {
    pub key: String,
    pub owner: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("input key/keyPrefix '{0}' can't contain '||'")]
    IllegalKey(String),
    /// A resource id beyond `mecha_core::limits::MAX_KEY_BYTES`.
    #[error("the resource id is longer than the limit of {0} bytes")]
    ResourceIdTooLong(usize),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// The contract of a lock component. A lock belongs to one owner at a time
/// until it expires or its owner releases it; taking a held lock fails,
/// even for its own owner (as in daprd). An expired lock is free.
#[async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Takes the lock; `false` when someone holds it.
    async fn try_lock(&self, req: &TryLockRequest) -> Result<bool, LockError>;

    /// Releases the lock if `owner` holds it.
    async fn unlock(&self, req: &UnlockRequest) -> Result<UnlockStatus, LockError>;
}

/// The separator of Dapr's lock keys.
pub const SEPARATOR: &str = "||";

/// Dapr's `keyPrefix` strategies for lock stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockPrefix {
    /// `lock||{appID}||{id}` (the default).
    AppId,
    /// `lock||{storeName}||{id}`.
    Name,
    /// `lock||{id}`.
    None,
    /// `lock||{prefix}||{id}`.
    Custom(String),
}

impl LockPrefix {
    /// Parses `keyPrefix` (lowercased, as daprd does).
    pub fn parse(value: Option<&str>) -> Result<Self, LockError> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(Self::AppId);
        };
        let value = value.to_ascii_lowercase();
        Ok(match value.as_str() {
            "appid" => Self::AppId,
            "name" => Self::Name,
            "none" => Self::None,
            _ if value.contains(SEPARATOR) => return Err(LockError::IllegalKey(value)),
            _ => Self::Custom(value),
        })
    }

    /// The prefix of every key of a store named `store` for `app_id`.
    fn resolve(&self, app_id: &str, store: &str) -> String {
        let middle = match self {
            Self::AppId if app_id.is_empty() => None,
            Self::AppId => Some(app_id),
            Self::Name => Some(store),
            Self::None => None,
            Self::Custom(prefix) => Some(prefix.as_str()),
        };
        match middle {
            Some(middle) => format!("lock{SEPARATOR}{middle}{SEPARATOR}"),
            None => format!("lock{SEPARATOR}"),
        }
    }
}

/// A configured lock store: the component and its key prefix.
#[derive(Clone)]
pub struct LockHandle {
    name: String,
    component: Arc<dyn LockStore>,
    prefix: String,
}

impl std::fmt::Debug for LockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockHandle")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl LockHandle {
    pub fn new(
        name: impl Into<String>,
        component: Arc<dyn LockStore>,
        prefix: &LockPrefix,
        app_id: &str,
    ) -> Self {
        let name = name.into();
        let prefix = prefix.resolve(app_id, &name);
        Self {
            name,
            component,
            prefix,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored key of a resource id.
    pub fn key(&self, resource_id: &str) -> Result<String, LockError> {
        if resource_id.len() > mecha_core::limits::MAX_KEY_BYTES {
            return Err(LockError::ResourceIdTooLong(
                mecha_core::limits::MAX_KEY_BYTES,
            ));
        }
        if resource_id.contains(SEPARATOR) {
            return Err(LockError::IllegalKey(resource_id.to_owned()));
        }
        Ok(format!("{}{resource_id}", self.prefix))
    }

    pub async fn try_lock(
        &self,
        resource_id: &str,
        owner: &str,
        expiry: Duration,
    ) -> Result<bool, LockError> {
        let req = TryLockRequest {
            key: self.key(resource_id)?,
            owner: owner.to_owned(),
            expiry,
        };
        self.component.try_lock(&req).await
    }

    pub async fn unlock(&self, resource_id: &str, owner: &str) -> Result<UnlockStatus, LockError> {
        let req = UnlockRequest {
            key: self.key(resource_id)?,
            owner: owner.to_owned(),
        };
        self.component.unlock(&req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;

    #[async_trait]
    impl LockStore for Never {
        async fn try_lock(&self, _: &TryLockRequest) -> Result<bool, LockError> {
            Ok(false)
        }
        async fn unlock(&self, _: &UnlockRequest) -> Result<UnlockStatus, LockError> {
            Ok(UnlockStatus::LockDoesNotExist)
        }
    }

    #[test]
    fn keys_follow_daprd() {
        let keys = |prefix: &str, app: &str| {
            let prefix = LockPrefix::parse(Some(prefix)).unwrap();
            LockHandle::new("store", Arc::new(Never), &prefix, app)
                .key("r")
                .unwrap()
        };
        assert_eq!(keys("", "app"), "lock||app||r");
        assert_eq!(keys("appid", ""), "lock||r");
        assert_eq!(keys("Name", "app"), "lock||store||r");
        assert_eq!(keys("none", "app"), "lock||r");
        assert_eq!(keys("MyPrefix", "app"), "lock||myprefix||r");
        assert!(LockPrefix::parse(Some("a||b")).is_err());
        let locks = LockHandle::new("s", Arc::new(Never), &LockPrefix::AppId, "app");
        assert!(matches!(locks.key("a||b"), Err(LockError::IllegalKey(_))));
        let limit = mecha_core::limits::MAX_KEY_BYTES;
        assert!(locks.key(&"r".repeat(limit)).is_ok());
        assert!(matches!(
            locks.key(&"r".repeat(limit + 1)),
            Err(LockError::ResourceIdTooLong(_))
        ));
    }
}
