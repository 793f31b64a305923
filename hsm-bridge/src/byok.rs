//! BYOK wrap formats computed in software: what a seal without a device (Shamir, and the
//! TPM, which holds no managed keys) produces for a cloud export, in zeroized memory, and
//! the reference an in-boundary backend's start-up self-test compares its token with.
//!
//! The formats are the providers' and PKCS#11's own:
//! - RSA-OAEP of the key itself (AES keys): `RSAES_OAEP_SHA_1`/`_256` at AWS;
//! - `CKM_RSA_AES_KEY_WRAP`: a fresh AES-256 key under RSA-OAEP, then the target under
//!   that key with RFC 5649 (AES-KWP), the two concatenated: AWS's
//!   `RSA_AES_KEY_WRAP_SHA_*`, GCP's `RSA_OAEP_*_AES_256`, Azure's BYOK transfer blob.
//!
//! The target of an asymmetric key is its PKCS#8 `PrivateKeyInfo` DER; of an AES key, its
//! 32 bytes.

use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use zeroize::Zeroizing;

use crate::{BridgeError, WrapMechanism};

/// Length of the ephemeral AES key of the RSA-AES formats.
pub const EPHEMERAL_KEY_LEN: usize = 32;

/// The smallest wrapping key a provider may hand us; anything shorter is refused rather
/// than used.
pub const MIN_WRAPPING_BITS: usize = 2048;

impl WrapMechanism {
    /// Whether the format carries an ephemeral AES key (and so takes any target), or the
    /// target itself under RSA-OAEP (AES keys only).
    pub fn is_rsa_aes(self) -> bool {
        matches!(
            self,
            WrapMechanism::RsaAesKeyWrapSha1 | WrapMechanism::RsaAesKeyWrapSha256
        )
    }

    /// The OAEP hash (and MGF1 hash) the format uses.
    pub fn oaep_hash(self) -> crate::HashAlg {
        match self {
            WrapMechanism::RsaOaepSha1 | WrapMechanism::RsaAesKeyWrapSha1 => crate::HashAlg::Sha1,
            WrapMechanism::RsaOaepSha256 | WrapMechanism::RsaAesKeyWrapSha256 => {
                crate::HashAlg::Sha256
            }
        }
    }

    /// The PKCS#11 name, for error messages that say which mechanism is missing.
    pub fn pkcs11_name(self) -> &'static str {
        match self {
            WrapMechanism::RsaOaepSha1 => "CKM_RSA_PKCS_OAEP (SHA-1)",
            WrapMechanism::RsaOaepSha256 => "CKM_RSA_PKCS_OAEP (SHA-256)",
            WrapMechanism::RsaAesKeyWrapSha1 => "CKM_RSA_AES_KEY_WRAP (OAEP SHA-1, AES-KWP)",
            WrapMechanism::RsaAesKeyWrapSha256 => "CKM_RSA_AES_KEY_WRAP (OAEP SHA-256, AES-KWP)",
        }
    }
}

/// The provider's wrapping key, from its DER SubjectPublicKeyInfo.
pub fn wrapping_key(spki_der: &[u8]) -> Result<RsaPublicKey, BridgeError> {
    let key = RsaPublicKey::from_public_key_der(spki_der)
        .map_err(|_| BridgeError::BadInput("the wrapping key is not an RSA public key"))?;
    if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_WRAPPING_BITS {
        return Err(BridgeError::BadInput(
            "the wrapping key is shorter than 2048 bits",
        ));
    }
    Ok(key)
}

/// RSA-OAEP encryption of `data` under `key` with the format's hash (MGF1 with the same).
pub fn oaep_encrypt(
    key: &RsaPublicKey,
    hash: crate::HashAlg,
    data: &[u8],
) -> Result<Vec<u8>, BridgeError> {
    let mut rng = rand::thread_rng();
    let padding = match hash {
        crate::HashAlg::Sha1 => Oaep::new::<sha1::Sha1>(),
        crate::HashAlg::Sha256 => Oaep::new::<sha2::Sha256>(),
        _ => {
            return Err(BridgeError::BadInput(
                "BYOK formats use OAEP with SHA-1 or SHA-256",
            ))
        }
    };
    key.encrypt(&mut rng, padding, data).map_err(|_| {
        BridgeError::BadInput("the key is too long for RSA-OAEP under this wrapping key")
    })
}

