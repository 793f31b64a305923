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
    /// The device answered but refused to serve as the root of trust (wrong PIN, a root
    /// key with unsafe attributes, two keys under one label): retrying will not help
    /// until an operator fixes what `fault` names.
    #[error("{kind} seal refused: {message}")]
    Refused {
        kind: SealKind,
        fault: SealFault,
        message: String,
    },
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

/// Why a BYOK import's unwrap inside the boundary gave no target key: the first three
/// are the caller's ciphertext, told apart so the engine answers in Vault's words.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The RSA-OAEP part does not decrypt under the wrapping key (another key, another
    /// hash, or altered bytes).
    #[error("the ephemeral key does not decrypt under the wrapping key (RSA-OAEP)")]
    Ephemeral,
    /// The RSA-OAEP part decrypts to something other than an AES-256 key.
    #[error("expected ephemeral AES key to be 256-bit")]
    EphemeralSize,
    /// The AES-KWP part does not unwrap under the ephemeral key.
    #[error("the target key does not unwrap (AES-KWP)")]
    Target,
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

/// Why a hardware seal would not open, in words safe to show without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealFault {
    /// The token rejected the PIN.
    PinIncorrect,
    /// The user PIN is locked; the security officer must reset it.
    PinLocked,
    /// No PIN could be read (pin_file missing, unreadable or too open; variable unset).
    PinUnavailable,
    /// The device holds no root key for this data dir: another token, or a deleted key.
    DeviceMismatch,
    /// The object under the root key's label is not a safe root key (extractable, not
    /// sensitive, wrong type or length).
    RootKeyUnsafe,
    /// More than one object carries the root key's label.
    RootKeyAmbiguous,
}

impl SealFault {
    pub fn as_str(self) -> &'static str {
        match self {
            SealFault::PinIncorrect => "hsm_pin_incorrect",
            SealFault::PinLocked => "hsm_pin_locked",
            SealFault::PinUnavailable => "hsm_pin_unavailable",
            SealFault::DeviceMismatch => "device_mismatch",
            SealFault::RootKeyUnsafe => "root_key_unsafe",
            SealFault::RootKeyAmbiguous => "root_key_ambiguous",
        }
    }
}

impl BridgeError {
    /// A short, fixed category for `sys/seal-status` callers without a token: it names
    /// what is wrong but never where (module path, token label) or the device's words.
    pub fn category(&self) -> &'static str {
        match self {
            BridgeError::Unavailable {
                kind: SealKind::Tpm2,
                ..
            } => "tpm_unreachable",
            BridgeError::Unavailable { .. } => "hsm_unreachable",
            BridgeError::Device {
                kind: SealKind::Tpm2,
                ..
            } => "tpm_error",
            BridgeError::Device { .. } => "hsm_error",
            BridgeError::Refused { fault, .. } => fault.as_str(),
            BridgeError::PolicyMismatch { .. } => "tpm_policy_mismatch",
            BridgeError::ForeignKeyring(_) => "device_mismatch",
            BridgeError::InvalidConfig(_) => "seal_config_invalid",
            BridgeError::WrongRootKey
            | BridgeError::CombineFailed
            | BridgeError::MalformedShare(_) => "unseal_keys_invalid",
            BridgeError::Random => "rng_failure",
            BridgeError::BadInput(_) | BridgeError::Unsupported { .. } => "seal_error",
        }
    }

    /// What a client may be told. The device's own words (module path, token label,
    /// `CKR_*` codes, TPM response codes) describe the appliance's hardware to whoever
    /// asks, and `sys/init`, `sys/unseal` and `sys/generate-root` answer without a
    /// token: they get the category, the log gets the rest.
    pub fn public_message(&self) -> String {
        match self {
            BridgeError::Unavailable { kind, .. }
            | BridgeError::Refused { kind, .. }
            | BridgeError::PolicyMismatch { kind, .. }
            | BridgeError::Device { kind, .. } => format!(
                "{kind} seal error: {}; the appliance log has the details",
                self.category()
            ),
            other => other.to_string(),
        }
    }

    /// True when retrying later (with the device back) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BridgeError::Unavailable { .. } | BridgeError::Device { .. }
        )
    }
}
