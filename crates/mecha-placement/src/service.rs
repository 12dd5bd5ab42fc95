//! `dapr.proto.placement.v1.Placement` over gRPC: each runtime that hosts
//! actors keeps one `ReportDaprStatus` stream open. It reports itself
//! (`REPORT`: its address, app id, namespace and actor types); placement
//! keeps the members of each namespace ([`Members`]) and, on every change,
//! runs a round ([`Round`]) over that namespace's streams: `lock`, then
//! `update` with the tables, then `unlock`, each acknowledged by every
//! runtime (`LOCK`, `UPDATE`, `UNLOCK` with the round's version), as daprd
//! 1.18 does. A change during a round is taken up by the next one. A
//! runtime whose stream ends leaves its namespace; one that does not
//! acknowledge a phase within the dissemination timeout is disconnected
//! (it reconnects and reports again), so a round never wedges.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mecha_proto::placement as pb;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{Host, Members, Phase, Progress, Round, Tables};

/// How placement runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Virtual nodes per host (`--replicationFactor`).
    pub replication_factor: usize,
    /// How long a runtime has to acknowledge a phase of a round
    /// (`--disseminate-timeout`, daprd's default 8 s).
    pub disseminate_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            replication_factor: crate::DEFAULT_REPLICATION_FACTOR,
            disseminate_timeout: Duration::from_secs(8),
        }
    }
}

type Orders = mpsc::UnboundedSender<Result<pb::PlacementOrder, Status>>;

/// One runtime's stream.
struct Connection {
    /// Its namespace and name, once it reported.
    host: Option<(String, String)>,
    orders: Orders,
}

/// A round under way, with its tables as they were when it started.
struct Current {
    round: Round<u64>,
    tables: pb::PlacementTables,
}

#[derive(Default)]
struct Rounds {
    current: Option<Current>,
    /// The membership changed since the current round started.
    queued: bool,
}

struct State {
    options: Options,
    members: Members,
    connections: HashMap<u64, Connection>,
    next_id: u64,
    rounds: HashMap<String, Rounds>,
}

/// The placement service.
#[derive(Clone)]
pub struct PlacementService {
    state: Arc<Mutex<State>>,
}

impl PlacementService {
    /// The service, with a task that times out rounds while it lives.
    pub fn new(options: Options) -> Self {
        let state = Arc::new(Mutex::new(State {
            members: Members::new(options.replication_factor),
            options,
            connections: HashMap::new(),
            next_id: 0,
            rounds: HashMap::new(),
        }));
        tokio::spawn(watch_rounds(Arc::downgrade(&state)));
        Self { state }
    }

    /// The tonic service.
    pub fn server(self) -> pb::placement_server::PlacementServer<Self> {
        pb::placement_server::PlacementServer::new(self)
    }

    /// The tables of `namespace` now.
    pub fn tables(&self, namespace: &str) -> Tables {
        self.lock().members.tables(namespace)
    }

    /// Ends every runtime's stream (the service is stopping): each
    /// reconnects, to this placement restarted or another.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        for (_, connection) in state.connections.drain() {
            let _ = connection
                .orders
                .send(Err(Status::unavailable("placement is stopping")));
        }
    }

    /// Every runtime of every namespace, and the highest table version
    /// (daprd's `GET /placement/state`).
    pub fn reported(&self) -> (u64, Vec<crate::Reported>) {
        self.lock().members.reported()
    }

    /// The runtimes connected now.
    pub fn streams(&self) -> usize {
        self.lock().connections.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("placement state")
    }
}

/// Disconnects runtimes that let a phase time out, every tenth of the
/// timeout, until the service is gone.
async fn watch_rounds(state: Weak<Mutex<State>>) {
    loop {
        let every = match state.upgrade() {
            Some(state) => {
                let mut state = state.lock().expect("placement state");
                state.time_out(Instant::now());
                state.options.disseminate_timeout / 10
            }
            None => return,
        };
        tokio::time::sleep(every.max(Duration::from_millis(10))).await;
    }
}

impl State {
    fn open(&mut self, orders: Orders) -> u64 {
        self.next_id += 1;
        self.connections
            .insert(self.next_id, Connection { host: None, orders });
        self.next_id
    }

