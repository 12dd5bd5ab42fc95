//! The app's actor configuration, as it answers `GET /dapr/config` (the
//! SDKs' names), with daprd's defaults for what it leaves out.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// daprd's `actorIdleTimeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// daprd's `actorScanInterval` default.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest idle scan an app without `actorScanInterval` gets.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(100);
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorConfig {
    /// The actor types the app hosts, in its order.
    pub entities: Vec<String>,
    pub scan_interval: Duration,
    types: HashMap<String, TypeConfig>,
}

/// No actor types: nothing to scan for but at daprd's pace (an idle
/// runtime wakes no more often than that).
impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            entities: Vec::new(),
            scan_interval: DEFAULT_SCAN_INTERVAL,
            types: HashMap::new(),
        }
    }
}

/// Reentrancy as an app asks for it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Reentrancy {
    pub enabled: bool,
    pub max_stack_depth: Option<u32>,
}

/// What an app sets for all its types, or for some of them; `None` leaves
/// the default (or the app's setting for all types).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub idle_timeout: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    pub drain_rebalanced: Option<bool>,
    pub reentrancy: Option<Reentrancy>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireSettings {
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
    settings: WireSettings,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Wire {
    entities: Vec<String>,
    actor_scan_interval: Option<String>,
    entities_config: Vec<EntityConfig>,
    #[serde(flatten)]
    settings: WireSettings,
}

fn duration(field: &str, value: Option<&str>) -> Result<Option<Duration>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => mecha_core::units::parse_go_duration(text)
            .map(Some)
            .map_err(|err| format!("{field} {text:?}: {err}")),
    }
}

impl WireSettings {
    fn typed(&self) -> Result<Settings, String> {
        Ok(Settings {
            idle_timeout: duration("actorIdleTimeout", self.actor_idle_timeout.as_deref())?,
            drain_timeout: duration(
                "drainOngoingCallTimeout",
                self.drain_ongoing_call_timeout.as_deref(),
            )?,
            drain_rebalanced: self.drain_rebalanced_actors,
            reentrancy: self.reentrancy,
        })
    }
}

impl Settings {
    fn over(&self, base: &TypeConfig) -> TypeConfig {
        TypeConfig {
            idle_timeout: self.idle_timeout.unwrap_or(base.idle_timeout),
            drain_timeout: self.drain_timeout.unwrap_or(base.drain_timeout),
            drain_rebalanced: self.drain_rebalanced.unwrap_or(base.drain_rebalanced),
            reentrancy: match &self.reentrancy {
                None => base.reentrancy,
                Some(r) if r.enabled => {
                    Some(r.max_stack_depth.unwrap_or(DEFAULT_MAX_STACK_DEPTH).max(1))
                }
                Some(_) => None,
            },
        }
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
        let per_type = wire
            .entities_config
            .iter()
            .map(|entry| Ok((entry.entities.clone(), entry.settings.typed()?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self::new(
            wire.entities,
            duration("actorScanInterval", wire.actor_scan_interval.as_deref())?,
            &wire.settings.typed()?,
            &per_type,
        ))
    }

    /// The configuration of an app hosting `entities` with `settings`, and
    /// `per_type` settings over them for some types; idle actors are looked
    /// for every `scan_interval` (by default, every half of the shortest
    /// idle timeout, at most daprd's 30 s).
    pub fn new(
        mut entities: Vec<String>,
        scan_interval: Option<Duration>,
        settings: &Settings,
        per_type: &[(Vec<String>, Settings)],
    ) -> Self {
        let base = settings.over(&TypeConfig::defaults());
        let mut types: HashMap<String, TypeConfig> = entities
            .iter()
            .map(|entity| (entity.clone(), base.clone()))
            .collect();
        for (of, settings) in per_type {
            let config = settings.over(&base);
            for entity in of {
                types.insert(entity.clone(), config.clone());
            }
        }
        entities.retain(|e| !e.is_empty());
        let scan_interval = scan_interval.unwrap_or_else(|| {
            let shortest = types.values().map(|t| t.idle_timeout).min();
            shortest.map_or(DEFAULT_SCAN_INTERVAL, |idle| {
                (idle / 2).clamp(MIN_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)
            })
        });
        Self {
            entities,
            scan_interval,
            types,
        }
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
        assert_eq!(
            ActorConfig::default().scan_interval,
            DEFAULT_SCAN_INTERVAL,
            "no types: no scan more often than daprd's"
        );
        // Without a scan interval, idle actors are looked for often enough.
        let quick = ActorConfig::parse(br#"{"entities":["A"],"actorIdleTimeout":"2s"}"#).unwrap();
        assert_eq!(quick.scan_interval, Duration::from_secs(1));
        let slow = ActorConfig::parse(br#"{"entities":["A"]}"#).unwrap();
        assert_eq!(slow.scan_interval, DEFAULT_SCAN_INTERVAL);
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
