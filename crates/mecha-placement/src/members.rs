//! The runtimes that host actors, per namespace, as placement keeps them:
//! a runtime reports itself (its address, app id and actor types); one
//! that stops reporting, or leaves, is removed; every change of a
//! namespace's membership gives it a new table version, which placement
//! then disseminates in a round. A plain state machine: time is given, and
//! nothing here knows the transport.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

struct Member {
    host: Host,
    seen: Instant,
}

#[derive(Default)]
struct Namespace {
    version: u64,
    members: BTreeMap<String, Member>,
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
        Some(Ring::new(
            table.hosts.clone(),
            self.replication_factor,
            |host: &Host| host.name.as_str(),
        ))
    }
}

impl Members {
    pub fn new(replication_factor: usize) -> Self {
        Self {
            namespaces: BTreeMap::new(),
            replication_factor,
        }
    }

    /// Records a report of `host` at `now`. `true` when it changed the
    /// namespace's membership (a new runtime, or new actor types or app id
    /// for one already known); its table then has a new version.
    pub fn report(&mut self, mut host: Host, now: Instant) -> bool {
        host.entities.sort();
        host.entities.dedup();
        let namespace = self.namespaces.entry(host.namespace.clone()).or_default();
        let changed = match namespace.members.get_mut(&host.name) {
            Some(member) => {
                member.seen = now;
                let changed = member.host != host;
                member.host = host;
                changed
            }
            None => {
                namespace
                    .members
                    .insert(host.name.clone(), Member { host, seen: now });
                true
            }
        };
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

    /// Removes the runtimes that have not reported for `timeout` at `now`;
    /// the namespaces whose membership changed.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, space) in &mut self.namespaces {
            let before = space.members.len();
            space
                .members
                .retain(|_, member| now.saturating_duration_since(member.seen) < timeout);
            if space.members.len() != before {
                space.version += 1;
                changed.push(name.clone());
            }
        }
        changed
    }

    /// The runtimes of `namespace`, by name.
    pub fn hosts(&self, namespace: &str) -> Vec<&Host> {
        self.namespaces
            .get(namespace)
            .map(|space| space.members.values().map(|m| &m.host).collect())
            .unwrap_or_default()
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
        for member in space.members.values() {
            for entity in &member.host.entities {
                tables
                    .entries
                    .entry(entity.clone())
                    .or_default()
                    .hosts
                    .push(member.host.clone());
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
        let t0 = Instant::now();
        assert!(members.report(host("a:1", "ns", &["Cart", "User"]), t0));
        assert_eq!(members.tables("ns").version, 1);
        // A heartbeat with the same types (in another order) changes nothing.
        assert!(!members.report(host("a:1", "ns", &["User", "Cart"]), t0));
        assert_eq!(members.tables("ns").version, 1);
        assert!(members.report(host("b:1", "ns", &["Cart"]), t0));
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
        assert!(members.report(host("b:1", "ns", &["Cart", "User"]), t0));
        assert_eq!(members.tables("ns").version, 3);
    }

    #[test]
    fn namespaces_are_apart() {
        let mut members = Members::new(DEFAULT_REPLICATION_FACTOR);
        let t0 = Instant::now();
        members.report(host("a:1", "one", &["Cart"]), t0);
        members.report(host("b:1", "two", &["Cart"]), t0);
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
    fn silent_runtimes_expire() {
        let mut members = Members::new(DEFAULT_REPLICATION_FACTOR);
        let t0 = Instant::now();
        let timeout = Duration::from_secs(6);
        members.report(host("a:1", "ns", &["Cart"]), t0);
        members.report(host("b:1", "ns", &["Cart"]), t0);
        members.report(host("a:1", "ns", &["Cart"]), t0 + Duration::from_secs(4));
        assert!(
            members
                .expire(t0 + Duration::from_secs(5), timeout)
                .is_empty()
        );
        assert_eq!(members.expire(t0 + timeout, timeout), ["ns"]);
        let hosts: Vec<&str> = members
            .hosts("ns")
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(hosts, ["a:1"]);
        assert_eq!(members.tables("ns").version, 3);
    }

    #[test]
    fn tables_give_rings() {
        let mut members = Members::new(DEFAULT_REPLICATION_FACTOR);
        let t0 = Instant::now();
        members.report(host("10.0.0.1:50002", "ns", &["Cart"]), t0);
        members.report(host("10.0.0.2:50002", "ns", &["Cart"]), t0);
        let tables = members.tables("ns");
        assert!(tables.ring("User").is_none());
        let ring = tables.ring("Cart").unwrap();
        // The owners daprd computes for these hosts (see ring.rs).
        assert_eq!(ring.owner("a").unwrap().name, "10.0.0.2:50002");
        assert_eq!(ring.owner("b").unwrap().name, "10.0.0.1:50002");
        assert_eq!(ring.owner("a").unwrap().id, "app-10.0.0.2:50002");
    }
}
