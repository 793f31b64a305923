//! `encrypt`, `decrypt`, `rewrap` and `datakey` on a loaded key, and the ciphertext
//! format `vault:v<version>:<base64>`.
//!
//! Symmetric ciphertexts are `nonce || ciphertext || tag` (12-byte nonces, 24 for
//! XChaCha20); RSA ciphertexts are RSA-OAEP with SHA-256, as Vault's. Derived keys are
//! HKDF-SHA256(key, info = context); convergent encryption takes its nonce from
//! HMAC-SHA256 over the plaintext under a second derived key (Vault's version 3).

use std::sync::OnceLock;

use ::rsa::Oaep;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::decode_base64;
use super::error::{TransitError, TransitResult};
use super::key_policy::{Key, Version};
use super::material::{aead, hkdf_derive, Aead, Material, SecretBytes, TAG_LEN};
use crate::crypto::aead::AeadAlgorithm;
use crate::crypto::rsa;

/// Every key type's ciphertext is at least a 12-byte nonce and a 16-byte tag. Shorter
/// input is refused before the key is looked at, so the answer says nothing about it.
const MIN_CIPHERTEXT_LEN: usize = 12 + TAG_LEN;

const PREFIX: &str = "vault:v";

/// The version and payload of `vault:v<N>:<base64>`. Checks only the format, never the
/// key; the payload may be standard or URL-safe base64, padded or not.
pub fn parse_ciphertext(s: &str) -> TransitResult<(u32, Vec<u8>)> {
    let rest = s
        .strip_prefix(PREFIX)
        .ok_or_else(|| TransitError::invalid("invalid ciphertext: no prefix"))?;
    let (version, payload) = rest
        .split_once(':')
        .ok_or_else(|| TransitError::invalid("invalid ciphertext: wrong number of fields"))?;
    let version: u32 = version.parse().map_err(|_| {
        TransitError::invalid("invalid ciphertext: version number could not be decoded")
    })?;
    let payload = decode_base64(payload)
        .map_err(|_| TransitError::invalid("invalid ciphertext: could not decode base64"))?;
    if payload.len() < MIN_CIPHERTEXT_LEN {
        return Err(TransitError::invalid("invalid ciphertext length"));
    }
    // Version 0 ciphertexts came from Vault's first releases, whose keys started at 0.
    Ok((version.max(1), payload))
}

pub(crate) fn format_versioned(version: u32, bytes: &[u8]) -> String {
    let mut s = String::with_capacity(PREFIX.len() + 12 + bytes.len().div_ceil(3) * 4);
    s.push_str(PREFIX);
    s.push_str(&version.to_string());
    s.push(':');
    STANDARD.encode_string(bytes, &mut s);
    s
}

/// A cipher under a random key, used to spend the same effort on a decryption that is
/// bound to fail for another reason (unknown key, refused version).
fn decoy() -> &'static Aead {
    static DECOY: OnceLock<Aead> = OnceLock::new();
    DECOY.get_or_init(|| {
        let key = SecretBytes::random(32);
        Aead::new(AeadAlgorithm::Aes256Gcm, key.as_slice())
            .unwrap_or_else(|_| unreachable!("a 32-byte key fits AES-256"))
    })
}

/// Nonces come from `hsm_bridge::fill_nonce`: a per-thread stream seeded from the mixed
/// OS and hardware randomness, so the hot path takes no lock and makes no system call.
fn random_nonce(len: usize) -> Zeroizing<Vec<u8>> {
    let mut n = Zeroizing::new(vec![0u8; len]);
    hsm_bridge::fill_nonce(&mut n);
    n
}

impl Key {
    fn missing_context() -> TransitError {
        TransitError::invalid(
            "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key",
        )
    }

