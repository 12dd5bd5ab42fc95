//! The bindings building block: events from outside systems delivered to
//! the app (input), and operations the app invokes on them (output).
//!
//! - [`Binding`] is what a component is; it may be an [`InputBinding`], an
//!   [`OutputBinding`], or both.
//! - An input binding hands each event to an [`InputHandler`] (the runtime
//!   delivers it to the app) and settles it with its backend only after the
//!   handler returned: at-least-once where the backend can redeliver.
//! - `conformance` (feature `conformance`) holds the input and output
//!   suites, one test per case through [`input_binding_conformance!`] and
//!   [`output_binding_conformance!`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

mod block;
mod inputs;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use block::{BindingHandle, BindingSettings, BindingsBlock};
pub use inputs::InputBindings;
pub mod sql;

/// Request and event metadata.
pub type Metadata = BTreeMap<String, String>;

/// An operation the app invokes on an output binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvokeRequest {
    pub operation: String,
    pub data: Bytes,
    pub metadata: Metadata,
}

impl InvokeRequest {
    pub fn new(operation: &str, data: impl Into<Bytes>) -> Self {
        Self {
            operation: operation.to_owned(),
            data: data.into(),
            metadata: Metadata::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A metadata value, its name matched in any case.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// What an operation answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvokeResponse {
    pub data: Bytes,
    pub metadata: Metadata,
}

/// One event of an input binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputEvent {
    pub data: Bytes,
    pub metadata: Metadata,
}

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("binding does not support operation {operation}. supported operations:{}", .supported.join(" "))]
    UnsupportedOperation {
        operation: String,
        supported: Vec<String>,
    },
    /// The request cannot be served as given (missing metadata, a path out
    /// of bounds, ...): the app's mistake.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
    /// The backend answered, with a failure: what it said, and the
    /// metadata it answered with (returned to the app all the same).
    #[error("{message}")]
    Answered { message: String, metadata: Metadata },
}

/// Why the app did not take an event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Where an input binding delivers its events (the app, through the
/// runtime).
#[async_trait]
pub trait InputHandler: Send + Sync + 'static {
    /// Delivers one event; `Ok` once the app took it (what it answered),
    /// `Err` when it did not (the binding redelivers where it can).
    async fn handle(&self, event: InputEvent) -> Result<Bytes, Refused>;
}

/// A binding that produces events.
#[async_trait]
pub trait InputBinding: Send + Sync + 'static {
    /// Starts reading: events go to `handler` until `stop` is cancelled.
    /// Returns once reading has started.
    async fn read(
        &self,
        handler: Arc<dyn InputHandler>,
        stop: CancellationToken,
    ) -> Result<(), BindingError>;
}

/// A binding that takes operations.
#[async_trait]
pub trait OutputBinding: Send + Sync + 'static {
    /// The operations it takes, as Dapr names them.
    fn operations(&self) -> &[&'static str];

    /// Runs one operation; `None` when it answers nothing (HTTP 204).
    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError>;

    /// Refuses an operation this binding does not take.
    fn check_operation(&self, operation: &str) -> Result<(), BindingError> {
        if self.operations().contains(&operation) {
            Ok(())
        } else {
            Err(BindingError::UnsupportedOperation {
                operation: operation.to_owned(),
                supported: self.operations().iter().map(|s| (*s).to_owned()).collect(),
            })
        }
    }
}

/// A binding component: an input, an output, or both.
pub trait Binding: Send + Sync + 'static {
    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        None
    }

    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        None
    }
}

/// What the app answered an input event with. Over gRPC the app may ask
/// for `data` to go on to output bindings (`to`), one after another or all
/// at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppAnswer {
    pub data: Bytes,
    pub to: Vec<String>,
    pub parallel: bool,
}

/// The app, as input bindings reach it (the app channel implements it).
#[async_trait]
pub trait AppBindings: Send + Sync + 'static {
    /// Whether the app takes the events of binding `name` (at `route`):
    /// HTTP apps answer `OPTIONS /{route}` with a 2xx or 405, gRPC apps
    /// list it in `ListInputBindings`.
    async fn subscribes(&self, name: &str, route: &str) -> bool;

    /// Delivers one event: `POST /{route}` or `OnBindingEvent`.
    async fn deliver(
        &self,
        name: &str,
        route: &str,
        event: &InputEvent,
    ) -> Result<AppAnswer, Refused>;
}

/// Which directions a binding serves (`direction` metadata).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directions {
    pub input: bool,
    pub output: bool,
}

impl Directions {
    /// Parses `direction` (`input`, `output`, `input, output`, in any case);
    /// `None` when it is not given (then both, and the app is asked).
    pub fn parse(value: Option<&str>) -> Result<Option<Self>, String> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let mut directions = Self::default();
        for part in value.split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "input" => directions.input = true,
                "output" => directions.output = true,
                other => return Err(format!("'{other}' is neither input nor output")),
            }
        }
        Ok(Some(directions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions() {
        assert_eq!(Directions::parse(None).unwrap(), None);
        assert_eq!(
            Directions::parse(Some("input, Output")).unwrap(),
            Some(Directions {
                input: true,
                output: true
            })
        );
        assert_eq!(
            Directions::parse(Some("output")).unwrap(),
            Some(Directions {
                input: false,
                output: true
            })
        );
        assert!(Directions::parse(Some("sideways")).is_err());
    }
}
