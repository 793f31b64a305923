//! The key types transit offers and what each can do, under Vault's names.

use serde::{Deserialize, Serialize};

use super::error::TransitError;

/// Vault's bounds on an `hmac` key's `key_size`, in bytes.
pub const HMAC_MIN_KEY_SIZE: usize = 32;
pub const HMAC_MAX_KEY_SIZE: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    #[serde(rename = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "hmac")]
    Hmac,
}

impl KeyType {
    pub const ALL: [KeyType; 11] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
        KeyType::XChaCha20Poly1305,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Ed25519,
        KeyType::Hmac,
    ];

    pub fn parse(s: &str) -> Result<KeyType, TransitError> {
        KeyType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TransitError::invalid(format!("unknown key type {s}")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::XChaCha20Poly1305 => "xchacha20-poly1305",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Ed25519 => "ed25519",
            KeyType::Hmac => "hmac",
        }
    }

    /// The symmetric AEAD types.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            KeyType::Aes128Gcm96
                | KeyType::Aes256Gcm96
                | KeyType::ChaCha20Poly1305
                | KeyType::XChaCha20Poly1305
        )
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    pub fn is_ecdsa(self) -> bool {
        matches!(self, KeyType::EcdsaP256 | KeyType::EcdsaP384)
    }

    pub fn is_asymmetric(self) -> bool {
        self.is_rsa() || self.is_ecdsa() || self == KeyType::Ed25519
    }

    pub fn supports_encryption(self) -> bool {
        self.is_aead() || self.is_rsa()
    }

    pub fn supports_decryption(self) -> bool {
        self.supports_encryption()
    }

    pub fn supports_signing(self) -> bool {
        self.is_asymmetric()
    }

    pub fn supports_derivation(self) -> bool {
        self.is_aead() || self == KeyType::Ed25519
    }

    pub fn supports_associated_data(self) -> bool {
        self.is_aead()
    }

    /// Whether sign and verify hash the input first (Ed25519 hashes internally).
    pub fn hashes_signature_input(self) -> bool {
        self.is_rsa() || self.is_ecdsa()
    }

    /// Bytes of the symmetric key (AEAD types).
    pub fn aead_key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    pub fn rsa_bits(self) -> usize {
        match self {
            KeyType::Rsa3072 => 3072,
            KeyType::Rsa4096 => 4096,
            _ => 2048,
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
