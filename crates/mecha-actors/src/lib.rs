//! The actor runtime (issue 15): virtual actors as daprd hosts them.
//!
//! - [`ActorConfig`]: what the app hosts and how, read from its answer to
//!   `GET /dapr/config`.
//! - [`Actors`]: routes a call for an actor to the runtime placement says
//!   owns it ([`Placing`], over `mecha-placement`), through the peer plane
//!   ([`mecha_invoke::Peers`]) or to this runtime's table of active actors,
//!   where each actor takes one call at a time (`table.rs`) before the app
//!   is called (`PUT /actors/{type}/{id}/method/{method}`).
//! - [`ActorHost`]: the runtime's service: reads the app's configuration
//!   once the runtime is ready, joins placement with the app's types,
//!   deactivates idle actors, and deactivates the rest when it stops.
//!
//! When placement's tables change, the actors that moved away are drained
//! (their calls in flight end, up to `drainOngoingCallTimeout`) and
//! deactivated before this runtime acknowledges the new tables, and calls
//! to them wait until the round is unlocked: no actor is ever active on
//! two runtimes at once.

mod app;
mod config;
mod errors;
mod host;
mod period;
mod reminders;
mod stream;
mod table;
mod timers;

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderValue, Method};
use mecha_core::ApiError;
use mecha_invoke::{AppChannel, InvokeRequest, InvokeResponse, Peers, body, headers};

pub use app::ActorApp;
pub use config::{ActorConfig, Reentrancy, Settings, TypeConfig};
pub use errors::*;
pub use host::ActorHost;
pub use mecha_invoke::ActorRef;
pub use period::Period;
pub use reminders::{Reminder, ReminderSpec};
pub use stream::{ActorAnswer, ActorAnswers, ActorEvent, ActorEvents, EventKind};
pub use table::MAX_WAITING;
pub use timers::{CANCEL, TimerSpec};

use table::{Entered, Table};

/// The header carrying a call chain's reentrancy id.
pub const REENTRANCY_ID: &str = "dapr-reentrancy-id";

/// The header marking a timer's or reminder's call, from the runtime that
/// fired it to the actor's owner (never from an app, nor to one).
const FIRE: &str = "mecha-actor-fire";

/// How long a call waits for placement's tables (the first ones, or the
/// end of a round under way).
pub const PLACEMENT_WAIT: Duration = Duration::from_secs(10);

/// The most runtimes a call passes on its way to its actor's owner (tables
/// change while it travels).
const MAX_HOPS: u32 = 3;
/// How often a call starts again when its activation went away as it
/// waited.
const MAX_AGAIN: u32 = 8;
/// How often a type no runtime hosts is looked up again, a second apart
/// (daprd's `DaprBuiltInActorNotFoundRetries`).
const NO_HOST_RETRIES: u32 = 5;
/// The longest drain of an actor that moved, whatever its
/// `drainOngoingCallTimeout`: the round waits for it, and placement drops a
/// runtime that takes more than its dissemination timeout (8 s) to answer.
const MAX_DRAIN: Duration = Duration::from_secs(4);
/// How long the app is given to answer an actor's deactivation.
const DEACTIVATE_WAIT: Duration = Duration::from_secs(3);

/// Where an actor lives, by the tables this runtime has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    /// Here.
    Local,
    /// At another runtime: its internal address and app id.
    Remote { address: String, app_id: String },
    /// No runtime hosts the type.
    NoHost,
    /// No tables yet.
    NotReady,
}

/// What the runtime reports of placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementStatus {
    /// Whether this runtime has joined placement.
    pub joined: bool,
    /// Whether the stream to placement is up.
    pub connected: bool,
    /// The version of the tables installed (0: none).
    pub version: u64,
}

/// What this runtime does when placement's tables change, before it
/// acknowledges them.
#[async_trait]
pub trait Rebalance: Send + Sync {
    async fn tables_changed(&self);
}

