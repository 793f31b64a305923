//! AEAD ciphers with their key schedule made once, sealing to `nonce || ciphertext || tag`
//! (12-byte nonces, 24 for XChaCha20; 16-byte tags).

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use zeroize::Zeroizing;

pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadAlgorithm {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    XChaCha20Poly1305,
}

/// Why an AEAD operation did not give an answer. `Open` covers both a truncated input and
/// one that does not authenticate, so a caller cannot tell them apart by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("AEAD key has the wrong length")]
    KeyLength,
    #[error("nonce has the wrong length")]
    NonceLength,
    #[error("AEAD encryption failed")]
    Seal,
    #[error("the ciphertext does not open")]
    Open,
}

/// A ready AEAD cipher.
pub enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    XChaCha(Box<XChaCha20Poly1305>),
}

impl Aead {
    pub fn new(algorithm: AeadAlgorithm, key: &[u8]) -> Result<Aead, AeadError> {
        let bad = |_| AeadError::KeyLength;
        Ok(match algorithm {
            AeadAlgorithm::Aes128Gcm => {
                Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?))
            }
            AeadAlgorithm::Aes256Gcm => {
                Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?))
            }
            AeadAlgorithm::ChaCha20Poly1305 => Aead::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
            )),
            AeadAlgorithm::XChaCha20Poly1305 => Aead::XChaCha(Box::new(
                XChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
            )),
        })
    }

    pub fn nonce_len(&self) -> usize {
        match self {
            Aead::XChaCha(_) => 24,
            Aead::Aes128(_) | Aead::Aes256(_) | Aead::ChaCha(_) => 12,
        }
    }

    /// `nonce || ciphertext || tag`. `nonce` must be `nonce_len()` bytes.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let n = nonce.len();
        let mut out = Vec::with_capacity(n + plaintext.len() + TAG_LEN);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        self.seal_from(nonce, aad, out, n)
    }

    /// `ciphertext || tag` under the caller's nonce (PKCS#11's `CKM_AES_GCM` output).
    pub fn encrypt(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        self.seal_from(nonce, aad, out, 0)
    }

    /// Encrypts `out[start..]` in place and appends the tag.
    fn seal_from(
        &self,
        nonce: &[u8],
        aad: &[u8],
        mut out: Vec<u8>,
        start: usize,
    ) -> Result<Vec<u8>, AeadError> {
        if nonce.len() != self.nonce_len() {
            return Err(AeadError::NonceLength);
        }
        let buf = &mut out[start..];
        let tag = match self {
            Aead::Aes128(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
            Aead::Aes256(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
            Aead::ChaCha(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
            Aead::XChaCha(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, buf)
            }
        }
        .map_err(|_| AeadError::Seal)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens `nonce || ciphertext || tag`.
    pub fn open(&self, data: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        let n = self.nonce_len();
        if data.len() < n + TAG_LEN {
            return Err(AeadError::Open);
        }
        let (nonce, rest) = data.split_at(n);
        self.decrypt(nonce, aad, rest)
    }

    /// Opens `ciphertext || tag` under the caller's nonce.
    pub fn decrypt(
        &self,
        nonce: &[u8],
        aad: &[u8],
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        if nonce.len() != self.nonce_len() {
            return Err(AeadError::NonceLength);
        }
        if data.len() < TAG_LEN {
            return Err(AeadError::Open);
        }
        let (ct, tag) = data.split_at(data.len() - TAG_LEN);
        let mut buf = Zeroizing::new(ct.to_vec());
        let tag = GenericArray::from_slice(tag);
        match self {
            Aead::Aes128(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
            Aead::Aes256(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
            Aead::ChaCha(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
            Aead::XChaCha(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf, tag)
            }
        }
        .map_err(|_| AeadError::Open)?;
        Ok(buf)
    }
}
