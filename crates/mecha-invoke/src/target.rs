//! Invocation targets: `app` or `app.namespace`.

use std::fmt;

/// An app id, with the namespace it lives in when the caller named one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppId {
    pub id: String,
    pub namespace: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid app id {0}")]
pub struct InvalidAppId(pub String);

impl AppId {
    /// Parses `app` or `app.namespace` (more than one dot is invalid, as in
    /// daprd).
    pub fn parse(text: &str) -> Result<Self, InvalidAppId> {
        let invalid = || InvalidAppId(text.to_owned());
        let mut parts = text.split('.');
        let id = parts
            .next()
            .filter(|id| !id.is_empty())
            .ok_or_else(invalid)?;
        let namespace = parts.next();
        if parts.next().is_some() || namespace.is_some_and(str::is_empty) {
            return Err(invalid());
        }
        if text
            .chars()
            .any(|c| c.is_control() || c == '/' || c.is_whitespace())
        {
            return Err(invalid());
        }
        Ok(Self {
            id: id.to_owned(),
            namespace: namespace.map(str::to_owned),
        })
    }

    /// The namespace, or `default` when the caller named none.
    pub fn namespace_or<'a>(&'a self, default: Option<&'a str>) -> Option<&'a str> {
        self.namespace.as_deref().or(default)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}.{ns}", self.id),
            None => f.write_str(&self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        assert_eq!(
            AppId::parse("orders").unwrap(),
            AppId {
                id: "orders".into(),
                namespace: None
            }
        );
        let namespaced = AppId::parse("orders.prod").unwrap();
        assert_eq!(namespaced.namespace.as_deref(), Some("prod"));
        assert_eq!(namespaced.to_string(), "orders.prod");
        for bad in ["", "a.b.c", ".ns", "a.", "a b", "a/b"] {
            assert!(AppId::parse(bad).is_err(), "{bad}");
        }
    }
}
