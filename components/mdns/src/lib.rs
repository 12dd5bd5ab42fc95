//! `nameresolution.mdns`: runtimes announce themselves with multicast DNS
//! on the LAN, as daprd's self-hosted default does. Every runtime uses one
//! service type, with its app id and namespace in TXT records; a background
//! browse keeps a table of the runtimes seen, so a lookup is a table read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use mecha_core::ComponentFactory;
use mecha_nameresolution::{NameResolver, Registration};

/// The service type every runtime announces.
pub const SERVICE_TYPE: &str = "_dapr._tcp.local.";
/// How long a lookup waits for the first announcements after start.
const WARM_UP: Duration = Duration::from_millis(1500);

pub const NAMERESOLUTION_MDNS: ComponentFactory<dyn NameResolver, ()> = ComponentFactory::new(
    "nameresolution.mdns",
    |_, _, _| (),
    |()| Box::pin(connect()),
);

async fn connect() -> anyhow::Result<Arc<dyn NameResolver>> {
    Ok(MdnsResolver::start()?)
}

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_nameresolution::NameResolutionBlock>(NAMERESOLUTION_MDNS);
}

#[derive(Clone, Debug)]
struct Seen {
    app_id: String,
    namespace: String,
    addresses: Vec<String>,
}

pub struct MdnsResolver {
    daemon: ServiceDaemon,
    /// Runtimes seen, by their full service instance name.
    table: Arc<Mutex<HashMap<String, Seen>>>,
    started: Instant,
    registered: Mutex<Option<String>>,
}

fn addresses(info: &mdns_sd::ResolvedService) -> Vec<String> {
    let port = info.get_port();
    let mut ips: Vec<IpAddr> = info
        .get_addresses()
        .iter()
        .map(|ip| ip.to_ip_addr())
        .collect();
    // IPv4 first, then the rest; loopback last unless it is all there is.
    ips.sort_by_key(|ip| (ip.is_loopback(), !ip.is_ipv4(), ip.to_string()));
    ips.into_iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        })
        .collect()
}

impl MdnsResolver {
    pub fn start() -> anyhow::Result<Arc<Self>> {
        let daemon = ServiceDaemon::new().map_err(|err| anyhow::anyhow!("mdns: {err}"))?;
        let events = daemon
            .browse(SERVICE_TYPE)
            .map_err(|err| anyhow::anyhow!("mdns: {err}"))?;
        let table: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let seen = table.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv_async().await {
                match event {
                    ServiceEvent::ServiceResolved(info) => {
                        let Some(app_id) = info.get_property_val_str("appid").map(str::to_owned)
                        else {
                            continue;
                        };
                        let namespace = info
                            .get_property_val_str("namespace")
                            .unwrap_or_default()
                            .to_owned();
                        let entry = Seen {
                            app_id,
                            namespace,
                            addresses: addresses(&info),
                        };
                        seen.lock()
                            .expect("lock")
                            .insert(info.get_fullname().to_owned(), entry);
                    }
                    ServiceEvent::ServiceRemoved(_, fullname) => {
                        seen.lock().expect("lock").remove(&fullname);
                    }
                    _ => {}
                }
            }
        });
        Ok(Arc::new(Self {
            daemon,
            table,
            started: Instant::now(),
            registered: Mutex::new(None),
        }))
    }

    fn lookup(&self, app_id: &str, namespace: &str) -> Vec<String> {
        let table = self.table.lock().expect("lock");
        let mut found: Vec<String> = table
            .values()
            .filter(|s| s.app_id == app_id && s.namespace == namespace)
            .filter_map(|s| s.addresses.first().cloned())
            .collect();
        found.sort();
        found
    }
}

#[async_trait]
impl NameResolver for MdnsResolver {
    async fn register(&self, registration: &Registration) -> anyhow::Result<()> {
        let instance = format!(
            "{}-{}",
            registration.app_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let host = format!("{instance}.local.");
        let namespace = registration.namespace.clone().unwrap_or_default();
        let properties = [
            ("appid", registration.app_id.as_str()),
            ("namespace", namespace.as_str()),
        ];
        let ip = registration.host.clone().unwrap_or_default();
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &host,
            ip.as_str(),
            registration.port,
            &properties[..],
        )
        .map_err(|err| anyhow::anyhow!("mdns: {err}"))?;
        if registration.host.is_none() {
            info = info.enable_addr_auto();
        }
        let fullname = info.get_fullname().to_owned();
        self.daemon
            .register(info)
            .map_err(|err| anyhow::anyhow!("mdns: {err}"))?;
        *self.registered.lock().expect("lock") = Some(fullname);
        Ok(())
    }

    async fn resolve(&self, app_id: &str, namespace: Option<&str>) -> anyhow::Result<Vec<String>> {
        let namespace = namespace.unwrap_or_default();
        loop {
            let found = self.lookup(app_id, namespace);
            if !found.is_empty() || self.started.elapsed() >= WARM_UP {
                return Ok(found);
            }
            // Just started: announcements are still arriving.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn close(&self) -> anyhow::Result<()> {
        let fullname = self.registered.lock().expect("lock").take();
        if let Some(fullname) = fullname {
            let done = self
                .daemon
                .unregister(&fullname)
                .map_err(|err| anyhow::anyhow!("mdns: {err}"))?;
            let _ = tokio::time::timeout(Duration::from_secs(2), done.recv_async()).await;
        }
        Ok(())
    }
}

impl Drop for MdnsResolver {
    fn drop(&mut self) {
        if let Some(fullname) = self.registered.lock().expect("lock").take() {
            let _ = self.daemon.unregister(&fullname);
        }
        let _ = self.daemon.shutdown();
    }
}
