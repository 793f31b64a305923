use thiserror::Error;

use crate::error::EngineError;

/// The one answer for every decryption that does not succeed once the ciphertext is well
/// formed: a missing key, another key, a tampered or truncated ciphertext, a version the
/// key does not have or no longer allows. One message for all of them keeps key names
/// and key configuration from being probed through `decrypt`.
pub const DECRYPT_FAILED: &str = "Unable to decrypt the secret";

/// What a transit operation reports. `Invalid` is the caller's mistake (400 in the API),
/// `NotFound` answers a read of a key that does not exist (404), and `Engine` carries
/// failures below transit (sealed, storage, internal).
#[derive(Debug, Error)]
pub enum TransitError {
    #[error("{0}")]
    Invalid(String),
    #[error("Unable to decrypt the secret")]
    DecryptFailed,
    #[error("key not found")]
    NotFound,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl TransitError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        TransitError::Invalid(msg.into())
    }

    pub fn internal(msg: impl std::fmt::Display) -> Self {
        TransitError::Engine(EngineError::Internal(msg.to_string()))
    }

    /// Whether the failure lies with the request rather than with the appliance.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            TransitError::Invalid(_) | TransitError::DecryptFailed | TransitError::NotFound
        )
    }

    /// The text of a batch item's `error` field. Failures below transit are logged and
    /// reported only as "internal error", as a whole request would be.
    pub fn item_message(&self) -> String {
        match self {
            TransitError::Engine(EngineError::BadRequest(m)) => m.clone(),
            TransitError::Engine(e) => {
                tracing::error!(error = %e, "transit batch item failed");
                "internal error".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<TransitError> for EngineError {
    fn from(e: TransitError) -> Self {
        match e {
            TransitError::Invalid(m) => EngineError::BadRequest(m),
            TransitError::DecryptFailed => EngineError::BadRequest(DECRYPT_FAILED.into()),
            TransitError::NotFound => EngineError::NotFound("transit key".into()),
            TransitError::Engine(e) => e,
        }
    }
}

pub type TransitResult<T> = std::result::Result<T, TransitError>;
