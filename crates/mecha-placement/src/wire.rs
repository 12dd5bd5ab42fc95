//! Placement's types as `dapr.proto.placement.v1` carries them.

use mecha_proto::placement as pb;

use crate::{Host, Phase, Tables};

/// The acknowledgement of `phase`.
impl From<Phase> for pb::HostOperation {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Lock => Self::Lock,
            Phase::Update => Self::Update,
            Phase::Unlock => Self::Unlock,
        }
    }
}

/// The phase a runtime acknowledges, or `None` for a report.
pub(crate) fn acknowledged(operation: pb::HostOperation) -> Option<Phase> {
    match operation {
        pb::HostOperation::Lock => Some(Phase::Lock),
        pb::HostOperation::Update => Some(Phase::Update),
        pb::HostOperation::Unlock => Some(Phase::Unlock),
        pb::HostOperation::Report | pb::HostOperation::Unknown => None,
    }
}

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
