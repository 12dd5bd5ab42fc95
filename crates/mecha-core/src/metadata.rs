//! Component metadata: Dapr's list of name/value pairs, read leniently as
//! Dapr reads it (names match case-insensitively) into typed configs, while
//! every problem is collected so that all of them are reported at once.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::units;

/// Resolved metadata of one component, in file order: each value is the
/// literal text of the YAML scalar (`010` stays `"010"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(String, String)>);

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of `name`, matched case-insensitively; the last one wins.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Reads typed values out of [`Properties`], remembering which names were
/// read (the rest are reported as unknown) and every invalid value.
///
/// The runtime first reads the keys it interprets itself (`keyPrefix`,
/// `actorStateStore`, ...); the component then reads its own from the same
/// reader.
#[derive(Debug)]
pub struct MetadataReader<'a> {
    props: &'a Properties,
    /// Names whose value could not be resolved (an error was reported for
    /// them already), so they do not count as missing too.
    unresolved: BTreeSet<String>,
    read: RefCell<BTreeSet<String>>,
    errors: RefCell<Vec<String>>,
}

impl<'a> MetadataReader<'a> {
    pub fn new(props: &'a Properties) -> Self {
        Self {
            props,
            unresolved: BTreeSet::new(),
            read: RefCell::default(),
            errors: RefCell::default(),
        }
    }

    /// Marks names whose value could not be resolved: reading them gives
    /// nothing, and a required one is not reported missing as well.
    pub fn with_unresolved(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.unresolved = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        self
    }

    /// The raw value of `name`, if set (an empty value counts as unset).
    pub fn string(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_ascii_lowercase());
        self.props
            .get(name)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    }

    /// The value of `name`, or `default`.
    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_owned())
    }

    /// The value of a required key; records an error when it is missing.
    pub fn required(&self, name: &str) -> String {
        match self.string(name) {
            Some(value) => value,
            None if self.unresolved.contains(&name.to_ascii_lowercase()) => String::new(),
            None => {
                self.error(format!("required metadata field '{name}' is missing"));
                String::new()
            }
        }
    }

    /// A boolean in Go's `strconv.ParseBool` spellings (plus `yes`/`no`,
    /// `on`/`off`, as YAML 1.1 has them).
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        match self.string(name) {
            None => default,
            Some(value) => match parse_bool(&value) {
                Some(parsed) => parsed,
                None => {
                    self.error(format!(
                        "metadata field '{name}': '{value}' is not a boolean"
                    ));
                    default
                }
            },
        }
    }

    /// A Go duration (`5s`, `1h30m`) or a bare number of `bare_unit`s.
    pub fn duration_or(&self, name: &str, default: Duration, bare_unit: Duration) -> Duration {
        self.optional_duration(name, bare_unit).unwrap_or(default)
    }

    /// A Go duration, or `None` when unset; zero and negative values are
    /// returned as `Some(Duration::ZERO)` (Dapr's "disabled").
    pub fn optional_duration(&self, name: &str, bare_unit: Duration) -> Option<Duration> {
        let value = self.string(name)?;
        match units::parse_duration_or_number(&value, bare_unit) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                self.error(format!("metadata field '{name}': {err}"));
                None
            }
        }
    }

    /// An integer.
    pub fn i64_or(&self, name: &str, default: i64) -> i64 {
        match self.string(name) {
            None => default,
            Some(value) => match value.trim().parse() {
                Ok(parsed) => parsed,
                Err(_) => {
                    self.error(format!(
                        "metadata field '{name}': '{value}' is not an integer"
                    ));
                    default
                }
            },
        }
    }

    /// Records a validation error.
    pub fn error(&self, message: impl Into<String>) {
        self.errors.borrow_mut().push(message.into());
    }

    /// The errors recorded so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.borrow().clone()
    }

    /// Names set in the metadata that nothing read, in file order.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.props
            .0
            .iter()
            .map(|(name, _)| name)
            .chain(&self.unresolved)
            .filter(|name| !read.contains(&name.to_ascii_lowercase()))
            .cloned()
            .collect()
    }
}

/// Parses a boolean the way Go's `strconv.ParseBool` does, plus YAML 1.1's
/// `yes`/`no`/`on`/`off`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "y" | "yes" | "on" => Some(true),
        "0" | "f" | "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively_and_last_wins() {
        let props = Properties::new()
            .with("TableName", "a")
            .with("tablename", "b");
        let reader = MetadataReader::new(&props);
        assert_eq!(reader.string("tableName").as_deref(), Some("b"));
        assert!(reader.unread().is_empty());
    }

    #[test]
    fn unread_and_invalid_values_are_reported() {
        let props = Properties::new()
            .with("timeout", "soon")
            .with("bogus", "1")
            .with("flag", "maybe");
        let reader = MetadataReader::new(&props);
        let timeout =
            reader.duration_or("timeout", Duration::from_secs(20), Duration::from_secs(1));
        assert_eq!(timeout, Duration::from_secs(20));
        assert!(reader.bool_or("flag", true));
        let _ = reader.required("connectionString");
        assert_eq!(reader.unread(), vec!["bogus".to_owned()]);
        let errors = reader.errors();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[2].contains("connectionString"));
    }
}
