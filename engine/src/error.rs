use thiserror::Error;

use crate::managed_keys::KeyError;
use crate::storage::StorageError;

/// What kind of failure an error is, whatever its detail: the one thing each front door
/// maps to its own wire shape (Vault's status codes on `/v1`, problem objects on
/// `/api/v1`, `CKR_*` codes on PKCS#11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or asks for something the target does not allow.
    InvalidInput,
    NotFound,
    /// The target's state does not allow the request now (exists already, disabled,
    /// changed underneath).
    Conflict,
    /// No valid token: missing, unknown, expired, revoked or used up.
    Unauthenticated,
    /// A valid token that policy, scope or attenuation does not allow here.
    Forbidden,
    Sealed,
    /// The appliance or its seal device cannot serve the request now (not initialised,
    /// device unreachable).
    Unavailable,
    /// A bound of the appliance was reached (busy pool, too large a payload).
    LimitExceeded,
    /// The appliance failed: the detail goes to the log, never to the caller.
    Internal,
}

/// Every failure the engine reports. Messages are written for the caller and never carry
/// secret material; variants keep their typed payload and their source so that the
/// front doors' mappers and the log see everything.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    /// A token that does not resolve: Vault's `/v1` answers it as permission denied.
    #[error("permission denied")]
    Unauthenticated,
    /// A resolved token the ACL does not allow.
    #[error("permission denied")]
    Forbidden,
    /// A response-wrapping token that is unknown, used, expired or not a wrapping token.
    #[error("wrapping token is not valid or does not exist")]
    InvalidWrappingToken,
    /// A request naming no wrapping token to check (an empty one, or none at all).
    #[error("error validating wrapping token: {0}")]
    NoWrappingToken(&'static str),
    /// `/api/v1`: the token lacks the scope the operation needs.
    #[error("this token does not have the {0} scope")]
    MissingScope(&'static str),
    /// `/api/v1`: an attenuated token whose checks refuse this request.
    #[error("this token's attenuation does not allow {operation} {}", match .key { Some(k) => format!("on key {k:?}"), None => "here".to_string() })]
    AttenuationDenied {
        operation: &'static str,
        key: Option<String>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Nothing serves this path.
    #[error("no handler for route \"{0}\". route entry not found.")]
    NoRoute(String),
    /// The path does not take this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// A conditional write lost to a concurrent writer more times than it retries.
    #[error("{0}")]
    Conflict(String),
    /// A managed-key failure with its stable code (never `KeyError::Engine`, which
    /// converts to the error it carries).
    #[error(transparent)]
    Key(Box<KeyError>),
    #[error("stored value at {0} could not be decrypted or parsed")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Seal(#[from] hsm_bridge::BridgeError),
    /// An audit device refused a line: nothing ran (request line) or the answer is
    /// withheld (response line), as Vault does.
    #[error("the request could not be audited")]
    AuditFailed,
    #[error("internal error: {0}")]
    Internal(String),
    /// The bounded pool for CPU-heavy work is full: retry later.
    #[error("{0}")]
    Overloaded(String),
    /// Logins from this source (or for this user) failed too often: refused unchecked
    /// until the delay has passed.
    /// `what` names the attempts: "login", "unseal".
    #[error("too many failed {what} attempts: retry in {retry_after}s")]
    TooManyAttempts {
        what: &'static str,
        retry_after: u64,
    },
    /// The auth method that issued a login token refuses to renew it now (its role is
    /// gone, its policies changed): log in again.
    #[error("failed to renew entry: {0}")]
    RenewalRefused(String),
}

impl EngineError {
    pub fn internal<E: std::fmt::Display>(e: E) -> Self {
        EngineError::Internal(e.to_string())
    }

    pub fn bad(msg: impl Into<String>) -> Self {
        EngineError::BadRequest(msg.into())
    }

    pub fn kind(&self) -> ErrorKind {
        use hsm_bridge::BridgeError as B;
        match self {
            EngineError::Sealed => ErrorKind::Sealed,
            EngineError::NotInitialized => ErrorKind::Unavailable,
            EngineError::AlreadyInitialized => ErrorKind::Conflict,
            EngineError::Unauthenticated => ErrorKind::Unauthenticated,
            EngineError::Forbidden
            | EngineError::NoWrappingToken(_)
            | EngineError::MissingScope(_)
            | EngineError::AttenuationDenied { .. } => ErrorKind::Forbidden,
            EngineError::BadRequest(_) | EngineError::InvalidWrappingToken => {
                ErrorKind::InvalidInput
            }
            EngineError::NotFound(_) | EngineError::NoRoute(_) => ErrorKind::NotFound,
            EngineError::UnsupportedOperation => ErrorKind::InvalidInput,
            EngineError::Conflict(_) | EngineError::RenewalRefused(_) => ErrorKind::Conflict,
            EngineError::Key(k) => k.kind(),
            EngineError::Overloaded(_) | EngineError::TooManyAttempts { .. } => {
                ErrorKind::LimitExceeded
            }
            EngineError::Seal(b) => match b {
                B::MalformedShare(_)
                | B::InvalidConfig(_)
                | B::WrongRootKey
                | B::CombineFailed
                | B::ForeignKeyring(_)
                | B::Unsupported { .. }
                | B::BadInput(_) => ErrorKind::InvalidInput,
                B::Unavailable { .. } | B::Refused { .. } | B::PolicyMismatch { .. } => {
                    ErrorKind::Unavailable
                }
                B::Device { .. } | B::Random => ErrorKind::Internal,
            },
            // A conditional write that kept losing to other writers.
            EngineError::Storage(StorageError::Conflict { .. }) => ErrorKind::Conflict,
            EngineError::Storage(e) if e.unavailable().is_some() => ErrorKind::Unavailable,
            EngineError::Corrupt(_)
            | EngineError::Storage(_)
            | EngineError::AuditFailed
            | EngineError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The message a caller may see: the error's own words, except for failures of the
    /// appliance, whose detail stays in the log (logged here, once, at the edge that
    /// answers).
    pub fn public_message(&self) -> String {
        if let EngineError::Storage(s) = self {
            if let Some(words) = s.volume_fault() {
                tracing::error!(error = %s, "storage refused a write");
                return words.into();
            }
        }
        match self {
            EngineError::Seal(b) => {
                match self.kind() {
                    ErrorKind::Unavailable => tracing::warn!(error = %b, "seal device unavailable"),
                    ErrorKind::Internal => tracing::error!(error = %b, "seal failure"),
                    _ => {}
                }
                match b {
                    hsm_bridge::BridgeError::Random => "internal error".into(),
                    _ => b.public_message(),
                }
            }
            EngineError::AuditFailed => self.to_string(),
            EngineError::Storage(e) if e.unavailable().is_some() => {
                let cause = e.unavailable().unwrap_or(e);
                tracing::warn!(error = %cause, "storage unavailable");
                cause.to_string()
            }
            e if e.kind() == ErrorKind::Internal => {
                tracing::error!(error = %e, "internal error");
                "internal error".into()
            }
            e => e.to_string(),
        }
    }
}

impl From<KeyError> for EngineError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Engine(inner) => inner,
            other => EngineError::Key(Box::new(other)),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
