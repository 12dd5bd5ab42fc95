//! The lock conformance suite: every lock component must pass it against
//! its real backend. [`lock_conformance!`](crate::lock_conformance) expands
//! it into one `#[tokio::test]` per case.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::*;

/// Gives each case its component.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A component, or `None` when its backend is unreachable and the case
    /// should be skipped (see `mecha_core::testing::service_available`).
    async fn component(&self) -> Option<Arc<dyn LockStore>>;

    /// Two components on the same backend, as two runtimes would have
    /// (separate connections, or a separate process's view of a file).
    async fn pair(&self) -> Option<(Arc<dyn LockStore>, Arc<dyn LockStore>)>;
}

/// A resource id no other case or run uses.
fn resource(name: &str) -> String {
    mecha_core::testing::unique(name)
}

fn locks(component: Arc<dyn LockStore>) -> LockHandle {
    LockHandle::new(
        "conformance",
        component,
        &LockPrefix::AppId,
        "conformance-app",
    )
}

const LONG: Duration = Duration::from_secs(30);

/// A free lock is taken, released by its owner, and taken again.
pub async fn lock_and_unlock(harness: &impl Harness) {
    let Some(component) = harness.component().await else {
        return;
    };
    let locks = locks(component);
    let id = resource("basic");
    assert!(locks.try_lock(&id, "owner-a", LONG).await.unwrap());
    assert_eq!(
        locks.unlock(&id, "owner-a").await.unwrap(),
        UnlockStatus::Success
    );
    assert!(
        locks.try_lock(&id, "owner-b", LONG).await.unwrap(),
        "a released lock is free"
    );
    assert_eq!(
        locks.unlock(&id, "owner-b").await.unwrap(),
        UnlockStatus::Success
    );
}

/// A held lock refuses everyone, its owner included, until released.
pub async fn held_lock_refuses_others(harness: &impl Harness) {
    let Some(component) = harness.component().await else {
        return;
    };
    let locks = locks(component);
    let id = resource("held");
    assert!(locks.try_lock(&id, "owner-a", LONG).await.unwrap());
    assert!(!locks.try_lock(&id, "owner-b", LONG).await.unwrap());
    assert!(!locks.try_lock(&id, "owner-a", LONG).await.unwrap());
    let other = resource("other");
    assert!(
        locks.try_lock(&other, "owner-b", LONG).await.unwrap(),
        "locks on other resources are independent"
    );
    for (id, owner) in [(&id, "owner-a"), (&other, "owner-b")] {
        assert_eq!(
            locks.unlock(id, owner).await.unwrap(),
            UnlockStatus::Success
        );
    }
}

/// Unlock tells a missing lock from someone else's, and never releases a
/// lock it does not own.
pub async fn unlock_statuses(harness: &impl Harness) {
    let Some(component) = harness.component().await else {
        return;
    };
    let locks = locks(component);
    let id = resource("statuses");
    assert_eq!(
        locks.unlock(&id, "owner-a").await.unwrap(),
        UnlockStatus::LockDoesNotExist
    );
    assert!(locks.try_lock(&id, "owner-a", LONG).await.unwrap());
    assert_eq!(
        locks.unlock(&id, "owner-b").await.unwrap(),
        UnlockStatus::LockBelongsToOthers
    );
    assert!(
        !locks.try_lock(&id, "owner-b", LONG).await.unwrap(),
        "a refused unlock leaves the lock held"
    );
    assert_eq!(
        locks.unlock(&id, "owner-a").await.unwrap(),
        UnlockStatus::Success
    );
    assert_eq!(
        locks.unlock(&id, "owner-a").await.unwrap(),
        UnlockStatus::LockDoesNotExist,
        "a lock is released once"
    );
}

/// A lock expires by itself; then it is free, and its old owner holds
/// nothing.
pub async fn expiry(harness: &impl Harness) {
    let Some(component) = harness.component().await else {
        return;
    };
    let locks = locks(component);
    let id = resource("expiry");
    assert!(
        locks
            .try_lock(&id, "owner-a", Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert!(!locks.try_lock(&id, "owner-b", LONG).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(
        locks.try_lock(&id, "owner-b", LONG).await.unwrap(),
        "an expired lock is free"
    );
    assert_eq!(
        locks.unlock(&id, "owner-a").await.unwrap(),
        UnlockStatus::LockBelongsToOthers,
        "the old owner holds nothing"
    );
    assert_eq!(
        locks.unlock(&id, "owner-b").await.unwrap(),
        UnlockStatus::Success
    );
    let lapsed = resource("lapsed");
    assert!(
        locks
            .try_lock(&lapsed, "owner-a", Duration::from_secs(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        locks.unlock(&lapsed, "owner-a").await.unwrap(),
        UnlockStatus::LockDoesNotExist,
        "an expired lock no longer exists"
    );
}

/// Many owners race for one lock through two components on one backend
/// (as two runtimes would): exactly one wins.
pub async fn racing_owners_one_winner(harness: &impl Harness) {
    let Some((first, second)) = harness.pair().await else {
        return;
    };
    let (first, second) = (locks(first), locks(second));
    for round in 0..5 {
        let id = resource("race");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let locks = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("owner-{i}");
                let won = locks.try_lock(&id, &owner, LONG).await.unwrap();
                (owner, won)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (owner, won) = task.await.unwrap();
            if won {
                winners.push(owner);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: one winner, not {winners:?}"
        );
        let status = second.unlock(&id, &winners[0]).await.unwrap();
        assert_eq!(
            status,
            UnlockStatus::Success,
            "either runtime sees the lock"
        );
    }
}

/// Resource ids with `||` are refused before they reach the component.
pub async fn illegal_resource_ids(harness: &impl Harness) {
    let Some(component) = harness.component().await else {
        return;
    };
    let locks = locks(component);
    let err = locks.try_lock("a||b", "owner", LONG).await.unwrap_err();
    assert!(matches!(err, LockError::IllegalKey(_)), "{err}");
    let err = locks.unlock("a||b", "owner").await.unwrap_err();
    assert!(matches!(err, LockError::IllegalKey(_)), "{err}");
}

/// Expands the lock conformance suite into one `#[tokio::test]` per case
/// for a harness type that implements `Default` and [`Harness`].
#[macro_export]
macro_rules! lock_conformance {
    ($harness:ty) => {
        $crate::lock_conformance!(@cases $harness;
            lock_and_unlock, held_lock_refuses_others, unlock_statuses, expiry,
            racing_owners_one_winner, illegal_resource_ids);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}