/// Placement as the actor runtime uses it.
#[async_trait]
pub trait Placing: Send + Sync {
    /// Joins placement, reporting `entities`; a later call reports its
    /// `entities` instead. `rebalance` (of the first call) runs on every
    /// change of the tables.
    fn join(&self, entities: Vec<String>, rebalance: Arc<dyn Rebalance>);

    fn lookup(&self, actor: &ActorRef) -> Located;

    /// Resolves once tables are installed and, while a round hands actors
    /// over, once it is unlocked if `actor` is one of them; or after
    /// `limit`.
    async fn settled(&self, actor: &ActorRef, limit: Duration);

    /// Reports that this runtime hosts nothing any more, and resolves once
    /// a round has moved its actors away (or after `limit`).
    async fn leave(&self, limit: Duration);

    fn status(&self) -> PlacementStatus;
}

/// How the runtime reaches the app and other runtimes.
pub struct Seams {
    /// This runtime's app id.
    pub app_id: String,
    /// Its namespace (`NAMESPACE`).
    pub namespace: Option<String>,
    /// The app; `None` without one.
    pub app: Option<Arc<dyn AppChannel>>,
    /// Whether the runtime has an HTTP app: such an app says what it hosts
    /// at `GET /dapr/config` and hosts its actors behind its port. A gRPC
    /// app (or one without a port) is not asked, as daprd does not ask it:
    /// it hosts actors through the stream it opens
    /// (`SubscribeActorEventsAlpha1`, `stream.rs`).
    pub http_app: bool,
    pub peers: Option<Arc<dyn Peers>>,
    pub placing: Arc<dyn Placing>,
    /// The most of an app's answer that is read (`--max-body-size`).
    pub max_answer: usize,
}

struct Inner {
    seams: Seams,
    config: RwLock<Arc<ActorConfig>>,
    /// Set once the app's configuration is read (or known absent).
    configured: OnceLock<()>,
    configured_notify: tokio::sync::Notify,
    /// Whether the app's types are hosted here.
    hosting: std::sync::atomic::AtomicBool,
    table: Table,
    timers: timers::Timers,
    /// Where the app's actors are: its HTTP channel, or the stream it
    /// opened; `None` while a gRPC app has no stream open.
    app: RwLock<Option<Arc<dyn ActorApp>>>,
    link: OnceLock<host::Link>,
    hosted: tokio::sync::Mutex<host::Hosted>,
    /// Cancelled once the stopping runtime's actors are handed over.
    handed_over: tokio_util::sync::CancellationToken,
}

/// The actor runtime's handle: cheap to clone.
#[derive(Clone)]
pub struct Actors {
    inner: Arc<Inner>,
}

/// What the table made of a local call.
enum Turn {
    Answered(InvokeResponse),
    /// The activation went away (deactivated or moved) while the call
    /// waited: route it again.
    Again(InvokeRequest),
}

impl Actors {
    pub fn new(seams: Seams) -> Self {
        let app = seams.app.clone().filter(|_| seams.http_app).map(|channel| {
            Arc::new(app::HttpApp {
                channel,
                max_answer: seams.max_answer,
            }) as Arc<dyn ActorApp>
        });
        Self {
            inner: Arc::new(Inner {
                seams,
                config: RwLock::default(),
                configured: OnceLock::new(),
                configured_notify: tokio::sync::Notify::new(),
                hosting: std::sync::atomic::AtomicBool::new(false),
                table: Table::default(),
                timers: timers::Timers::default(),
                app: RwLock::new(app),
                link: OnceLock::new(),
                hosted: tokio::sync::Mutex::default(),
                handed_over: tokio_util::sync::CancellationToken::new(),
            }),
        }
    }

    /// The app's actor configuration, as read.
    pub fn config(&self) -> Arc<ActorConfig> {
        self.inner.config.read().expect("actor config").clone()
    }

    /// Whether the app's configuration has been read.
    pub fn is_configured(&self) -> bool {
        self.inner.configured.get().is_some()
    }

