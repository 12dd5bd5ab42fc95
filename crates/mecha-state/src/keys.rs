//! Dapr's key prefixes: the stored key is `prefix||key`, where the prefix
//! follows the component's `keyPrefix` metadata.

use mecha_core::limits::MAX_KEY_BYTES;

use crate::types::StateError;

/// The separator between a key prefix and the key.
pub const SEPARATOR: &str = "||";

/// The `keyPrefix` strategy of a state component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `{appId}||key` (Dapr's default).
    #[default]
    AppId,
    /// `{storeName}||key`.
    Name,
    /// `{namespace}.{appId}||key`, or the app id when no namespace is set.
    Namespace,
    /// The raw key.
    None,
    /// A literal prefix.
    Custom(String),
}

impl KeyPrefix {
    /// Parses the `keyPrefix` metadata value. As in daprd the value is
    /// lowercased: keywords match in any case, and any other string is a
    /// literal prefix in lower case (so daprd and Mecha store the same keys).
    pub fn parse(value: Option<&str>) -> Result<Self, StateError> {
        let Some(value) = value.filter(|value| !value.is_empty()) else {
            return Ok(Self::AppId);
        };
        Ok(match value.to_ascii_lowercase().as_str() {
            "appid" => Self::AppId,
            "name" => Self::Name,
            "namespace" => Self::Namespace,
            "none" => Self::None,
            _ => {
                if value.contains(SEPARATOR) {
                    return Err(StateError::IllegalKey(value.to_owned()));
                }
                Self::Custom(value.to_ascii_lowercase())
            }
        })
    }

    /// Resolves the strategy for one store into a concrete scheme.
    pub fn scheme(&self, app_id: &str, store_name: &str, namespace: Option<&str>) -> KeyScheme {
        let prefix = match self {
            Self::AppId => Some(app_id.to_owned()),
            Self::Name => Some(store_name.to_owned()),
            Self::Namespace => match namespace.filter(|ns| !ns.is_empty()) {
                Some(ns) => Some(format!("{ns}.{app_id}")),
                None => Some(app_id.to_owned()),
            },
            Self::None => None,
            Self::Custom(prefix) => Some(prefix.clone()),
        };
        KeyScheme {
            prefix: prefix.filter(|prefix| !prefix.is_empty()),
        }
    }
}

/// A resolved key prefix: turns an app's key into the stored key and back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyScheme {
    prefix: Option<String>,
}

impl KeyScheme {
    /// The scheme that stores keys as they are.
    pub fn raw() -> Self {
        Self { prefix: None }
    }

    /// The scheme that stores keys under `prefix` (such as an actor's
    /// `{appId}||{type}||{id}`).
    pub fn prefixed(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self {
            prefix: Some(prefix).filter(|prefix| !prefix.is_empty()),
        }
    }

    /// Validates an app's key and returns the stored key.
    pub fn stored_key(&self, key: &str) -> Result<String, StateError> {
        if key.is_empty() {
            return Err(StateError::EmptyKey);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(StateError::KeyTooLong(MAX_KEY_BYTES));
        }
        if key.contains(SEPARATOR) {
            return Err(StateError::IllegalKey(key.to_owned()));
        }
        if key.contains('\0') {
            return Err(StateError::KeyWithNul);
        }
        Ok(match &self.prefix {
            Some(prefix) => format!("{prefix}{SEPARATOR}{key}"),
            None => key.to_owned(),
        })
    }

    /// What every stored key of this scheme starts with (the prefix and its
    /// separator), or `None` when keys are stored raw.
    pub fn stored_prefix(&self) -> Option<String> {
        self.prefix
            .as_ref()
            .map(|prefix| format!("{prefix}{SEPARATOR}"))
    }

    /// The app's key for a stored key (the prefix removed).
    pub fn app_key<'a>(&self, stored: &'a str) -> &'a str {
        match &self.prefix {
            Some(prefix) => stored
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix(SEPARATOR))
                .unwrap_or(stored),
            None => stored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strategies() {
        let scheme = |prefix: &str, ns: Option<&str>| {
            KeyPrefix::parse(Some(prefix))
                .unwrap()
                .scheme("app", "store", ns)
                .stored_key("k")
                .unwrap()
        };
        assert_eq!(scheme("appid", None), "app||k");
        assert_eq!(scheme("", None), "app||k");
        assert_eq!(scheme("name", None), "store||k");
        assert_eq!(scheme("namespace", Some("prod")), "prod.app||k");
        assert_eq!(scheme("namespace", None), "app||k");
        assert_eq!(scheme("none", None), "k");
        assert_eq!(scheme("NONE", None), "k");
        assert_eq!(scheme("custom", None), "custom||k");
        assert_eq!(scheme("MyApp", None), "myapp||k");
        assert!(KeyPrefix::parse(Some("a||b")).is_err());
    }

    #[test]
    fn keys_beyond_the_ceiling_are_refused() {
        let scheme = KeyPrefix::AppId.scheme("app", "store", None);
        assert!(scheme.stored_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(matches!(
            scheme.stored_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(StateError::KeyTooLong(MAX_KEY_BYTES))
        ));
        assert!(matches!(
            scheme.stored_key("a\0b"),
            Err(StateError::KeyWithNul)
        ));
    }

    #[test]
    fn empty_app_id_means_no_prefix() {
        let scheme = KeyPrefix::AppId.scheme("", "store", None);
        assert_eq!(scheme.stored_key("k").unwrap(), "k");
    }

    #[test]
    fn illegal_keys() {
        let scheme = KeyPrefix::AppId.scheme("app", "s", None);
        assert!(matches!(scheme.stored_key(""), Err(StateError::EmptyKey)));
        assert!(matches!(
            scheme.stored_key("a||b"),
            Err(StateError::IllegalKey(_))
        ));
    }

    proptest! {
        #[test]
        fn prefix_round_trips(key in "\\PC{1,40}", app in "[a-z][a-z0-9-]{0,12}") {
            let scheme = KeyPrefix::AppId.scheme(&app, "store", None);
            match scheme.stored_key(&key) {
                Ok(stored) => prop_assert_eq!(scheme.app_key(&stored), key.as_str()),
                Err(_) => prop_assert!(key.contains(SEPARATOR)),
            }
        }
    }
}
