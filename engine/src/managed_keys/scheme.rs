//! How an operation uses a key, chosen by the caller instead of the key's default: the
//! PKCS#11 mechanisms (and their parameters) as the engine knows them, free of any wire
//! encoding. `/api/v1` uses [`SignScheme::Default`] and [`CipherScheme::Default`], the
//! formats documented in `material.rs`.

use zeroize::Zeroizing;

use super::error::KeyError;
use super::model::{Algorithm, Protection};
use super::{KeyStore, ManagedKey, Output};
use hsm_bridge::RootOfTrust;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// What a signature is made over and how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignScheme {
    /// The key's own format (RSA PKCS#1 v1.5 SHA-256, ECDSA DER over SHA-256/384, ML-DSA
    /// pure): what `/api/v1` answers.
    Default,
    /// RSA PKCS#1 v1.5. With a hash the message is hashed and wrapped in a DigestInfo
    /// (`CKM_SHA256_RSA_PKCS`); without, the data is the DigestInfo (or any value up to
    /// k-11 bytes) to pad (`CKM_RSA_PKCS`).
    RsaPkcs1 { hash: Option<Hash> },
    /// RSA-PSS. Without `hash` the data is the digest (`CKM_RSA_PKCS_PSS`), whose length
    /// must match `digest`.
    RsaPss {
        hash: Option<Hash>,
        digest: Hash,
        mgf: Hash,
        salt_len: usize,
    },
    /// ECDSA answering raw `r || s` (PKCS#11's encoding). Without `hash` the data is the
    /// digest (`CKM_ECDSA`).
    EcdsaRaw { hash: Option<Hash> },
    /// ML-DSA (FIPS 204), pure, with a context string of at most 255 bytes;
    /// `deterministic` is FIPS 204's deterministic variant, otherwise hedged.
    MlDsa {
        context: Vec<u8>,
        deterministic: bool,
    },
}

/// How data is encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherScheme {
    /// The key's own format (RSA-OAEP, AES-GCM with a generated IV prepended, ML-KEM +
    /// AES-GCM): what `/api/v1` answers.
    Default,
    /// RSA PKCS#1 v1.5 encryption (`CKM_RSA_PKCS`).
    RsaPkcs1,
    /// RSA-OAEP (`CKM_RSA_PKCS_OAEP`); the label is OAEP's encoding parameter.
    RsaOaep {
        hash: Hash,
        mgf: Hash,
        label: Vec<u8>,
    },
    /// AES-GCM with the caller's IV and AAD; ciphertext then tag, the tag `tag_len`
    /// bytes (`CKM_AES_GCM`).
    AesGcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_len: usize,
    },
    /// AES-CBC with PKCS#7 padding (`CKM_AES_CBC_PAD`).
    AesCbcPad { iv: [u8; 16] },
}

/// How a key is wrapped by (or unwrapped with) an AES key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapScheme {
    /// RFC 3394 (`CKM_AES_KEY_WRAP`), default IV.
    AesKeyWrap,
    /// RFC 5649 (`CKM_AES_KEY_WRAP_KWP`).
    AesKeyWrapPad,
    /// RSA-OAEP of the key bytes (`CKM_RSA_PKCS_OAEP` as a wrap mechanism).
    RsaOaep { hash: Hash, mgf: Hash },
}

/// Whether a version of `algorithm` held as `protection` on a boundary with
/// `capabilities` can sign with `scheme` (what `C_GetMechanismInfo` tells the truth
/// from).
pub fn can_sign(
    _algorithm: Algorithm,
    _protection: Protection,
    _capabilities: &hsm_bridge::Capabilities,
    _scheme: &SignScheme,
) -> bool {
    false
}

/// As [`can_sign`], for encryption and decryption.
pub fn can_cipher(
    _algorithm: Algorithm,
    _protection: Protection,
    _capabilities: &hsm_bridge::Capabilities,
    _scheme: &CipherScheme,
) -> bool {
    false
}

/// Secret output of a decryption, with the version used.
pub type Plain = (Zeroizing<Vec<u8>>, u32);

fn unsupported() -> KeyError {
    KeyError::Unsupported("not implemented yet".into())
}

/// Verifies with a public key that is not a managed key's (a PKCS#11 public-key object an
/// application stored): `public` is a DER SubjectPublicKeyInfo (RSA, EC) or the encoded
/// ML-DSA key.
pub fn verify_public(
    _algorithm: Algorithm,
    _public: &[u8],
    _scheme: &SignScheme,
    _message: &[u8],
    _signature: &[u8],
) -> Result<bool, KeyError> {
    Err(unsupported())
}

/// Encrypts to a public key that is not a managed key's (RSA only).
pub fn encrypt_public(
    _algorithm: Algorithm,
    _public: &[u8],
    _scheme: &CipherScheme,
    _plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    Err(unsupported())
}

impl KeyStore {
    /// [`KeyStore::sign`] with a caller-chosen scheme.
    pub async fn sign_with(
        &self,
        _key: &ManagedKey,
        _version: Option<u32>,
        _scheme: SignScheme,
        _message: Vec<u8>,
        _root: Arc<dyn RootOfTrust>,
    ) -> Result<Output, KeyError> {
        Err(unsupported())
    }

    /// [`KeyStore::verify`] with a caller-chosen scheme: whether it verifies, and the
    /// version used.
    pub async fn verify_with(
        &self,
        _key: &ManagedKey,
        _version: Option<u32>,
        _scheme: SignScheme,
        _message: Vec<u8>,
        _signature: Vec<u8>,
    ) -> Result<(bool, u32), KeyError> {
        Err(unsupported())
    }

    /// [`KeyStore::encrypt`] with a caller-chosen scheme.
    pub async fn encrypt_with(
        &self,
        _key: &ManagedKey,
        _version: Option<u32>,
        _scheme: CipherScheme,
        _plaintext: Zeroizing<Vec<u8>>,
        _root: Arc<dyn RootOfTrust>,
    ) -> Result<Output, KeyError> {
        Err(unsupported())
    }

    /// [`KeyStore::decrypt`] with a caller-chosen scheme.
    pub async fn decrypt_with(
        &self,
        _key: &ManagedKey,
        _version: Option<u32>,
        _scheme: CipherScheme,
        _ciphertext: Vec<u8>,
        _root: Arc<dyn RootOfTrust>,
    ) -> Result<Plain, KeyError> {
        Err(unsupported())
    }
}
