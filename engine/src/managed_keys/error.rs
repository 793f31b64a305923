use thiserror::Error;

use crate::error::{EngineError, ErrorKind};

/// What a managed-key request can fail with; each has a stable `code` that the API puts
/// in its problem object. Messages never hold key material.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("no key with id {0}")]
    NotFound(String),
    #[error("key {key:?} has no version {version}")]
    VersionNotFound { key: String, version: u32 },
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The key's algorithm or usage does not allow the operation.
    #[error("{0}")]
    WrongKeyType(String),
    #[error("version {version} of key {key:?} is disabled: enable it to use it")]
    VersionDisabled { key: String, version: u32 },
    #[error("key {0:?} is scheduled for destruction: cancel the destruction to use it")]
    PendingDestruction(String),
    #[error("key {0:?} is not scheduled for destruction")]
    NotPendingDestruction(String),
    #[error("{0}")]
    TooLarge(String),
    /// The scheme (mechanism) is not one this key, or this boundary, can use.
    #[error("{0}")]
    Unsupported(String),
    #[error("key {key} has no cloud export with id {export}")]
    ExportNotFound { key: String, export: String },
    /// Auto-sync and manual syncs need credentials the appliance keeps.
    #[error("cloud export {0} has no saved credentials, which auto-sync and manual syncs need: save credentials with the export (\"saveCredentials\": true, or the \"vaultSecretId\" of saved ones)")]
    NoSavedCredentials(String),
    /// Another sync of the same export is running in this process.
    #[error("a sync of cloud export {0} is running: its outcome will show on the export's record")]
    SyncInProgress(String),
    /// The provider refused or failed the export: its own words.
    #[error("{0}")]
    Provider(String),
    /// The boundary holding the key produces none of the formats the provider imports
    /// (the message names the mechanisms): the request cannot succeed as it is.
    #[error("{0}")]
    ExportFormatUnavailable(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<hsm_bridge::BridgeError> for KeyError {
    fn from(e: hsm_bridge::BridgeError) -> Self {
        match e {
            hsm_bridge::BridgeError::BadInput(m) => KeyError::invalid("DECRYPTION_FAILED", m),
            other => KeyError::Engine(EngineError::Seal(other)),
        }
    }
}

impl KeyError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        KeyError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            KeyError::NotFound(_)
            | KeyError::VersionNotFound { .. }
            | KeyError::ExportNotFound { .. } => ErrorKind::NotFound,
            KeyError::NameTaken(_)
            | KeyError::NoSavedCredentials(_)
            | KeyError::SyncInProgress(_)
            | KeyError::VersionDisabled { .. }
            | KeyError::PendingDestruction(_)
            | KeyError::NotPendingDestruction(_) => ErrorKind::Conflict,
            KeyError::Invalid { .. }
            | KeyError::WrongKeyType(_)
            | KeyError::Unsupported(_)
            | KeyError::ExportFormatUnavailable(_) => ErrorKind::InvalidInput,
            KeyError::TooLarge(_) => ErrorKind::LimitExceeded,
            // A service the appliance depends on failed; the `/api/v1` door answers 502.
            KeyError::Provider(_) => ErrorKind::Unavailable,
            KeyError::Engine(e) => e.kind(),
        }
    }

    /// The stable, machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::NotFound(_) => "KEY_NOT_FOUND",
            KeyError::VersionNotFound { .. } => "KEY_VERSION_NOT_FOUND",
            KeyError::NameTaken(_) => "KEY_NAME_EXISTS",
            KeyError::Invalid { code, .. } => code,
            KeyError::WrongKeyType(_) => "UNSUPPORTED_OPERATION",
            KeyError::VersionDisabled { .. } => "KEY_VERSION_DISABLED",
            KeyError::PendingDestruction(_) => "KEY_PENDING_DESTRUCTION",
            KeyError::NotPendingDestruction(_) => "KEY_NOT_PENDING_DESTRUCTION",
            KeyError::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            KeyError::Unsupported(_) => "UNSUPPORTED_ALGORITHM",
            KeyError::ExportNotFound { .. } => "EXPORT_NOT_FOUND",
            KeyError::NoSavedCredentials(_) => "NO_SAVED_CREDENTIALS",
            KeyError::SyncInProgress(_) => "SYNC_IN_PROGRESS",
            KeyError::Provider(_) => "PROVIDER_ERROR",
            KeyError::ExportFormatUnavailable(_) => "EXPORT_FORMAT_UNAVAILABLE",
            KeyError::Engine(EngineError::Sealed) => "SEALED",
            KeyError::Engine(_) => "INTERNAL",
        }
    }
}
