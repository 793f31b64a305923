use thiserror::Error;

use crate::SealKind;

/// What can go wrong at the hardware boundary. Messages never carry key material or PINs.
#[derive(Debug, Error)]
pub enum BridgeError {
    #[error("the root key could not open the keyring: wrong unseal keys or a keyring from another appliance")]
    WrongRootKey,
    /// A hardware root key exists but did not open the blob: the data dir belongs to
    /// another token/TPM, or the root key was replaced.
    #[error("the {0} root key could not open the stored keyring: this data dir was sealed by another {hw} (or its root key was replaced); put the data dir next to the device it was initialised with, or restore it with the recovery keys", hw = .0.device_name())]
    ForeignKeyring(SealKind),
    #[error("malformed unseal key: {0}")]
    MalformedShare(&'static str),
    #[error("invalid seal configuration: {0}")]
    InvalidConfig(String),
    #[error("the unseal keys do not combine into a root key")]
    CombineFailed,
    #[error("random number generator failed")]
    Random,
    /// The device cannot be reached or refused us (missing module, wrong PIN, TPM down).
    /// The message says what to fix; it never holds a PIN or key bytes.
    #[error("{kind} seal unavailable: {message}")]
    Unavailable { kind: SealKind, message: String },
    /// The device refused the root key because the platform state (TPM PCRs) is not one
    /// the appliance authorised; seal-status category `tpm_policy_mismatch`.
    #[error("{kind} seal refused to unseal (tpm_policy_mismatch): {message}")]
    PolicyMismatch { kind: SealKind, message: String },
    /// The device answered, but an operation failed.
    #[error("{kind} operation failed: {message}")]
    Device { kind: SealKind, message: String },
    /// The input to a key operation was rejected (e.g. a ciphertext that does not open).
    #[error("{0}")]
    BadInput(&'static str),
    /// The backend does not do this operation (e.g. `sign` on the Shamir seal).
    #[error("the {kind} seal does not support {op}")]
    Unsupported { kind: SealKind, op: &'static str },
}

impl BridgeError {
    /// True when retrying later (with the device back) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BridgeError::Unavailable { .. } | BridgeError::Device { .. }
        )
    }
}
