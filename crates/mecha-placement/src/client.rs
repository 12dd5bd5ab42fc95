//! The runtime's side of placement: one `ReportDaprStatus` stream to the
//! placement service, reporting this runtime (its internal address, app
//! id, namespace and actor types), acknowledging each phase of every
//! round as daprd 1.18 does, and installing each round's tables as the
//! rings actors are looked up in.
//!
//! - Lookups answer from the tables installed last, also while a round is
//!   locked (as daprd 1.18) and while placement is away: a runtime keeps
//!   serving with the table it has, says so ([`Placed::connected`]), and
//!   rejoins by itself, reporting again, when placement returns.
//! - An `update` older than the last one on the same stream ends the
//!   stream (daprd's rule), and the runtime reconnects. Versions are
//!   compared within a stream only: a placement that restarted without
//!   its state counts again from 1.
//! - The stream ends when the last handle is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use mecha_proto::placement as pb;
use pb::placement_client::PlacementClient;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Host, Phase, Ring};

/// The longest wait between two attempts to reach placement.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Where placement is, asked on every attempt to reach it: a fixed
/// address, or the host's embedded placement ([`crate::Embedded`]).
pub type Resolve =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<String>> + Send>> + Send + Sync>;

/// Where an actor lives, by the tables installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The runtime that hosts it.
    Owner(Host),
    /// No runtime hosts the actor type (daprd: `ErrActorNoAddress`).
    NoHost,
    /// No tables yet: this runtime has not finished a round.
    NotReady,
}

/// What the runtime knows of placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placed {
    /// The version of the tables installed (0: none yet).
    pub version: u64,
    /// Whether the stream to placement is up.
    pub connected: bool,
    /// Whether new tables are installed and not yet unlocked on the stream
    /// that is up: the actors whose owner changed are being handed over.
    pub locked: bool,
    /// The rounds completed (unlocked after an update) since the start.
    pub rounds: u64,
}

/// What the runtime does once it has installed new tables, before it
/// acknowledges them: drain and deactivate the actors that moved away.
pub type OnUpdate = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Actor type → its ring.
type Rings = HashMap<String, Ring<Host>>;

struct Shared {
    rings: RwLock<Option<Rings>>,
    /// The tables before the last update, until its unlock.
    previous: RwLock<Option<Rings>>,
    status: watch::Sender<Placed>,
    /// The actor types this runtime reports.
    entities: watch::Sender<Vec<String>>,
    /// Dropped with the last handle, which ends the stream.
    _alive: oneshot::Sender<()>,
}

/// A runtime's placement client: lookups, and the stream kept up in a task
/// that ends when the last handle is dropped.
#[derive(Clone)]
pub struct Placement {
    shared: Arc<Shared>,
}

impl Placement {
    /// Starts reporting `host` to the placement service at `address`
    /// (`http://host:port`).
    pub fn start(address: String, host: Host) -> Self {
        let resolve: Resolve = Arc::new(move || {
            let address = address.clone();
            Box::pin(async move { Ok(address) })
        });
        Self::start_with(resolve, host)
    }

    /// Starts reporting `host` to placement wherever `resolve` says it is.
    pub fn start_with(resolve: Resolve, host: Host) -> Self {
        Self::start_hooked(resolve, host, None)
    }

    /// As [`Self::start_with`], running `on_update` on every new table
    /// before acknowledging it.
    pub fn start_hooked(resolve: Resolve, host: Host, on_update: Option<OnUpdate>) -> Self {
        let (alive, gone) = oneshot::channel();
        let shared = Arc::new(Shared {
            rings: RwLock::new(None),
            previous: RwLock::new(None),
            status: watch::channel(Placed::default()).0,
            entities: watch::channel(host.entities.clone()).0,
            _alive: alive,
        });
        tokio::spawn(keep_reporting(
            Arc::downgrade(&shared),
            gone,
            resolve,
            host,
            on_update,
        ));
        Self { shared }
    }

    /// The owner of actor `actor_type`/`actor_id`.
    pub fn lookup(&self, actor_type: &str, actor_id: &str) -> Lookup {
        let rings = self.shared.rings.read().expect("placement tables");
        let Some(rings) = rings.as_ref() else {
            return Lookup::NotReady;
        };
        match rings.get(actor_type).and_then(|ring| ring.owner(actor_id)) {
            Some(owner) => Lookup::Owner(owner.clone()),
            None => Lookup::NoHost,
        }
    }

    pub fn status(&self) -> Placed {
        self.shared.status.borrow().clone()
    }

    /// Reports `entities` as the actor types this runtime hosts from now
    /// on (placement runs a round), and resolves once a round has
    /// completed after it, or after `limit`.
    pub async fn set_entities(&self, entities: Vec<String>, limit: Duration) {
        let mut status = self.shared.status.subscribe();
        let before = status.borrow().rounds;
        tracing::debug!(?entities, rounds = before, "reporting actor types");
        self.shared.entities.send_replace(entities);
        let done = status.wait_for(|placed| placed.rounds > before);
        let _ = tokio::time::timeout(limit, async move { done.await.is_ok() }).await;
    }

