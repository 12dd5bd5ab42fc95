//! The app's actor configuration, as it answers `GET /dapr/config` (the
//! SDKs' names), with daprd's defaults for what it leaves out.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// daprd's `actorIdleTimeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// daprd's `actorScanInterval` default.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(30);
/// daprd's `drainOngoingCallTimeout` default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// daprd's reentrancy `maxStackDepth` default.
pub const DEFAULT_MAX_STACK_DEPTH: u32 = 32;

/// What one actor type is hosted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeConfig {
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub drain_rebalanced: bool,
    /// The maximum stack depth when reentrancy is on.
    pub reentrancy: Option<u32>,
}

/// The app's actor configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActorConfig {
    /// The actor types the app hosts, in its order.
    pub entities: Vec<String>,
    pub scan_interval: Duration,
    types: HashMap<String, TypeConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Reentrancy {
    enabled: bool,
    max_stack_depth: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Settings {
    actor_idle_timeout: Option<String>,
    drain_ongoing_call_timeout: Option<String>,
    drain_rebalanced_actors: Option<bool>,
    reentrancy: Option<Reentrancy>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EntityConfig {
    entities: Vec<String>,
    #[serde(flatten)]
    settings: Settings,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Wire {
    entities: Vec<String>,
    actor_scan_interval: Option<String>,
    entities_config: Vec<EntityConfig>,
    #[serde(flatten)]
    settings: Settings,
}

fn duration(field: &str, value: Option<&str>, default: Duration) -> Result<Duration, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => mecha_core::units::parse_go_duration(text)
            .map_err(|err| format!("{field} {text:?}: {err}")),
    }
}

impl Settings {
    fn over(&self, base: &TypeConfig) -> Result<TypeConfig, String> {
        Ok(TypeConfig {
            idle_timeout: duration(
                "actorIdleTimeout",
                self.actor_idle_timeout.as_deref(),
                base.idle_timeout,
            )?,
            drain_timeout: duration(
                "drainOngoingCallTimeout",
                self.drain_ongoing_call_timeout.as_deref(),
                base.drain_timeout,
            )?,
            drain_rebalanced: self
                .drain_rebalanced_actors
                .unwrap_or(base.drain_rebalanced),
            reentrancy: match &self.reentrancy {
                None => base.reentrancy,
                Some(r) if r.enabled => {
                    Some(r.max_stack_depth.unwrap_or(DEFAULT_MAX_STACK_DEPTH).max(1))
                }
                Some(_) => None,
            },
        })
    }
}

impl TypeConfig {
    fn defaults() -> Self {
        Self {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_rebalanced: true,
            reentrancy: None,
        }
    }
}

impl ActorConfig {
    /// Reads the app's answer to `GET /dapr/config`.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let wire: Wire =
            serde_json::from_slice(json).map_err(|err| format!("not the JSON expected: {err}"))?;
        let base = wire.settings.over(&TypeConfig::defaults())?;
        let mut types: HashMap<String, TypeConfig> = wire
            .entities
            .iter()
            .map(|entity| (entity.clone(), base.clone()))
            .collect();
        for entry in &wire.entities_config {
            let config = entry.settings.over(&base)?;
            for entity in &entry.entities {
                types.insert(entity.clone(), config.clone());
            }
        }
        let mut entities = wire.entities;
        entities.retain(|e| !e.is_empty());
        Ok(Self {
            entities,
            scan_interval: duration(
                "actorScanInterval",
                wire.actor_scan_interval.as_deref(),
                DEFAULT_SCAN_INTERVAL,
            )?,
            types,
        })
    }

    /// Whether the app hosts `actor_type`.
    pub fn hosts(&self, actor_type: &str) -> bool {
        self.entities.iter().any(|e| e == actor_type)
    }

    /// How `actor_type` is hosted.
    pub fn of(&self, actor_type: &str) -> TypeConfig {
        self.types
            .get(actor_type)
            .cloned()
            .unwrap_or_else(TypeConfig::defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_sdks_send_with_daprd_defaults() {
        let config = ActorConfig::parse(
            br#"{"entities":["Cart","Order"],"actorIdleTimeout":"1m","actorScanInterval":"10s",
                "drainOngoingCallTimeout":"5s","drainRebalancedActors":false,
                "reentrancy":{"enabled":true,"maxStackDepth":4},
                "entitiesConfig":[{"entities":["Order"],"actorIdleTimeout":"2h",
                                   "reentrancy":{"enabled":false}}]}"#,
        )
        .unwrap();
        assert_eq!(config.entities, ["Cart", "Order"]);
        assert_eq!(config.scan_interval, Duration::from_secs(10));
        assert_eq!(
            config.of("Cart"),
            TypeConfig {
                idle_timeout: Duration::from_secs(60),
                drain_timeout: Duration::from_secs(5),
                drain_rebalanced: false,
                reentrancy: Some(4),
            }
        );
        let order = config.of("Order");
        assert_eq!(order.idle_timeout, Duration::from_secs(7200));
        assert_eq!(order.reentrancy, None);
        assert_eq!(order.drain_timeout, Duration::from_secs(5));
        assert!(config.hosts("Order") && !config.hosts("Other"));

        let empty = ActorConfig::parse(b"{}").unwrap();
        assert!(empty.entities.is_empty());
        assert_eq!(empty.scan_interval, DEFAULT_SCAN_INTERVAL);
        assert_eq!(empty.of("X").idle_timeout, DEFAULT_IDLE_TIMEOUT);
    }

    #[test]
    fn refuses_bad_durations_and_bad_json() {
        assert!(
            ActorConfig::parse(br#"{"actorIdleTimeout":"soon"}"#)
                .unwrap_err()
                .contains("actorIdleTimeout")
        );
        assert!(ActorConfig::parse(b"<html>").is_err());
    }
}
