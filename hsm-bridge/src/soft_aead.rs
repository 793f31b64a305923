//! The one blob format of the roots whose key is held in software memory (Shamir, and
//! the TPM's unsealed secret): a version byte, a random 24-byte XChaCha20 nonce, then
//! the XChaCha20-Poly1305 ciphertext and tag, with the caller's AAD.
//!
//! Shamir blobs written before the version byte (nonce first) still open: see
//! [`open_unversioned`].

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{fill_random, BridgeError};

pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption fails only for a message beyond the cipher's limit.
        .map_err(|_| BridgeError::Random)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The plaintext of a versioned blob; `None` for any other version, a wrong key or AAD,
/// or altered bytes.
pub(crate) fn open(key: &[u8; 32], aad: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    match blob.split_first() {
        Some((&VERSION, rest)) => open_unversioned(key, aad, rest),
        _ => None,
    }
}

/// A blob without the version byte, as the Shamir root wrote before there was one.
pub(crate) fn open_unversioned(
    key: &[u8; 32],
    aad: &[u8],
    blob: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = blob.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_what_it_seals_and_nothing_else() {
        let key = [9u8; 32];
        let blob = seal(&key, b"aad", b"secret").unwrap();
        assert_eq!(blob[0], VERSION);
        assert_eq!(open(&key, b"aad", &blob).unwrap().as_slice(), b"secret");
        assert!(open(&key, b"other", &blob).is_none());
        assert!(open(&[8u8; 32], b"aad", &blob).is_none());
        let mut bumped = blob.clone();
        bumped[0] = VERSION + 1;
        assert!(open(&key, b"aad", &bumped).is_none());
        assert!(open(&key, b"aad", &blob[..10]).is_none());
        // The versionless layout is the same bytes after the version.
        assert_eq!(
            open_unversioned(&key, b"aad", &blob[1..])
                .unwrap()
                .as_slice(),
            b"secret"
        );
    }
}