    /// Resolves once tables are installed, and, while a round hands actors
    /// over, once it is unlocked if this actor is one whose owner changed
    /// (the old owner drains it before acknowledging the update); or after
    /// `limit`. The other actors are not held up by a round.
    pub async fn settled(&self, actor_type: &str, actor_id: &str, limit: Duration) {
        let mut status = self.shared.status.subscribe();
        let wait = async {
            loop {
                let placed = status.borrow_and_update().clone();
                if placed.version > 0 && !(placed.locked && self.moving(actor_type, actor_id)) {
                    return;
                }
                if status.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// Whether the actor's owner changed in the round under way.
    fn moving(&self, actor_type: &str, actor_id: &str) -> bool {
        let owner = |rings: &Rings| {
            rings
                .get(actor_type)
                .and_then(|ring| ring.owner(actor_id))
                .map(|host| host.name.clone())
        };
        let before = self.shared.previous.read().expect("placement tables");
        let Some(before) = before.as_ref() else {
            return false;
        };
        let now = self.shared.rings.read().expect("placement tables");
        now.as_ref().map(owner) != Some(owner(before))
    }

    /// Reports `entities` from now on (placement runs a round), without
    /// waiting for it.
    pub fn report(&self, entities: Vec<String>) {
        self.shared.entities.send_replace(entities);
    }
}

fn rings(tables: pb::PlacementTables) -> Rings {
    let replication = usize::try_from(tables.replication_factor).unwrap_or(0);
    tables
        .entries
        .into_iter()
        .map(|(actor_type, table)| {
            let hosts = table.load_map.into_values().map(Host::from).collect();
            (actor_type, Ring::of(hosts, replication))
        })
        .collect()
}

/// Keeps a stream to placement up until `gone`.
async fn keep_reporting(
    shared: Weak<Shared>,
    mut gone: oneshot::Receiver<()>,
    resolve: Resolve,
    host: Host,
    on_update: Option<OnUpdate>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = async {
            let address = resolve().await?;
            report(&shared, &address, &host, on_update.as_ref()).await
        };
        tokio::select! {
            reported = attempt => match reported {
                // A round went through: the next failure starts afresh.
                Ok(true) => backoff = FIRST_BACKOFF,
                Ok(false) => {}
                Err(err) => tracing::debug!(error = %err, "placement stream ended"),
            },
            _ = &mut gone => return,
        }
        match shared.upgrade() {
            // Away from placement, the runtime serves with the tables it
            // has: no round can be under way.
            Some(alive) => {
                *alive.previous.write().expect("placement tables") = None;
                alive.status.send_modify(|placed| {
                    placed.connected = false;
                    placed.locked = false;
                });
            }
            None => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = &mut gone => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One stream, until it ends: whether a round completed on it.
async fn report(
    shared: &Weak<Shared>,
    address: &str,
    host: &Host,
    on_update: Option<&OnUpdate>,
) -> anyhow::Result<bool> {
    let channel = tonic::transport::Endpoint::from_shared(address.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(3))
        .connect()
        .await?;
    let Some(mut entities) = shared.upgrade().map(|alive| alive.entities.subscribe()) else {
        return Ok(false);
    };
    let reported = |entities: Vec<String>| pb::Host {
        api_level: 20,
        operation: pb::HostOperation::Report as i32,
        ..pb::Host::from(&Host {
            entities,
            ..host.clone()
        })
    };
    let (acks, outbound) = mpsc::channel(4);
    let first = entities.borrow_and_update().clone();
    acks.send(reported(first)).await?;
    let mut orders = PlacementClient::new(channel)
        .report_dapr_status(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await?
        .into_inner();
    if let Some(alive) = shared.upgrade() {
        alive.status.send_modify(|placed| placed.connected = true);
    }
    let mut completed = false;
    let mut last = None;
    let mut stream_version = 0;
    loop {
        let order = tokio::select! {
            order = orders.message() => order?,
            changed = entities.changed() => {
                if changed.is_err() {
                    // The last handle is gone.
                    return Ok(completed);
                }
                let now = entities.borrow_and_update().clone();
                acks.send(reported(now)).await?;
                continue;
            }
        };
        let Some(order) = order else { break };
        let Some(alive) = shared.upgrade() else {
            return Ok(completed);
        };
        let version = order.version;
        let Some(phase) = Phase::of_operation(&order.operation) else {
            tracing::debug!(
                operation = order.operation,
                "placement sent an unknown operation"
            );
            continue;
        };
        match phase {
            // As daprd 1.18: calls go on with the tables they have.
            Phase::Lock => {}
            Phase::Update => {
                if version < stream_version {
                    anyhow::bail!("placement sent tables {version}, older than {stream_version}");
                }
                stream_version = version;
                let tables = order.tables.unwrap_or_default();
                tracing::debug!(version, "placement tables installed");
                let before = alive
                    .rings
                    .write()
                    .expect("placement tables")
                    .replace(rings(tables));
                *alive.previous.write().expect("placement tables") = before;
                alive.status.send_modify(|placed| {
                    placed.version = version;
                    placed.locked = true;
                });
                if let Some(on_update) = on_update {
                    drop(alive);
                    on_update().await;
                }
            }
            // An unlock counts only after an update (daprd's rule).
            Phase::Unlock if last == Some(Phase::Update) => {
                completed = true;
                *alive.previous.write().expect("placement tables") = None;
                alive.status.send_modify(|placed| {
                    placed.locked = false;
                    placed.rounds += 1;
                });
            }
            Phase::Unlock => {
                alive.status.send_modify(|placed| placed.locked = false);
                continue;
            }
        }
        last = Some(phase);
        acks.send(pb::Host {
            operation: pb::HostOperation::from(phase) as i32,
            version: Some(version),
            namespace: host.namespace.clone(),
            id: host.id.clone(),
            ..pb::Host::default()
        })
        .await?;
    }
    Ok(completed)
}
