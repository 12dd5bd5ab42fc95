//! The runtimes that host actors, per namespace, as placement keeps them:
//! a runtime reports itself (its address, app id and actor types) and is
//! removed when it leaves (its stream ends: HTTP/2 keep-alive ends the
//! stream of one that stops answering); every change of a namespace's
//! membership gives it a new table version, which placement then
//! disseminates in a round. A plain state machine: nothing here knows the
//! transport.

use std::collections::BTreeMap;

use crate::Ring;

/// A runtime as it reports itself (`dapr.proto.placement.v1.Host`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host {
    /// Its runtime-to-runtime address, `host:port`: its key on the ring.
    pub name: String,
    /// Its app id.
    pub id: String,
    pub namespace: String,
    /// The actor types it hosts.
    pub entities: Vec<String>,
}

#[derive(Default)]
struct Namespace {
    version: u64,
    /// Name → runtime, and when it last reported.
    members: BTreeMap<String, Reported>,
}

/// A runtime in placement's state page (`GET /placement/state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub host: Host,
    /// When it last reported (Unix nanoseconds).
    pub updated_at: i64,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// Every namespace's members and table version.
pub struct Members {
    namespaces: BTreeMap<String, Namespace>,
    replication_factor: usize,
}

/// The hosts of one actor type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub hosts: Vec<Host>,
}

/// A namespace's tables at one version (`PlacementTables`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub version: u64,
    pub replication_factor: usize,
    /// Actor type → its hosts.
    pub entries: BTreeMap<String, Table>,
}

impl Tables {
    /// The ring of `actor_type`, or `None` when no runtime hosts it.
    pub fn ring(&self, actor_type: &str) -> Option<Ring<Host>> {
        let table = self.entries.get(actor_type)?;
        Some(Ring::of(table.hosts.clone(), self.replication_factor))
    }
}

impl Ring<Host> {
    /// The ring of `hosts`, each placed by its name.
    pub fn of(hosts: Vec<Host>, replication_factor: usize) -> Self {
        Ring::new(hosts, replication_factor, |host: &Host| host.name.as_str())
    }
}

impl Members {
    pub fn new(replication_factor: usize) -> Self {
        Self {
            namespaces: BTreeMap::new(),
            replication_factor,
        }
    }

    /// Records a report of `host`. `true` when it changed the namespace's
    /// membership (a new runtime, or new actor types or app id for one
    /// already known); its table then has a new version.
    pub fn report(&mut self, mut host: Host) -> bool {
        host.entities.sort();
        host.entities.dedup();
        let namespace = self.namespaces.entry(host.namespace.clone()).or_default();
        let changed = namespace.members.get(&host.name).map(|r| &r.host) != Some(&host);
        let updated_at = now_nanos();
        namespace
            .members
            .insert(host.name.clone(), Reported { host, updated_at });
        if changed {
            namespace.version += 1;
        }
        changed
    }

    /// Removes the runtime `name` of `namespace`; `true` when it was there
    /// (its table then has a new version).
    pub fn leave(&mut self, namespace: &str, name: &str) -> bool {
        let Some(space) = self.namespaces.get_mut(namespace) else {
            return false;
        };
        let left = space.members.remove(name).is_some();
        if left {
            space.version += 1;
        }
        left
    }

    /// Every runtime of every namespace, and the highest table version.
    pub fn reported(&self) -> (u64, Vec<Reported>) {
        let version = self.namespaces.values().map(|n| n.version).max();
        let hosts = self
            .namespaces
            .values()
            .flat_map(|space| space.members.values().cloned())
            .collect();
        (version.unwrap_or(0), hosts)
    }

    /// The tables of `namespace` at its current version.
    pub fn tables(&self, namespace: &str) -> Tables {
        let mut tables = Tables {
            version: 0,
            replication_factor: self.replication_factor,
            entries: BTreeMap::new(),
        };
        let Some(space) = self.namespaces.get(namespace) else {
            return tables;
        };
        tables.version = space.version;
        for Reported { host, .. } in space.members.values() {
            for entity in &host.entities {
                tables
                    .entries
                    .entry(entity.clone())
                    .or_default()
                    .hosts
                    .push(host.clone());
            }
        }
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_REPLICATION_FACTOR;

    fn host(name: &str, namespace: &str, entities: &[&str]) -> Host {
        Host {
            name: name.into(),
            id: format!("app-{name}"),
            namespace: namespace.into(),
            entities: entities.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    #[test]
    fn reports_change_the_table_only_when_membership_changes() {
        let mut members = Members::new(DEFAULT_REPLICATION_FACTOR);
        assert!(members.report(host("a:1", "ns", &["Cart", "User"])));
        assert_eq!(members.tables("ns").version, 1);
        // A heartbeat with the same types (in another order) changes nothing.
        assert!(!members.report(host("a:1", "ns", &["User", "Cart"])));
        assert_eq!(members.tables("ns").version, 1);
        assert!(members.report(host("b:1", "ns", &["Cart"])));
        let tables = members.tables("ns");
        assert_eq!(tables.version, 2);
        assert_eq!(tables.replication_factor, DEFAULT_REPLICATION_FACTOR);
        let names = |t: &str| -> Vec<String> {
            tables.entries[t]
                .hosts
                .iter()
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(names("Cart"), ["a:1", "b:1"]);
        assert_eq!(names("User"), ["a:1"]);
        // New actor types are a change.
        assert!(members.report(host("b:1", "ns", &["Cart", "User"])));
        assert_eq!(members.tables("ns").version, 3);
    }

    #[test]
    fn namespaces_are_apart() {
        let mut members = Members::new(DEFAULT_REPLICATION_FACTOR);
        members.report(host("a:1", "one", &["Cart"]));
        members.report(host("b:1", "two", &["Cart"]));
        assert_eq!(members.tables("one").entries["Cart"].hosts.len(), 1);
        assert_eq!(members.tables("two").entries["Cart"].hosts[0].name, "b:1");
        assert!(members.leave("one", "a:1"));
        assert!(!members.leave("one", "a:1"));
        assert!(members.tables("one").entries.is_empty());
        assert_eq!(members.tables("one").version, 2, "versions never go back");
        assert_eq!(members.tables("two").version, 1);
        assert_eq!(
            members.tables("none"),
            Tables {
                version: 0,
                replication_factor: DEFAULT_REPLICATION_FACTOR,
                entries: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn tables_give_rings() {
        let mut members = Members::new(DEFAULT_REPLICATION_FACTOR);
        members.report(host("10.0.0.1:50002", "ns", &["Cart"]));
        members.report(host("10.0.0.2:50002", "ns", &["Cart"]));
        let tables = members.tables("ns");
        assert!(tables.ring("User").is_none());
        let ring = tables.ring("Cart").unwrap();
        // The owners daprd computes for these hosts (see ring.rs).
        assert_eq!(ring.owner("a").unwrap().name, "10.0.0.2:50002");
        assert_eq!(ring.owner("b").unwrap().name, "10.0.0.1:50002");
        assert_eq!(ring.owner("a").unwrap().id, "app-10.0.0.2:50002");
    }
}
