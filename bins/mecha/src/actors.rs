//! Placement for the actor runtime: `mecha_actors::Placing` over
//! `mecha_placement`'s client, reporting to `--placement-host-address`, or
//! else to the host's embedded placement in the data directory.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use mecha_actors::{ActorRef, Located, PlacementStatus, Placing, Rebalance};
use mecha_placement::{Embedded, Host, Lookup, OnUpdate, Options, Placement, Resolve};

/// Where placement is.
enum Source {
    Address(String),
    Embedded(Arc<Embedded>),
}

/// This runtime's placement, joined once the app says what it hosts.
pub struct PlacementSeam {
    source: Source,
    app_id: String,
    namespace: String,
    /// This runtime's internal address as placement names it (`ip:port`),
    /// known once the internal port is bound.
    name: OnceLock<String>,
    placement: OnceLock<Placement>,
}

impl PlacementSeam {
    /// Placement at `addresses` (the first; daprd's Raft peers are not
    /// there yet), or the host's embedded one in `data_dir`.
    pub fn new(
        addresses: &[String],
        data_dir: &Path,
        app_id: &str,
        namespace: Option<&str>,
    ) -> Self {
        let source = match addresses.first() {
            Some(address) if address.contains("://") => Source::Address(address.clone()),
            Some(address) => Source::Address(format!("http://{address}")),
            None => Source::Embedded(Embedded::new(data_dir, Options::default())),
        };
        Self {
            source,
            app_id: app_id.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: OnceLock::new(),
            placement: OnceLock::new(),
        }
    }

    /// Records the internal address placement will name this runtime by.
    pub fn set_address(&self, ip: IpAddr, port: u16) {
        let ip = advertised(ip);
        let _ = self.name.set(match ip {
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("{v4}:{port}"),
        });
    }

    fn own_name(&self) -> &str {
        self.name.get().map_or("", String::as_str)
    }

    fn resolve(&self) -> Resolve {
        match &self.source {
            Source::Address(address) => {
                let address = address.clone();
                Arc::new(move || {
                    let address = address.clone();
                    Box::pin(async move { Ok(address) })
                })
            }
            Source::Embedded(embedded) => embedded.resolver(),
        }
    }
}

/// The address others reach an internal port bound on `ip` at: `ip`
/// itself, unless it is unspecified (every interface): then `DAPR_HOST_IP`
/// as daprd reads it, else the address of the default route.
fn advertised(ip: IpAddr) -> IpAddr {
    if !ip.is_unspecified() {
        return ip;
    }
    if let Some(ip) = std::env::var("DAPR_HOST_IP")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    // A UDP socket "connected" to any outside address sends nothing, and
    // says which local address the route to it leaves from.
    std::net::UdpSocket::bind(("0.0.0.0", 0))
        .and_then(|socket| {
            socket.connect(("192.0.2.1", 9))?;
            socket.local_addr()
        })
        .map(|address| address.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[async_trait]
impl Placing for PlacementSeam {
    fn join(&self, entities: Vec<String>, rebalance: Arc<dyn Rebalance>) {
        if let Some(placement) = self.placement.get() {
            // Joined before (a caller's first actor call): the types now.
            placement.report(entities);
            return;
        }
        self.placement.get_or_init(|| {
            let host = Host {
                name: self.own_name().to_owned(),
                id: self.app_id.clone(),
                namespace: self.namespace.clone(),
                entities,
            };
            let on_update: OnUpdate = Arc::new(move || {
                let rebalance = rebalance.clone();
                Box::pin(async move { rebalance.tables_changed().await })
            });
            Placement::start_hooked(self.resolve(), host, Some(on_update))
        });
    }

    fn lookup(&self, actor: &ActorRef) -> Located {
        let Some(placement) = self.placement.get() else {
            return Located::NotReady;
        };
        match placement.lookup(&actor.actor_type, &actor.actor_id) {
            Lookup::Owner(host) if host.name == self.own_name() => Located::Local,
            Lookup::Owner(host) => Located::Remote {
                address: host.name,
                app_id: host.id,
            },
            Lookup::NoHost => Located::NoHost,
            Lookup::NotReady => Located::NotReady,
        }
    }

    async fn settled(&self, actor: &ActorRef, limit: Duration) {
        if let Some(placement) = self.placement.get() {
            placement
                .settled(&actor.actor_type, &actor.actor_id, limit)
                .await;
        }
    }

    async fn leave(&self, limit: Duration) {
        if let Some(placement) = self.placement.get() {
            placement.set_entities(Vec::new(), limit).await;
        }
    }

    fn status(&self) -> PlacementStatus {
        let Some(placement) = self.placement.get() else {
            return PlacementStatus::default();
        };
        let placed = placement.status();
        PlacementStatus {
            joined: true,
            connected: placed.connected,
            version: placed.version,
        }
    }
}
