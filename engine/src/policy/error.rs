use thiserror::Error;

/// Why a policy or policy name was refused. Every message says which path block or key is
/// at fault, since the text comes back to whoever wrote the policy.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The text is not HCL (or, for a policy starting with `{`, not JSON).
    #[error("failed to parse policy: line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed HCL that is not a policy: a stray key, a value of the wrong type.
    #[error("failed to parse policy: {0}")]
    Invalid(String),
    #[error(
        "failed to parse policy: {}invalid capability {capability:?} (expected create, read, \
         update, patch, delete, list, sudo or deny)",
        in_path(path)
    )]
    UnknownCapability {
        path: Option<String>,
        capability: String,
    },
    #[error("failed to parse policy: path {path:?}: {message}")]
    BadPath { path: String, message: String },
    #[error("invalid policy name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("cannot update {0:?} policy")]
    Immutable(String),
}

fn in_path(path: &Option<String>) -> String {
    match path {
        Some(p) => format!("path {p:?}: "),
        None => String::new(),
    }
}

impl PolicyError {
    pub(crate) fn bad_path(path: &str, message: impl Into<String>) -> Self {
        PolicyError::BadPath {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// Attributes a capability error to the path block it came from.
    pub(crate) fn in_path(self, path: &str) -> Self {
        match self {
            PolicyError::UnknownCapability {
                path: None,
                capability,
            } => PolicyError::UnknownCapability {
                path: Some(path.to_string()),
                capability,
            },
            other => other,
        }
    }
}