/// RFC 5649 (AES key wrap with padding) of `data` under a 32-byte `kek`.
pub fn kwp_wrap(kek: &[u8], data: &[u8]) -> Result<Vec<u8>, BridgeError> {
    if kek.len() != EPHEMERAL_KEY_LEN {
        return Err(BridgeError::BadInput("an AES-KWP key is 32 bytes here"));
    }
    aes_kw::KekAes256::new(kek.into())
        .wrap_with_padding_vec(data)
        .map_err(|_| BridgeError::BadInput("AES-KWP cannot wrap this key"))
}

/// `target` (PKCS#8 DER, or an AES key's bytes) wrapped for export under the provider's
/// RSA key, in `mechanism`'s format. The ephemeral key lives in zeroized memory only.
pub fn wrap_software(
    target: &[u8],
    wrapping_public_der: &[u8],
    mechanism: WrapMechanism,
) -> Result<Vec<u8>, BridgeError> {
    let key = wrapping_key(wrapping_public_der)?;
    if !mechanism.is_rsa_aes() {
        return oaep_encrypt(&key, mechanism.oaep_hash(), target);
    }
    let mut ephemeral = Zeroizing::new([0u8; EPHEMERAL_KEY_LEN]);
    crate::fill_random(ephemeral.as_mut_slice());
    let mut out = oaep_encrypt(&key, mechanism.oaep_hash(), ephemeral.as_slice())?;
    out.extend_from_slice(&kwp_wrap(ephemeral.as_slice(), target)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rsa::pkcs8::EncodePublicKey;
    use rsa::RsaPrivateKey;

    use super::*;

    fn provider_key() -> (RsaPrivateKey, Vec<u8>) {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa keygen");
        let der = private
            .to_public_key()
            .to_public_key_der()
            .expect("spki")
            .as_bytes()
            .to_vec();
        (private, der)
    }

    #[test]
    fn rsa_aes_key_wrap_opens_with_oaep_then_kwp() {
        let (private, der) = provider_key();
        let target = b"a PKCS#8 document of an odd length!".to_vec();
        for (mechanism, padding) in [
            (
                WrapMechanism::RsaAesKeyWrapSha256,
                Oaep::new::<sha2::Sha256>(),
            ),
            (WrapMechanism::RsaAesKeyWrapSha1, Oaep::new::<sha1::Sha1>()),
        ] {
            let blob = wrap_software(&target, &der, mechanism).expect("wrap");
            let (rsa_part, kwp_part) = blob.split_at(256);
            let ephemeral = private.decrypt(padding, rsa_part).expect("oaep");
            assert_eq!(ephemeral.len(), 32);
            let opened = aes_kw::KekAes256::new(ephemeral.as_slice().into())
                .unwrap_with_padding_vec(kwp_part)
                .expect("kwp");
            assert_eq!(opened, target);
        }
    }

    #[test]
    fn oaep_alone_carries_the_key_itself() {
        let (private, der) = provider_key();
        let aes = [7u8; 32];
        let blob = wrap_software(&aes, &der, WrapMechanism::RsaOaepSha256).expect("wrap");
        assert_eq!(blob.len(), 256);
        let opened = private
            .decrypt(Oaep::new::<sha2::Sha256>(), &blob)
            .expect("oaep");
        assert_eq!(opened, aes);
    }

    #[test]
    fn short_or_foreign_wrapping_keys_are_refused() {
        let short = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("rsa keygen");
        let der = short.to_public_key().to_public_key_der().expect("spki");
        assert!(wrap_software(b"k", der.as_bytes(), WrapMechanism::RsaOaepSha256).is_err());
        assert!(wrap_software(b"k", b"not a key", WrapMechanism::RsaOaepSha256).is_err());
    }
}