    /// Records the app's configuration; `hosting` says whether its actor
    /// types are hosted (daprd hosts none without an actor state store).
    fn set_config(&self, config: ActorConfig, hosting: bool) {
        self.inner
            .hosting
            .store(hosting, std::sync::atomic::Ordering::Release);
        *self.inner.config.write().expect("actor config") = Arc::new(config);
        let _ = self.inner.configured.set(());
        self.inner.configured_notify.notify_waiters();
    }

    /// Whether this runtime hosts `actor_type`.
    pub fn hosts(&self, actor_type: &str) -> bool {
        self.hosting() && self.config().hosts(actor_type)
    }

    /// Whether this runtime hosts actor types.
    pub fn hosting(&self) -> bool {
        self.inner
            .hosting
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once the runtime, stopping, has handed its actors over.
    pub async fn handed_over(&self) {
        self.inner.handed_over.cancelled().await;
    }

    /// Whether `actor` is active here.
    pub fn is_active(&self, actor: &ActorRef) -> bool {
        self.inner.table.contains(actor)
    }

    pub fn placement(&self) -> PlacementStatus {
        self.inner.seams.placing.status()
    }

    /// The active actors per type.
    pub fn active(&self) -> Vec<(String, usize)> {
        self.inner.table.counts()
    }

    /// What placement runs on new tables: it holds the actor runtime
    /// weakly, so that placement's stream ends with the runtime.
    fn rebalance(&self) -> Arc<dyn Rebalance> {
        Arc::new(WeakActors(Arc::downgrade(&self.inner)))
    }

    /// Joins placement, if the runtime has not joined yet, once the app's
    /// configuration says what it hosts (a runtime with no app, or hosting
    /// nothing, joins as a caller on its first actor call).
    async fn ensure_joined(&self) {
        if self.inner.seams.placing.status().joined {
            return;
        }
        self.wait_configured(PLACEMENT_WAIT).await;
        self.join();
    }

    fn join(&self) {
        let entities = if self.hosting() {
            self.config().entities.clone()
        } else {
            Vec::new()
        };
        self.inner.seams.placing.join(entities, self.rebalance());
    }

    /// Calls the method `req.method` of `actor`, wherever it lives: the
    /// caller side (`/v1.0/actors/...`, `InvokeActor`).
    pub async fn invoke(
        &self,
        actor: &ActorRef,
        mut req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        req.headers.remove(FIRE);
        self.route(actor, 0, req).await
    }

    /// A call another runtime routed here, `hops` runtimes on.
    pub async fn invoke_from_peer(
        &self,
        actor: &ActorRef,
        hops: u32,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        self.route(actor, hops, req).await
    }

    /// A timer's or reminder's call (`timer/{name}`, `remind/{name}`) with
    /// its JSON `body`, routed like any call.
    pub(crate) async fn fire(
        &self,
        actor: &ActorRef,
        method: String,
        body: bytes::Bytes,
    ) -> Result<InvokeResponse, ApiError> {
        let mut req = InvokeRequest::new(Method::PUT, method, body::full(body));
        req.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        req.headers.insert(FIRE, HeaderValue::from_static("1"));
        self.route(actor, 0, req).await
    }

    async fn route(
        &self,
        actor: &ActorRef,
        hops: u32,
        mut req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        self.ensure_joined().await;
        let placing = &self.inner.seams.placing;
        let (mut again, mut unhosted) = (0, 0);
        loop {
            placing.settled(actor, PLACEMENT_WAIT).await;
            match placing.lookup(actor) {
                Located::Local => match self.call_local(actor, req).await? {
                    Turn::Answered(response) => return Ok(response),
                    // Deactivated or moved while the call waited.
                    Turn::Again(back) if again < MAX_AGAIN => {
                        again += 1;
                        req = back;
                    }
                    Turn::Again(_) => return Err(no_address(actor)),
                },
                Located::Remote { address, app_id } => {
                    if hops >= MAX_HOPS {
                        return Err(no_address(actor));
                    }
                    let peers = self
                        .inner
                        .seams
                        .peers
                        .as_ref()
                        .ok_or_else(|| no_address(actor))?;
                    return peers
                        .call_actor(&address, &app_id, actor, hops + 1, req)
                        .await;
                }
                // As daprd's built-in policy: the type may be on its way
                // (a runtime joining), so look again, once a second.
                Located::NoHost if unhosted < NO_HOST_RETRIES => {
                    unhosted += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Located::NoHost => return Err(no_address(actor)),
                Located::NotReady => return Err(no_placement()),
            }
        }
    }

    /// The call, at its turn in this runtime's table.
    async fn call_local(&self, actor: &ActorRef, mut req: InvokeRequest) -> Result<Turn, ApiError> {
        // Only a gRPC app between two streams has none.
        let app = self
            .app()
            .ok_or_else(|| errors::invoke_method("actor host is not connected"))?;
        let entered = self
            .inner
            .table
            .enter(actor)
            .map_err(|_| errors::too_many_waiting(actor))?;
        let activation = entered.activation.clone();
        let chain = match self.config().of(&actor.actor_type).reentrancy {
            None => None,
            Some(max) => {
                let id = req
                    .headers
                    .get(REENTRANCY_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                if let Ok(value) = HeaderValue::from_str(&id) {
                    req.headers.insert(REENTRANCY_ID, value);
                }
                match activation.reenter(&id, max) {
                    Ok(true) => {
                        // Part of the chain holding the turn: runs now, and
                        // the chain's depth comes back down after it.
                        let answer = self
                            .run(app, actor, req, entered, move |a| a.leave(&id))
                            .await;
                        return answer.map(Turn::Answered);
                    }
                    Ok(false) => Some(id),
                    Err(_) => return Err(errors::stack_depth()),
                }
            }
        };
        let turn = activation.take_turn().await;
        if activation.is_gone() {
            return Ok(Turn::Again(req));
        }
        if self.inner.seams.placing.lookup(actor) != Located::Local {
            // The tables moved the actor while this call waited: it goes
            // away from here (drained, as a round would), and the call
            // goes to its new owner.
            drop(entered);
            self.deactivate_held(actor, &activation, Some(turn)).await;
            return Ok(Turn::Again(req));
        }
        activation.hold(chain);
        // The turn is held until the app has answered whole.
        let answer = self
            .run(app, actor, req, entered, move |a| {
                a.hold(None);
                drop(turn);
            })
            .await;
        answer.map(Turn::Answered)
    }

    /// Calls the app in a task of its own, so that the call runs to its end
    /// and `finish` (which gives the turn, or the chain's depth, back) runs
    /// after it, whatever the caller does meanwhile.
    async fn run(
        &self,
        app: Arc<dyn ActorApp>,
        actor: &ActorRef,
        req: InvokeRequest,
        entered: Entered,
        finish: impl FnOnce(&table::Activation) + Send + 'static,
    ) -> Result<InvokeResponse, ApiError> {
        let this = self.clone();
        let actor = actor.clone();
        let task = tokio::spawn(async move {
            let answer = this.call_app(&app, &actor, req).await;
            finish(&entered.activation);
            entered.activation.touch();
            drop(entered);
            answer
        });
        task.await
            .map_err(|err| errors::invoke_method(format!("the actor call failed: {err}")))?
    }

    /// Deactivates `actor`, whose turn is held: marked gone (calls waiting
    /// for it start again), its timers stopped, the app told (if the actor
    /// ever took a call), then removed.
    async fn deactivate_held(
        &self,
        actor: &ActorRef,
        activation: &Arc<table::Activation>,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) {
        self.inner.table.mark_gone(activation, false);
        self.inner.timers.remove_actor(actor);
        if activation.was_used() {
            self.tell_deactivated(actor).await;
        }
        self.inner.table.remove(actor, activation);
        drop(turn);
    }

    /// The call, as the app gets it: without the headers that stay in the
    /// runtime, with the caller's identity.
    async fn call_app(
        &self,
        app: &Arc<dyn ActorApp>,
        actor: &ActorRef,
        mut req: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let fire = req.headers.remove(FIRE).is_some();
        headers::strip_for_forwarding(&mut req.headers);
        if let Some(caller) = &req.caller {
            headers::set(&mut req.headers, headers::CALLER_APP_ID, &caller.app_id);
            if let Some(ns) = &caller.namespace {
                headers::set(&mut req.headers, headers::CALLER_NAMESPACE, ns);
            }
        }
        app.call(actor, req, fire).await
    }

    /// Tells the app `actor` is deactivated, waiting up to
    /// [`DEACTIVATE_WAIT`] for it.
    async fn tell_deactivated(&self, actor: &ActorRef) {
        let Some(app) = self.app() else {
            return;
        };
        match tokio::time::timeout(DEACTIVATE_WAIT, app.deactivate(actor)).await {
            Err(_) => {
                tracing::warn!(%actor, "the app did not answer the actor's deactivation in time");
            }
            Ok(Ok(())) => tracing::debug!(%actor, "actor deactivated"),
            Ok(Err(err)) => tracing::warn!(%actor, error = %err, "could not deactivate the actor"),
        }
    }

    /// Where the app's actors are reached now.
    fn app(&self) -> Option<Arc<dyn ActorApp>> {
        self.inner.app.read().expect("actor app").clone()
    }

    /// Deactivates the actors idle for longer than their type allows.
    async fn deactivate_idle(&self) {
        let config = self.config();
        for (actor, activation) in self.inner.table.active() {
            let idle = config.of(&actor.actor_type).idle_timeout;
            if !Table::is_idle(&activation, idle) {
                continue;
            }
            let Some(turn) = activation.try_turn() else {
                continue;
            };
            if !self.inner.table.mark_gone(&activation, true) {
                continue;
            }
            self.deactivate_held(&actor, &activation, Some(turn)).await;
        }
    }

    /// Deactivates the actors `keep` refuses, each after its calls in
    /// flight (up to `wait`, or its type's drain timeout).
    async fn deactivate_where(&self, keep: impl Fn(&ActorRef) -> bool, wait: Option<Duration>) {
        let config = self.config();
        let mut drains = Vec::new();
        for (actor, activation) in self.inner.table.active() {
            if keep(&actor) {
                continue;
            }
            let this = self.clone();
            let of = config.of(&actor.actor_type);
            let limit = wait.unwrap_or(if of.drain_rebalanced {
                of.drain_timeout.min(MAX_DRAIN)
            } else {
                Duration::ZERO
            });
            drains.push(async move {
                let turn = tokio::time::timeout(limit, activation.take_turn())
                    .await
                    .ok();
                if turn.is_none() {
                    // Deactivated all the same (as daprd): the call still
                    // running ends on its own.
                    tracing::warn!(%actor, "calls in flight outlasted the drain timeout");
                }
                // Another deactivation got there first.
                if activation.is_gone() && !this.inner.table.holds(&actor, &activation) {
                    return;
                }
                this.deactivate_held(&actor, &activation, turn).await;
            });
        }
        futures_join(drains).await;
    }

    /// Waits until the app's configuration has been read, up to `limit`.
    pub async fn wait_configured(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.configured_notify.notified();
                if self.is_configured() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

struct WeakActors(std::sync::Weak<Inner>);

#[async_trait]
impl Rebalance for WeakActors {
    async fn tables_changed(&self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let actors = Actors { inner };
        let placing = actors.inner.seams.placing.clone();
        actors
            .deactivate_where(|actor| placing.lookup(actor) == Located::Local, None)
            .await;
    }
}

/// Runs futures to their ends, together.
async fn futures_join<F: std::future::Future<Output = ()> + Send + 'static>(all: Vec<F>) {
    join_tasks(all.into_iter().map(tokio::spawn).collect()).await;
}

/// Waits for every task of `tasks` to end.
async fn join_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
