//! `GET /v1.0/metadata`, `PUT /v1.0/metadata/{key}`, gRPC `GetMetadata` and
//! `SetMetadata`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mecha_core::ApiError;
use mecha_pubsub::SubscriptionSpec;
use mecha_runtime::{AppHealthCheck, ComponentInfo};
use mecha_scheduler::SchedulerBlock;

use crate::Api;

/// How the runtime reaches its app, as the metadata API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppConnectionInfo {
    /// `None` when the runtime has no app (`--app-port` unset).
    pub port: Option<u16>,
    pub protocol: String,
    pub channel_address: String,
    pub max_concurrency: u32,
    pub health: Option<AppHealthCheck>,
}

/// Everything the metadata API reports; each adapter renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataSnapshot {
    pub id: String,
    pub runtime_version: String,
    pub enabled_features: Vec<String>,
    pub components: Vec<ComponentInfo>,
    pub extended: BTreeMap<String, String>,
    /// The running subscriptions.
    pub subscriptions: Vec<Arc<SubscriptionSpec>>,
    pub app_connection: AppConnectionInfo,
    /// `INITIALIZING` until the app's actor configuration is read, then
    /// `RUNNING` (`DISABLED` without an actor runtime).
    pub actor_runtime_status: &'static str,
    /// The actor types hosted here, with their active actors.
    pub active_actors: Vec<(String, usize)>,
    /// Whether this runtime hosts actor types and has placement's tables.
    pub host_ready: bool,
    /// `placement: connected` or `placement: disconnected`, as daprd.
    pub placement: String,
}

/// The actor runtime's part of the snapshot.
struct ActorsPart {
    actor_runtime_status: &'static str,
    active_actors: Vec<(String, usize)>,
    host_ready: bool,
    placement: String,
}

impl ActorsPart {
    fn disabled() -> Self {
        Self {
            actor_runtime_status: "DISABLED",
            active_actors: Vec::new(),
            host_ready: false,
            placement: String::new(),
        }
    }
}

impl Api {
    pub fn metadata(&self) -> MetadataSnapshot {
        let rt = self.runtime();
        let info = &rt.info;
        let mut extended = rt.extended();
        extended.insert("daprRuntimeVersion".into(), info.runtime_version.clone());
        // The scheduler's counts in this runtime, until the metrics publish
        // them.
        if let Some(scheduler) = rt.components().all::<SchedulerBlock>().next() {
            let counts = scheduler.counts();
            for (key, count) in [
                ("scheduler.jobsCreated", &counts.created),
                ("scheduler.jobsFired", &counts.fired),
                ("scheduler.jobsFailed", &counts.failed),
                ("scheduler.firesInFlight", &counts.in_flight),
                ("scheduler.lastFireDelayMs", &counts.last_delay_ms),
            ] {
                extended.insert(key.into(), count.load(Ordering::Relaxed).to_string());
            }
        }
        let app_connection = AppConnectionInfo {
            port: info.app.port,
            protocol: info.app.protocol.clone(),
            channel_address: info.app.channel_address.clone(),
            max_concurrency: info.app.max_concurrency.unwrap_or(0),
            health: info.app.health.clone(),
        };
        let actors = self.actor_metadata();
        MetadataSnapshot {
            id: info.app_id.clone(),
            runtime_version: info.runtime_version.clone(),
            enabled_features: info.enabled_features.clone(),
            components: rt.components().infos().to_vec(),
            extended,
            subscriptions: self.subscriptions().list(),
            app_connection,
            actor_runtime_status: actors.actor_runtime_status,
            active_actors: actors.active_actors,
            host_ready: actors.host_ready,
            placement: actors.placement,
        }
    }

    fn actor_metadata(&self) -> ActorsPart {
        let Some(actors) = self.shared.handles.actors.as_ref() else {
            return ActorsPart::disabled();
        };
        let placed = actors.placement();
        let mut active: Vec<(String, usize)> = actors.active();
        if actors.hosting() {
            for actor_type in &actors.config().entities {
                if !active.iter().any(|(t, _)| t == actor_type) {
                    active.push((actor_type.clone(), 0));
                }
            }
        }
        active.sort();
        ActorsPart {
            actor_runtime_status: if actors.is_configured() {
                "RUNNING"
            } else {
                "INITIALIZING"
            },
            active_actors: active,
            host_ready: actors.hosting() && placed.connected && placed.version > 0,
            placement: if placed.connected {
                "placement: connected"
            } else {
                "placement: disconnected"
            }
            .into(),
        }
    }

    /// Sets an extended attribute, reported under `extended`. An empty key
    /// sets nothing, and is no error, as in daprd.
    pub fn set_metadata(&self, key: &str, value: String) -> Result<(), ApiError> {
        if !key.is_empty() {
            self.runtime().set_extended(key.to_owned(), value);
        }
        Ok(())
    }
}