    /// The cipher for `version` under `context`; for convergent keys also the key that
    /// makes nonces.
    fn cipher_for<'v>(
        &self,
        version: &'v Version,
        context: &[u8],
    ) -> TransitResult<(CipherRef<'v>, Option<Zeroizing<Vec<u8>>>)> {
        match &version.material {
            Material::Aead(Some(c)) => Ok((CipherRef::Cached(c), None)),
            Material::Aead(None) => {
                if context.is_empty() {
                    return Err(Self::missing_context());
                }
                let enc_len = self.config.kind.aead_key_len();
                let extra = if self.config.convergent_encryption {
                    32
                } else {
                    0
                };
                let okm = hkdf_derive(version.secret.as_slice(), context, enc_len + extra)?;
                let cipher = aead(self.config.kind, &okm[..enc_len])?;
                let nonce_key = self
                    .config
                    .convergent_encryption
                    .then(|| Zeroizing::new(okm[enc_len..].to_vec()));
                Ok((CipherRef::Derived(Box::new(cipher)), nonce_key))
            }
            _ => Err(TransitError::internal("not a symmetric key")),
        }
    }

    /// Encrypts under `version` (0: the latest); returns the ciphertext and the version.
    pub fn encrypt(
        &self,
        version: i64,
        context: &[u8],
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> TransitResult<(String, u32)> {
        let kind = self.config.kind;
        if !kind.supports_encryption() {
            return Err(TransitError::invalid(format!(
                "message encryption not supported for key type {kind}"
            )));
        }
        if !associated_data.is_empty() && !kind.supports_associated_data() {
            return Err(TransitError::invalid(format!(
                "'associated_data' provided for non-AEAD cipher suite {kind}"
            )));
        }
        let v = self.version_for_use(version, "encryption")?;
        let bytes = match &v.material {
            Material::Aead(_) => {
                let (cipher, nonce_key) = self.cipher_for(v, context)?;
                let cipher = cipher.get();
                let nonce = match nonce_key {
                    Some(k) => {
                        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&k)
                            .map_err(TransitError::internal)?;
                        mac.update(plaintext);
                        let sum = mac.finalize().into_bytes();
                        Zeroizing::new(sum[..cipher.nonce_len()].to_vec())
                    }
                    None => random_nonce(cipher.nonce_len()),
                };
                cipher
                    .seal(&nonce, associated_data, plaintext)
                    .map_err(TransitError::internal)?
            }
            Material::Rsa(k) => {
                rsa::encrypt(&k.public, Oaep::new::<Sha256>(), plaintext).map_err(|e| {
                    TransitError::invalid(format!("failed to RSA encrypt the plaintext: {e}"))
                })?
            }
            _ => return Err(TransitError::internal("unexpected material for encryption")),
        };
        Ok((format_versioned(v.number, &bytes), v.number))
    }

    /// Decrypts a `vault:v<N>:` ciphertext. Format errors have their own messages; every
    /// other failure is [`TransitError::DecryptFailed`] after comparable work, whether
    /// the key is wrong, missing, of another type, or refuses the version.
    pub fn decrypt(
        &self,
        ciphertext: &str,
        context: &[u8],
        associated_data: &[u8],
    ) -> TransitResult<Zeroizing<Vec<u8>>> {
        let (version, payload) = parse_ciphertext(ciphertext)?;
        match self.decrypt_payload(version, &payload, context, associated_data) {
            Ok(plain) if !self.phantom => Ok(plain),
            Ok(_) => Err(TransitError::DecryptFailed),
            Err(TransitError::Engine(e)) if !matches!(e, crate::EngineError::BadRequest(_)) => {
                Err(TransitError::Engine(e))
            }
            Err(e) => {
                tracing::debug!(key = %self.config.name, reason = %e, "transit decryption refused");
                Err(TransitError::DecryptFailed)
            }
        }
    }

    fn decrypt_payload(
        &self,
        version: u32,
        payload: &[u8],
        context: &[u8],
        associated_data: &[u8],
    ) -> TransitResult<Zeroizing<Vec<u8>>> {
        let kind = self.config.kind;
        let usable = kind.supports_decryption()
            && (associated_data.is_empty() || kind.supports_associated_data());
        let v = match self.version_for_reading(version, "ciphertext") {
            Ok(v) if usable => v,
            Ok(_) => {
                let _ = decoy().open(payload, associated_data);
                return Err(TransitError::invalid(format!(
                    "message decryption not supported for key type {kind} with these parameters"
                )));
            }
            Err(e) => {
                let _ = decoy().open(payload, associated_data);
                return Err(e);
            }
        };
        match &v.material {
            Material::Aead(_) => {
                let (cipher, _) = match self.cipher_for(v, context) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = decoy().open(payload, associated_data);
                        return Err(e);
                    }
                };
                cipher
                    .get()
                    .open(payload, associated_data)
                    .map_err(|_| TransitError::DecryptFailed)
            }
            Material::Rsa(k) => k
                .decrypt(Oaep::new::<Sha256>(), payload)
                .map_err(|_| TransitError::DecryptFailed),
            _ => Err(TransitError::DecryptFailed),
        }
    }

    /// Decrypts and encrypts again under `version` (0: the latest).
    pub fn rewrap(
        &self,
        ciphertext: &str,
        context: &[u8],
        version: i64,
    ) -> TransitResult<(String, u32)> {
        let plain = self.decrypt(ciphertext, context, &[])?;
        self.encrypt(version, context, &plain, &[])
    }

    /// A fresh random key of `bits` bits and its encryption under this key.
    pub fn datakey(
        &self,
        bits: u64,
        version: i64,
        context: &[u8],
        associated_data: &[u8],
    ) -> TransitResult<(SecretBytes, String, u32)> {
        let len = match bits {
            128 => 16,
            256 => 32,
            512 => 64,
            _ => return Err(TransitError::invalid("invalid bit length")),
        };
        let data_key = SecretBytes::random(len);
        let (ciphertext, v) =
            self.encrypt(version, context, data_key.as_slice(), associated_data)?;
        Ok((data_key, ciphertext, v))
    }
}

/// A cipher either cached with the key or derived for one request.
enum CipherRef<'a> {
    Cached(&'a Aead),
    Derived(Box<Aead>),
}

impl CipherRef<'_> {
    fn get(&self) -> &Aead {
        match self {
            CipherRef::Cached(c) => c,
            CipherRef::Derived(c) => c,
        }
    }
}
