//! The hardware boundary: one trait for the root of trust, one file per backend.
//!
//! The root key never leaves its backend. Callers hand in the keyring to be wrapped or
//! unwrapped and get the result back; with a hardware backend that work happens inside
//! the device, with the software `shamir` backend it happens in zeroized memory.

mod error;
pub mod random;
pub mod shamir;

pub use error::BridgeError;
pub use random::fill_random;
pub use shamir::{ShamirRoot, UnsealShare};

use zeroize::Zeroizing;

/// Which kind of root of trust holds the root key, as `sys/seal-status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    Shamir,
    Pkcs11,
    Tpm2,
}

impl SealKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SealKind::Shamir => "shamir",
            SealKind::Pkcs11 => "pkcs11",
            SealKind::Tpm2 => "tpm2",
        }
    }
}

/// The root of trust: the only thing that can open the barrier keyring.
pub trait RootOfTrust: Send + Sync {
    fn kind(&self) -> SealKind;

    /// Encrypts `plaintext` under the root key, binding `aad` to the result.
    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError>;

    /// Opens a blob made by `wrap` with the same `aad`; fails if either was altered or
    /// the blob was made under another root key.
    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError>;
}
