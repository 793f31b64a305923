use thiserror::Error;

use crate::storage::StorageError;

/// Every failure the engine reports. The API layer maps each kind to one status code;
/// messages are written for the caller and never carry secret material.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("permission denied")]
    PermissionDenied,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// 404 that still carries a body, as Vault answers for a deleted kv version.
    #[error("not found")]
    NotFoundWithData(serde_json::Value),
    #[error("unsupported path")]
    UnsupportedPath,
    #[error("unsupported operation")]
    UnsupportedOperation,
    #[error("stored value at {0} could not be decrypted or parsed")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Seal(#[from] hsm_bridge::BridgeError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The bounded pool for CPU-heavy work is full: retry later (503).
    #[error("{0}")]
    Overloaded(String),
}

impl EngineError {
    pub fn internal<E: std::fmt::Display>(e: E) -> Self {
        EngineError::Internal(e.to_string())
    }

    pub fn bad(msg: impl Into<String>) -> Self {
        EngineError::BadRequest(msg.into())
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
