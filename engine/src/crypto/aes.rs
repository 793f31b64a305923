//! AES-256 modes beside GCM (`aead`): CBC with PKCS#7 padding, and key wrapping with
//! RFC 3394 (AES-KW) and RFC 5649 (AES-KWP, with padding), as PKCS#11's `CKM_AES_CBC_PAD`,
//! `CKM_AES_KEY_WRAP` and `CKM_AES_KEY_WRAP_KWP` define them.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use zeroize::Zeroizing;

pub const BLOCK: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AesError {
    #[error("an AES-256 key is 32 bytes")]
    KeyLength,
    /// CBC: not a whole number of blocks, or bad padding; a caller cannot tell which.
    #[error("the ciphertext does not decrypt under this key")]
    Decrypt,
    #[error("{0}")]
    Length(&'static str),
    /// Key unwrap: the integrity check failed.
    #[error("the wrapped key does not unwrap under this key")]
    Integrity,
}

/// AES-256-CBC with PKCS#7 padding.
pub fn cbc_pad_encrypt(
    key: &[u8],
    iv: &[u8; BLOCK],
    plaintext: &[u8],
) -> Result<Vec<u8>, AesError> {
    let enc =
        cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).map_err(|_| AesError::KeyLength)?;
    Ok(enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

/// The inverse of [`cbc_pad_encrypt`].
pub fn cbc_pad_decrypt(
    key: &[u8],
    iv: &[u8; BLOCK],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AesError> {
    let dec =
        cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).map_err(|_| AesError::KeyLength)?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) {
        return Err(AesError::Length(
            "AES-CBC ciphertext is a non-zero multiple of 16 bytes",
        ));
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = dec
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| AesError::Decrypt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// A key-encryption key of any AES size: managed keys are AES-256, the RFC vectors
/// are not.
enum Kek {
    Aes128(aes_kw::KekAes128),
    Aes192(aes_kw::KekAes192),
    Aes256(aes_kw::KekAes256),
}

macro_rules! on_kek {
    ($kek:expr, $k:ident => $body:expr) => {
        match $kek {
            Kek::Aes128($k) => $body,
            Kek::Aes192($k) => $body,
            Kek::Aes256($k) => $body,
        }
    };
}

fn kek(key: &[u8]) -> Result<Kek, AesError> {
    Ok(match key.len() {
        16 => Kek::Aes128(aes_kw::KekAes128::new(key.into())),
        24 => Kek::Aes192(aes_kw::KekAes192::new(key.into())),
        32 => Kek::Aes256(aes_kw::KekAes256::new(key.into())),
        _ => return Err(AesError::KeyLength),
    })
}

/// Wraps `data` under `key`: RFC 5649 when `padded`, else RFC 3394 (which takes a
/// multiple of 8 bytes, at least 16).
pub fn key_wrap(key: &[u8], data: &[u8], padded: bool) -> Result<Vec<u8>, AesError> {
    let kek = kek(key)?;
    if padded {
        if data.is_empty() {
            return Err(AesError::Length("AES-KWP wraps at least 1 byte"));
        }
        on_kek!(kek, k => k.wrap_with_padding_vec(data))
            .map_err(|_| AesError::Length("AES-KWP cannot wrap this many bytes"))
    } else {
        if data.len() < 16 || !data.len().is_multiple_of(8) {
            return Err(AesError::Length(
                "AES-KW wraps a multiple of 8 bytes, at least 16: use AES-KWP for other lengths",
            ));
        }
        on_kek!(kek, k => k.wrap_vec(data))
            .map_err(|_| AesError::Length("AES-KW cannot wrap this many bytes"))
    }
}

/// The inverse of [`key_wrap`].
pub fn key_unwrap(
    key: &[u8],
    wrapped: &[u8],
    padded: bool,
) -> Result<Zeroizing<Vec<u8>>, AesError> {
    let kek = kek(key)?;
    let min = if padded { 16 } else { 24 };
    if wrapped.len() < min || !wrapped.len().is_multiple_of(8) {
        return Err(AesError::Length(if padded {
            "an AES-KWP wrapped key is a multiple of 8 bytes, at least 16"
        } else {
            "an AES-KW wrapped key is a multiple of 8 bytes, at least 24"
        }));
    }
    let out = if padded {
        on_kek!(kek, k => k.unwrap_with_padding_vec(wrapped))
    } else {
        on_kek!(kek, k => k.unwrap_vec(wrapped))
    };
    out.map(Zeroizing::new).map_err(|_| AesError::Integrity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 3394 section 4.6: 256 bits of key data with a 256-bit KEK.
    #[test]
    fn rfc3394_vector() {
        let kek = unhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
        let data = unhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
        let wrapped = unhex(
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
        );
        assert_eq!(key_wrap(&kek, &data, false).unwrap(), wrapped);
        assert_eq!(&*key_unwrap(&kek, &wrapped, false).unwrap(), &data[..]);
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert_eq!(key_unwrap(&kek, &bad, false), Err(AesError::Integrity));
        assert!(matches!(
            key_unwrap(&kek, &wrapped[..20], false),
            Err(AesError::Length(_))
        ));
        assert!(matches!(
            key_wrap(&kek, &data[..20], false),
            Err(AesError::Length(_))
        ));
    }

    /// RFC 5649 section 6 (192-bit KEK), and round trips of other lengths under an
    /// AES-256 KEK.
    #[test]
    fn rfc5649_vectors_and_round_trips() {
        let kek = unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        for (data, wrapped) in [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ] {
            let (data, wrapped) = (unhex(data), unhex(wrapped));
            assert_eq!(key_wrap(&kek, &data, true).unwrap(), wrapped);
            assert_eq!(&*key_unwrap(&kek, &wrapped, true).unwrap(), &data[..]);
        }
        let kek = [7u8; 32];
        for len in [1usize, 7, 8, 20, 32, 1217] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let wrapped = key_wrap(&kek, &data, true).unwrap();
            assert_eq!(wrapped.len(), len.div_ceil(8) * 8 + 8, "{len}");
            assert_eq!(&*key_unwrap(&kek, &wrapped, true).unwrap(), &data[..]);
            let mut bad = wrapped.clone();
            bad[0] ^= 1;
            assert_eq!(key_unwrap(&kek, &bad, true), Err(AesError::Integrity));
        }
        assert_eq!(key_wrap(&[0u8; 20], b"x", true), Err(AesError::KeyLength));
    }

    /// NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), first block; the padding block is
    /// checked by decrypting, and a flipped padding byte fails.
    #[test]
    fn cbc_pad_vector_and_bad_padding() {
        let key = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv: [u8; 16] = unhex("000102030405060708090a0b0c0d0e0f")
            .try_into()
            .unwrap();
        let pt = unhex("6bc1bee22e409f96e93d7e117393172a");
        let ct = cbc_pad_encrypt(&key, &iv, &pt).unwrap();
        assert_eq!(ct.len(), 32);
        assert_eq!(ct[..16], unhex("f58c4c04d6e5f1ba779eabfb5f7bfbd6")[..]);
        assert_eq!(&*cbc_pad_decrypt(&key, &iv, &ct).unwrap(), &pt[..]);
        for len in [0usize, 1, 15, 16, 17, 100] {
            let data = vec![0xa5u8; len];
            let ct = cbc_pad_encrypt(&key, &iv, &data).unwrap();
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(&*cbc_pad_decrypt(&key, &iv, &ct).unwrap(), &data[..]);
        }
        // The last block decrypts to garbage padding under a changed second-to-last block.
        let mut bad = ct.clone();
        bad[15] ^= 0x01;
        assert_eq!(cbc_pad_decrypt(&key, &iv, &bad), Err(AesError::Decrypt));
        assert!(matches!(
            cbc_pad_decrypt(&key, &iv, &ct[..20]),
            Err(AesError::Length(_))
        ));
    }
}
