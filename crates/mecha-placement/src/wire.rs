//! Placement's types as `dapr.proto.placement.v1` carries them.

use mecha_proto::placement as pb;

use crate::{Host, Tables};

impl From<pb::Host> for Host {
    fn from(host: pb::Host) -> Self {
        Self {
            name: host.name,
            id: host.id,
            namespace: host.namespace,
            entities: host.entities,
        }
    }
}

impl From<&Host> for pb::Host {
    fn from(host: &Host) -> Self {
        Self {
            name: host.name.clone(),
            id: host.id.clone(),
            namespace: host.namespace.clone(),
            entities: host.entities.clone(),
            ..Self::default()
        }
    }
}

/// A namespace's tables as `update` carries them.
pub(crate) fn tables(tables: &Tables) -> pb::PlacementTables {
    let entries = tables
        .entries
        .iter()
        .map(|(actor_type, table)| {
            let load_map = table
                .hosts
                .iter()
                .map(|host| (host.name.clone(), pb::Host::from(host)))
                .collect();
            let table = pb::PlacementTable {
                load_map,
                ..pb::PlacementTable::default()
            };
            (actor_type.clone(), table)
        })
        .collect();
    pb::PlacementTables {
        entries,
        // For runtimes that read the version from the tables.
        version: tables.version.to_string(),
        api_level: 0,
        replication_factor: i64::try_from(tables.replication_factor).unwrap_or(i64::MAX),
    }
}