    fn receive(&mut self, id: u64, host: pb::Host, now: Instant) -> Result<(), Status> {
        let operation = pb::HostOperation::try_from(host.operation).unwrap_or_default();
        if let Some(phase) = crate::wire::acknowledged(operation) {
            let namespace = self
                .connections
                .get(&id)
                .and_then(|c| c.host.as_ref())
                .map(|(namespace, _)| namespace.clone())
                .ok_or_else(|| Status::failed_precondition("acknowledged before reporting"))?;
            let version = host.version.unwrap_or_default();
            self.on_round(&namespace, now, |round| round.ack(&id, phase, version, now));
            return Ok(());
        }
        if host.name.is_empty() {
            return Err(Status::invalid_argument("the host has no name"));
        }
        if host.id.is_empty() {
            return Err(Status::invalid_argument("the host has no app id"));
        }
        let key = (host.namespace.clone(), host.name.clone());
        let before = self.connections.get(&id).and_then(|c| c.host.clone());
        if let Some(before) = before.filter(|before| *before != key) {
            // It reports under another name: the old one leaves.
            self.leave(id, &before, now);
        }
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.host = Some(key.clone());
        }
        let changed = self.members.report(Host::from(host));
        if changed {
            self.rounds.entry(key.0.clone()).or_default().queued = true;
            self.drive(&key.0, now);
        }
        Ok(())
    }

    /// `id`'s stream ended, or was ended.
    fn close(&mut self, id: u64, now: Instant) {
        if let Some(Connection {
            host: Some(key), ..
        }) = self.connections.remove(&id)
        {
            self.leave(id, &key, now);
        }
    }

    fn leave(&mut self, id: u64, (namespace, name): &(String, String), now: Instant) {
        // Another stream may have taken the name over.
        let taken = self.connections.iter().any(|(other, c)| {
            *other != id
                && c.host
                    .as_ref()
                    .is_some_and(|h| h.0 == *namespace && h.1 == *name)
        });
        if !taken && self.members.leave(namespace, name) {
            self.rounds.entry(namespace.clone()).or_default().queued = true;
        }
        self.on_round(namespace, now, |round| round.gone(&id, now));
        self.drive(namespace, now);
    }

    /// Applies `event` to `namespace`'s round under way, if any, and acts
    /// on its progress.
    fn on_round(
        &mut self,
        namespace: &str,
        now: Instant,
        event: impl FnOnce(&mut Round<u64>) -> Progress<u64>,
    ) {
        let current = self
            .rounds
            .get_mut(namespace)
            .and_then(|r| r.current.as_mut());
        if let Some(progress) = current.map(|current| event(&mut current.round)) {
            self.progress(namespace, progress, now);
        }
    }

    fn progress(&mut self, namespace: &str, progress: Progress<u64>, now: Instant) {
        match progress {
            Progress::Send(phase, to) => {
                let Some(current) = self.rounds.get(namespace).and_then(|r| r.current.as_ref())
                else {
                    return;
                };
                let order = pb::PlacementOrder {
                    tables: (phase == Phase::Update).then(|| current.tables.clone()),
                    operation: phase.operation().to_owned(),
                    version: current.round.version(),
                };
                for id in to {
                    if let Some(connection) = self.connections.get(&id) {
                        let _ = connection.orders.send(Ok(order.clone()));
                    }
                }
            }
            Progress::Done => {
                if let Some(rounds) = self.rounds.get_mut(namespace) {
                    rounds.current = None;
                }
                self.drive(namespace, now);
            }
            Progress::Waiting | Progress::Ignored => {}
        }
    }

    /// Starts the next round of `namespace` when one is due and none runs.
    fn drive(&mut self, namespace: &str, now: Instant) {
        let rounds = self.rounds.entry(namespace.to_owned()).or_default();
        if rounds.current.is_some() || !rounds.queued {
            return;
        }
        rounds.queued = false;
        let members: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| c.host.as_ref().is_some_and(|(ns, _)| ns == namespace))
            .map(|(id, _)| *id)
            .collect();
        let tables = self.members.tables(namespace);
        let (round, progress) = Round::start(
            tables.version,
            members,
            now,
            self.options.disseminate_timeout,
        );
        if let Some(rounds) = self.rounds.get_mut(namespace) {
            let tables = crate::wire::tables(&tables);
            rounds.current = Some(Current { round, tables });
        }
        self.progress(namespace, progress, now);
    }

    /// Disconnects the runtimes that let a phase time out.
    fn time_out(&mut self, now: Instant) {
        let laggards: Vec<u64> = self
            .rounds
            .values()
            .filter_map(|r| r.current.as_ref())
            .flat_map(|current| current.round.laggards(now))
            .collect();
        for id in laggards {
            if let Some(connection) = self.connections.get(&id) {
                let _ = connection.orders.send(Err(Status::deadline_exceeded(
                    "a dissemination round was not acknowledged in time",
                )));
            }
            self.close(id, now);
        }
    }
}

#[tonic::async_trait]
impl pb::placement_server::Placement for PlacementService {
    async fn report_dapr_status(
        &self,
        request: Request<Streaming<pb::Host>>,
    ) -> Result<Response<BoxStream<pb::PlacementOrder>>, Status> {
        let mut inbound = request.into_inner();
        let (orders, outbound) = mpsc::unbounded_channel();
        let id = self.lock().open(orders);
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Some(message) = inbound.next().await {
                let mut state = state.lock().expect("placement state");
                if !state.connections.contains_key(&id) {
                    // Disconnected by placement.
                    return;
                }
                let received = message.and_then(|host| state.receive(id, host, Instant::now()));
                if let Err(status) = received {
                    if let Some(connection) = state.connections.get(&id) {
                        let _ = connection.orders.send(Err(status));
                    }
                    break;
                }
            }
            state
                .lock()
                .expect("placement state")
                .close(id, Instant::now());
        });
        let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(outbound);
        Ok(Response::new(Box::pin(stream)))
    }
}
