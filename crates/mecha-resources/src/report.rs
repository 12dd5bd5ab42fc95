//! Problems found while loading resources, all reported at once.

use std::fmt;
use std::path::PathBuf;

/// One problem, located by file and, where known, by resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Such as `component 'statestore'`.
    pub resource: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(resource) = &self.resource {
            write!(f, ": {resource}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Errors (loading fails) and warnings (loading goes on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Report {
    pub fn error(
        &mut self,
        file: impl Into<PathBuf>,
        resource: Option<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(Problem {
            file: file.into(),
            resource,
            message: message.into(),
        });
    }

    pub fn warning(
        &mut self,
        file: impl Into<PathBuf>,
        resource: Option<String>,
        message: impl Into<String>,
    ) {
        self.warnings.push(Problem {
            file: file.into(),
            resource,
            message: message.into(),
        });
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn merge(&mut self, other: Report) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}
