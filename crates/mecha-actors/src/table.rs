//! The actors active on this runtime, each taking one call at a time.
//!
//! - A call enters its actor's activation (made on the first call) and
//!   waits for its turn on a fair (first come, first served) lock; at most
//!   [`MAX_WAITING`] calls wait per actor.
//! - A call carrying the reentrancy id of the call that holds the turn is
//!   part of the same chain: it runs at once, within the chain's depth.
//! - The turn is held by a task of its own until the app has answered
//!   whole, so a caller that goes away never lets a second call in early.
//! - Deactivation (idle, moved, stopping) takes the turn, marks the
//!   activation gone, tells the app and only then removes it: a call that
//!   found it meanwhile waits, sees it gone and starts again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::OwnedMutexGuard;

use crate::ActorRef;

/// The most calls that may wait for one actor's turn.
pub const MAX_WAITING: usize = 4096;

/// One active actor.
pub(crate) struct Activation {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Calls holding or waiting for the turn.
    pending: AtomicUsize,
    last_used: Mutex<Instant>,
    /// The reentrancy id of the chain holding the turn, and its depth.
    chain: Mutex<Option<(String, u32)>>,
    gone: AtomicBool,
    /// Whether a call reached the app (the app knows the actor).
    used: AtomicBool,
}

impl Activation {
    fn new() -> Self {
        Self {
            turn: Arc::default(),
            pending: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            chain: Mutex::new(None),
            gone: AtomicBool::new(false),
            used: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    pub(crate) async fn take_turn(&self) -> OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    /// The turn, if nobody holds it.
    pub(crate) fn try_turn(&self) -> Option<OwnedMutexGuard<()>> {
        self.turn.clone().try_lock_owned().ok()
    }

    /// Marks the end of a call.
    pub(crate) fn touch(&self) {
        self.used.store(true, Ordering::Release);
        *self.last_used.lock().expect("activation") = Instant::now();
    }

    /// Whether a call reached the app.
    pub(crate) fn was_used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// The turn is now held by the chain `id` (or by a call with none).
    pub(crate) fn hold(&self, id: Option<String>) {
        *self.chain.lock().expect("activation") = id.map(|id| (id, 1));
    }

    /// Enters the chain holding the turn if `id` is its id: `Ok(true)`
    /// when the call may run now, `Ok(false)` when it must take its turn,
    /// `Err(depth)` when the chain is already `max` deep.
    pub(crate) fn reenter(&self, id: &str, max: u32) -> Result<bool, u32> {
        let mut chain = self.chain.lock().expect("activation");
        match chain.as_mut() {
            Some((held, depth)) if held == id => {
                if *depth >= max {
                    return Err(*depth);
                }
                *depth += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Leaves the chain after a reentrant call.
    pub(crate) fn leave(&self, id: &str) {
        if let Some((held, depth)) = self.chain.lock().expect("activation").as_mut()
            && held == id
        {
            *depth = depth.saturating_sub(1);
        }
    }
}

/// A call's place at one actor: released when dropped.
pub(crate) struct Entered {
    pub(crate) activation: Arc<Activation>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.activation.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The actor is already [`MAX_WAITING`] calls behind.
pub(crate) struct Full;

/// The active actors.
#[derive(Default)]
pub(crate) struct Table {
    actors: Mutex<HashMap<ActorRef, Arc<Activation>>>,
}

impl Table {
    /// Enters `actor`'s activation, making it if it is not active.
    pub(crate) fn enter(&self, actor: &ActorRef) -> Result<Entered, Full> {
        let mut actors = self.actors.lock().expect("actor table");
        let activation = actors
            .entry(actor.clone())
            .or_insert_with(|| Arc::new(Activation::new()))
            .clone();
        if activation.pending.fetch_add(1, Ordering::AcqRel) > MAX_WAITING {
            activation.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Full);
        }
        Ok(Entered { activation })
    }

    /// Whether `actor` is active, or being deactivated (the app may still
    /// save its state as it deactivates).
    pub(crate) fn contains(&self, actor: &ActorRef) -> bool {
        self.actors.lock().expect("actor table").contains_key(actor)
    }

    /// Whether `activation` is still `actor`'s entry.
    pub(crate) fn holds(&self, actor: &ActorRef, activation: &Arc<Activation>) -> bool {
        let actors = self.actors.lock().expect("actor table");
        actors
            .get(actor)
            .is_some_and(|a| Arc::ptr_eq(a, activation))
    }

    /// Every active actor.
    pub(crate) fn active(&self) -> Vec<(ActorRef, Arc<Activation>)> {
        let actors = self.actors.lock().expect("actor table");
        actors.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Active actors per type.
    pub(crate) fn counts(&self) -> Vec<(String, usize)> {
        let actors = self.actors.lock().expect("actor table");
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for actor in actors.keys() {
            *counts.entry(actor.actor_type.as_str()).or_default() += 1;
        }
        let mut counts: Vec<(String, usize)> =
            counts.into_iter().map(|(t, n)| (t.to_owned(), n)).collect();
        counts.sort();
        counts
    }

    /// Whether `activation` has had no call for `idle` (none waiting).
    pub(crate) fn is_idle(activation: &Activation, idle: std::time::Duration) -> bool {
        activation.pending.load(Ordering::Acquire) == 0
            && activation.last_used.lock().expect("activation").elapsed() >= idle
    }

    /// Marks `activation` gone, the caller holding its turn; `only_if_idle`
    /// refuses when a call has entered meanwhile.
    pub(crate) fn mark_gone(&self, activation: &Activation, only_if_idle: bool) -> bool {
        let _actors = self.actors.lock().expect("actor table");
        if only_if_idle && activation.pending.load(Ordering::Acquire) > 0 {
            return false;
        }
        activation.gone.store(true, Ordering::Release);
        true
    }

    /// Removes `actor` once its app has been told, if it is still this
    /// activation.
    pub(crate) fn remove(&self, actor: &ActorRef, activation: &Arc<Activation>) {
        let mut actors = self.actors.lock().expect("actor table");
        if actors
            .get(actor)
            .is_some_and(|a| Arc::ptr_eq(a, activation))
        {
            actors.remove(actor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str) -> ActorRef {
        ActorRef::new("T", id)
    }

    #[tokio::test]
    async fn waits_are_bounded_and_counted() {
        let table = Table::default();
        let mut held = Vec::new();
        for _ in 0..=MAX_WAITING {
            held.push(table.enter(&actor("a")).ok().expect("room"));
        }
        assert!(table.enter(&actor("a")).is_err(), "the queue is full");
        assert!(table.enter(&actor("b")).is_ok(), "another actor has room");
        held.pop();
        assert!(table.enter(&actor("a")).is_ok());
        assert_eq!(table.counts(), [("T".to_owned(), 2)]);
    }

    #[tokio::test]
    async fn a_chain_reenters_within_its_depth_only() {
        let activation = Activation::new();
        let _turn = activation.take_turn().await;
        activation.hold(Some("chain".into()));
        assert_eq!(activation.reenter("other", 3), Ok(false));
        assert_eq!(activation.reenter("chain", 3), Ok(true));
        assert_eq!(activation.reenter("chain", 3), Ok(true));
        assert_eq!(activation.reenter("chain", 3), Err(3));
        activation.leave("chain");
        assert_eq!(activation.reenter("chain", 3), Ok(true));
    }

    #[tokio::test]
    async fn gone_only_when_idle_if_asked() {
        let table = Table::default();
        let entered = table.enter(&actor("a")).ok().unwrap();
        let activation = entered.activation.clone();
        assert!(!table.mark_gone(&activation, true), "a call is pending");
        drop(entered);
        assert!(table.mark_gone(&activation, true));
        assert!(activation.is_gone());
        table.remove(&actor("a"), &activation);
        assert!(table.active().is_empty());
    }
}
