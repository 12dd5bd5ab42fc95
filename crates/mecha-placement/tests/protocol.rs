//! The placement service over real gRPC streams on loopback, as runtimes
//! speak to it (daprd 1.18's protocol): reports, acknowledged rounds,
//! runtimes that leave, and one that never acknowledges.

use std::time::Duration;

use mecha_placement::{Embedded, Host, Lookup, Options, Placement, PlacementService, Ring};
use mecha_proto::placement as pb;
use pb::placement_client::PlacementClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::Streaming;

/// Long enough for any answer on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// A placement service on loopback, stopped when dropped.
struct Served {
    port: u16,
    service: PlacementService,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Serves placement on `port` (0: any).
async fn serve_on(options: Options, port: u16) -> Served {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = PlacementService::new(options);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.clone().server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stopped.await;
            }),
    );
    Served {
        port,
        service,
        stop: Some(stop),
        task,
    }
}

async fn serve(options: Options) -> Served {
    serve_on(options, 0).await
}

impl Served {
    /// Stops the service as `mecha placement` does on SIGTERM.
    async fn stop(mut self) {
        self.service.shutdown();
        let _ = self.stop.take().map(|stop| stop.send(()));
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// A runtime's end of the stream.
struct Runtime {
    name: String,
    to: mpsc::Sender<pb::Host>,
    from: Streaming<pb::PlacementOrder>,
}

impl Runtime {
    async fn connect(port: u16, name: &str, namespace: &str, entities: &[&str]) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = PlacementClient::new(channel);
        let (to, outbound) = mpsc::channel(16);
        to.send(pb::Host {
            name: name.into(),
            id: format!("app-{name}"),
            namespace: namespace.into(),
            entities: entities.iter().map(|e| (*e).to_owned()).collect(),
            api_level: 20,
            operation: pb::HostOperation::Report as i32,
            ..pb::Host::default()
        })
        .await
        .unwrap();
        let from = client
            .report_dapr_status(ReceiverStream::new(outbound))
            .await
            .unwrap()
            .into_inner();
        Self {
            name: name.into(),
            to,
            from,
        }
    }

    async fn next(&mut self) -> pb::PlacementOrder {
        tokio::time::timeout(PATIENCE, self.from.message())
            .await
            .expect("an order in time")
            .expect("the stream stays up")
            .expect("the stream stays open")
    }

    async fn expect(&mut self, operation: &str) -> pb::PlacementOrder {
        let order = self.next().await;
        assert_eq!(order.operation, operation, "{}: {order:?}", self.name);
        order
    }

    async fn ack(&self, operation: pb::HostOperation, version: u64) {
        self.to
            .send(pb::Host {
                operation: operation as i32,
                version: Some(version),
                ..pb::Host::default()
            })
            .await
            .unwrap();
    }

    /// Takes part in a whole round: the tables it installs.
    async fn round(&mut self) -> (u64, pb::PlacementTables) {
        let version = self.expect("lock").await.version;
        self.ack(pb::HostOperation::Lock, version).await;
        let update = self.expect("update").await;
        assert_eq!(update.version, version);
        self.ack(pb::HostOperation::Update, version).await;
        assert_eq!(self.expect("unlock").await.version, version);
        self.ack(pb::HostOperation::Unlock, version).await;
        (version, update.tables.expect("update carries the tables"))
    }
}

fn hosts_of(tables: &pb::PlacementTables, actor_type: &str) -> Vec<String> {
    let mut hosts: Vec<String> = tables.entries[actor_type]
        .load_map
        .keys()
        .cloned()
        .collect();
    hosts.sort();
    hosts
}

#[tokio::test]
async fn rounds_go_phase_by_phase_once_every_runtime_acknowledges() {
    let placement = serve(Options::default()).await;
    let port = placement.port;
    let mut a = Runtime::connect(port, "10.0.0.1:50002", "ns", &["Cart"]).await;
    let (first, tables) = a.round().await;
    assert_eq!(hosts_of(&tables, "Cart"), ["10.0.0.1:50002"]);
    assert_eq!(tables.replication_factor, 100);

    let mut b = Runtime::connect(port, "10.0.0.2:50002", "ns", &["Cart", "User"]).await;
    let lock = a.expect("lock").await;
    assert!(lock.version > first);
    assert_eq!(b.expect("lock").await.version, lock.version);
    a.ack(pb::HostOperation::Lock, lock.version).await;
    // An acknowledgement of another version does not count for b.
    b.ack(pb::HostOperation::Lock, lock.version + 1).await;
    b.ack(pb::HostOperation::Lock, lock.version).await;
    // Only now, after both, comes the update: the first order a sees after
    // its own acknowledgement.
    let update = a.expect("update").await;
    assert_eq!(b.expect("update").await, update);
    let tables = update.tables.unwrap();
    assert_eq!(
        hosts_of(&tables, "Cart"),
        ["10.0.0.1:50002", "10.0.0.2:50002"]
    );
    assert_eq!(hosts_of(&tables, "User"), ["10.0.0.2:50002"]);
    assert_eq!(
        tables.entries["User"].load_map["10.0.0.2:50002"].id,
        "app-10.0.0.2:50002"
    );
    // Both build the same ring from the table: daprd's owners.
    let names: Vec<String> = hosts_of(&tables, "Cart");
    let ring = Ring::new(names, tables.replication_factor as usize, String::as_str);
    assert_eq!(ring.owner("a").unwrap(), "10.0.0.2:50002");
    assert_eq!(ring.owner("actor-1").unwrap(), "10.0.0.1:50002");
    for runtime in [&a, &b] {
        runtime.ack(pb::HostOperation::Update, update.version).await;
    }
    assert_eq!(a.expect("unlock").await.version, update.version);
    assert_eq!(b.expect("unlock").await.version, update.version);
}

#[tokio::test]
async fn a_runtime_that_leaves_is_taken_out_of_the_tables() {
    let placement = serve(Options::default()).await;
    let port = placement.port;
    let mut a = Runtime::connect(port, "a:1", "ns", &["Cart"]).await;
    a.round().await;
    let mut b = Runtime::connect(port, "b:1", "ns", &["Cart"]).await;
    let (round_a, round_b) = tokio::join!(a.round(), b.round());
    assert_eq!(round_a, round_b);
    assert_eq!(hosts_of(&round_a.1, "Cart"), ["a:1", "b:1"]);
    drop(b);
    let (version, tables) = a.round().await;
    assert!(version > round_a.0);
    assert_eq!(hosts_of(&tables, "Cart"), ["a:1"]);
}

#[tokio::test]
async fn a_runtime_that_never_acknowledges_is_disconnected_and_the_round_goes_on() {
    let timeout = Duration::from_millis(500);
    let placement = serve(Options {
        disseminate_timeout: timeout,
        ..Options::default()
    })
    .await;
    let port = placement.port;
    let mut a = Runtime::connect(port, "a:1", "ns", &["Cart"]).await;
    a.round().await;
    let mut silent = Runtime::connect(port, "silent:1", "ns", &["Cart"]).await;
    let lock = a.expect("lock").await;
    assert_eq!(silent.expect("lock").await.version, lock.version);
    a.ack(pb::HostOperation::Lock, lock.version).await;
    // The silent runtime is cut off once the phase times out.
    let cut = tokio::time::timeout(PATIENCE, silent.from.message())
        .await
        .expect("cut off in time")
        .expect_err("an error ends its stream");
    assert_eq!(cut.code(), tonic::Code::DeadlineExceeded);
    // a finishes the round it was in (its tables as they were when it
    // started), then gets the next one, without the silent runtime.
    let update = a.expect("update").await;
    assert_eq!(update.version, lock.version);
    a.ack(pb::HostOperation::Update, lock.version).await;
    a.expect("unlock").await;
    a.ack(pb::HostOperation::Unlock, lock.version).await;
    let (version, tables) = a.round().await;
    assert!(version > lock.version);
    assert_eq!(hosts_of(&tables, "Cart"), ["a:1"]);
}

#[tokio::test]
async fn namespaces_have_rounds_of_their_own() {
    let placement = serve(Options::default()).await;
    let port = placement.port;
    let mut one = Runtime::connect(port, "a:1", "one", &["Cart"]).await;
    one.round().await;
    let mut two = Runtime::connect(port, "b:1", "two", &["Cart"]).await;
    let (_, tables) = two.round().await;
    assert_eq!(hosts_of(&tables, "Cart"), ["b:1"]);
    // A change in namespace two starts no round in one: the next order
    // one gets is for its own change.
    let _three = Runtime::connect(port, "c:1", "one", &["Cart"]).await;
    let lock = one.expect("lock").await;
    one.ack(pb::HostOperation::Lock, lock.version).await;
    // (c never acknowledges; the default timeout is long, so one waits.)
    assert!(
        tokio::time::timeout(Duration::from_millis(300), one.next())
            .await
            .is_err(),
        "no update before every runtime acknowledged the lock"
    );
}

#[tokio::test]
async fn a_report_without_a_name_or_app_id_is_refused() {
    let placement = serve(Options::default()).await;
    let port = placement.port;
    let mut nameless = Runtime::connect(port, "", "ns", &["Cart"]).await;
    let refused = tokio::time::timeout(PATIENCE, nameless.from.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

fn reporting(name: &str) -> Host {
    Host {
        name: name.into(),
        id: format!("app-{name}"),
        namespace: "ns".into(),
        entities: vec!["Cart".into()],
    }
}

/// Waits for `condition`, within [`PATIENCE`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn owners(runtime: &Placement) -> Vec<Lookup> {
    (0..200)
        .map(|id| runtime.lookup("Cart", &format!("actor-{id}")))
        .collect()
}

#[tokio::test]
async fn runtimes_agree_keep_their_tables_while_placement_is_away_and_rejoin() {
    let placement = serve(Options::default()).await;
    let port = placement.port;
    let address = format!("http://127.0.0.1:{port}");
    let a = Placement::start(address.clone(), reporting("a:1"));
    let b = Placement::start(address.clone(), reporting("b:1"));
    assert_eq!(a.lookup("Cart", "x"), Lookup::NotReady);
    let both = |service: &PlacementService, runtimes: &[&Placement]| {
        let tables = service.tables("ns");
        tables
            .entries
            .get("Cart")
            .is_some_and(|t| t.hosts.len() == 2)
            && runtimes
                .iter()
                .all(|r| r.status().version == tables.version)
    };
    eventually("both in both tables", || {
        both(&placement.service, &[&a, &b])
    })
    .await;
    let seen = owners(&a);
    assert_eq!(seen, owners(&b), "one owner per actor");
    let hosts: std::collections::BTreeSet<String> = seen
        .iter()
        .map(|lookup| match lookup {
            Lookup::Owner(host) => host.name.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(hosts.into_iter().collect::<Vec<_>>(), ["a:1", "b:1"]);
    assert_eq!(a.lookup("User", "x"), Lookup::NoHost);

    // Placement goes away: lookups answer from the tables installed.
    placement.stop().await;
    eventually("a sees placement gone", || !a.status().connected).await;
    assert_eq!(owners(&a), seen);

    // It returns, without its state: both report again, and agree again.
    let placement = serve_on(Options::default(), port).await;
    eventually("both rejoined", || {
        both(&placement.service, &[&a, &b]) && a.status().connected && b.status().connected
    })
    .await;
    assert_eq!(owners(&a), seen);
    assert_eq!(owners(&b), seen);

    // A runtime dropped leaves: the other owns every actor.
    drop(b);
    eventually("b left", || {
        placement.service.tables("ns").entries["Cart"].hosts.len() == 1
            && a.status().version == placement.service.tables("ns").version
    })
    .await;
    assert!(
        owners(&a)
            .iter()
            .all(|lookup| matches!(lookup, Lookup::Owner(h) if h.name == "a:1"))
    );
}

fn owned_by(runtime: &Placement, name: &str) -> bool {
    owners(runtime)
        .iter()
        .all(|lookup| matches!(lookup, Lookup::Owner(host) if host.name == name))
}

#[tokio::test]
async fn the_runtimes_of_a_host_share_an_embedded_placement_and_one_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let one = Embedded::new(dir.path(), Options::default());
    let two = Embedded::new(dir.path(), Options::default());
    let a = Placement::start_with(one.resolver(), reporting("a:1"));
    let b = Placement::start_with(two.resolver(), reporting("b:1"));
    eventually("both placed, in agreement", || {
        let seen = owners(&a);
        seen == owners(&b)
            && !owned_by(&a, "a:1")
            && !owned_by(&a, "b:1")
            && !seen.contains(&Lookup::NotReady)
    })
    .await;
    assert!(one.serves() != two.serves(), "exactly one serves");

    // The runtime that serves dies: the other takes placement over.
    let (dead, dead_runtime, survivor, placed, name) = if one.serves() {
        (one, a, two, b, "b:1")
    } else {
        (two, b, one, a, "a:1")
    };
    drop(dead_runtime);
    dead.stop().await;
    drop(dead);
    eventually("the survivor serves and owns every actor", || {
        survivor.serves() && placed.status().connected && owned_by(&placed, name)
    })
    .await;
}
