//! Encryption, decryption, ML-KEM and AES key wrapping, per scheme.
//!
//! `Default` formats (`material.rs` documents them): RSA-OAEP with SHA-256 in software and
//! SHA-1 inside the HSM; AES-256-GCM as `iv(12) || ct || tag`; ML-KEM-768 as
//! `kem_ct(1088) || iv || ct || tag`, the shared secret sealing with AES-256-GCM.

use ::rsa::traits::PublicKeyParts;
use ::rsa::{Oaep, Pkcs1v15Encrypt};
use hsm_bridge::{Capabilities, DecryptMechanism, EncryptMechanism, HashAlg, RootOfTrust};
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::super::material::{corrupt, internal};
use super::{with_hash, Algorithm, CipherScheme, Hash, KeyError, Loaded, Protection};
use crate::crypto::aead::{Aead, AeadAlgorithm};
use crate::crypto::aes::{self, AesError};
use crate::crypto::rsa;

type MlKemEk = <MlKem768 as KemCore>::EncapsulationKey;

const GCM_IV: usize = 12;
const GCM_TAG: usize = 16;
const MLKEM_CT: usize = 1088;

pub(super) fn is_rsa(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096
    )
}

fn failed() -> KeyError {
    KeyError::invalid(
        "DECRYPTION_FAILED",
        "the ciphertext does not decrypt under this key version",
    )
}

/// Checks `scheme` against the key type and its own parameters.
pub(super) fn check(algorithm: Algorithm, scheme: &CipherScheme) -> Result<(), KeyError> {
    let fits = match scheme {
        CipherScheme::Default => matches!(
            algorithm,
            Algorithm::Rsa2048
                | Algorithm::Rsa3072
                | Algorithm::Rsa4096
                | Algorithm::Aes256
                | Algorithm::MlKem768
        ),
        CipherScheme::RsaPkcs1 | CipherScheme::RsaOaep { .. } => is_rsa(algorithm),
        CipherScheme::AesGcm { .. } | CipherScheme::AesCbcPad { .. } => {
            algorithm == Algorithm::Aes256
        }
    };
    if !fits {
        return Err(KeyError::WrongKeyType(format!(
            "{} keys cannot encrypt with {}",
            algorithm.as_str(),
            match scheme {
                CipherScheme::Default => "any scheme",
                CipherScheme::RsaPkcs1 => "RSA PKCS#1 v1.5",
                CipherScheme::RsaOaep { .. } => "RSA-OAEP",
                CipherScheme::AesGcm { .. } => "AES-GCM",
                CipherScheme::AesCbcPad { .. } => "AES-CBC",
            }
        )));
    }
    match scheme {
        CipherScheme::RsaOaep { label, .. } if std::str::from_utf8(label).is_err() => Err(
            KeyError::Unsupported("RSA-OAEP labels must be UTF-8 text here".into()),
        ),
        CipherScheme::AesGcm { iv, .. } if iv.len() != GCM_IV => Err(KeyError::invalid(
            "INVALID_IV",
            format!("AES-GCM takes a {GCM_IV}-byte IV, not {} bytes", iv.len()),
        )),
        CipherScheme::AesGcm { tag_len, .. } if *tag_len != GCM_TAG => Err(KeyError::Unsupported(
            format!("AES-GCM tags are {GCM_TAG} bytes (128 bits) here, not {tag_len}"),
        )),
        _ => Ok(()),
    }
}

/// The OAEP padding for a hash, an MGF1 hash and a label (UTF-8, see [`check`]).
fn oaep(hash: Hash, mgf: Hash, label: &[u8]) -> Result<Oaep, KeyError> {
    let label = std::str::from_utf8(label)
        .map_err(|_| KeyError::Unsupported("RSA-OAEP labels must be UTF-8 text here".into()))?;
    Ok(
        with_hash!(hash, D => with_hash!(mgf, M => if label.is_empty() {
            Oaep::new_with_mgf_hash::<D, M>()
        } else {
            Oaep::new_with_mgf_hash_and_label::<D, M, _>(label)
        })),
    )
}

/// The OAEP hash of the `Default` RSA scheme: SHA-1 inside the HSM (all SoftHSM2 does).
fn default_oaep_hash(protection: Protection) -> Hash {
    match protection {
        Protection::Hsm => Hash::Sha1,
        Protection::Software => Hash::Sha256,
    }
}

/// Encryption under an RSA public key (DER SubjectPublicKeyInfo).
pub(super) fn rsa_encrypt(
    public: &[u8],
    protection: Protection,
    scheme: &CipherScheme,
    plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let pk = rsa::public_from_der(public).map_err(|_| {
        KeyError::invalid(
            "INVALID_PUBLIC_KEY",
            "the public key is not a valid RSA key",
        )
    })?;
    let k = pk.size();
    let too_long = |name: &str, max: usize| {
        KeyError::invalid(
            "DATA_TOO_LONG",
            format!(
                "{name} encrypts at most {max} bytes with this key, not {}",
                plaintext.len()
            ),
        )
    };
    match scheme {
        CipherScheme::Default => {
            let h = default_oaep_hash(protection);
            let max = k.saturating_sub(2 * h.digest_len() + 2);
            if plaintext.len() > max {
                return Err(KeyError::TooLarge(format!(
                    "RSA_{} with OAEP encrypts at most {max} bytes; encrypt a data key instead",
                    k * 8
                )));
            }
            rsa::encrypt(&pk, oaep(h, h, &[])?, plaintext).map_err(internal)
        }
        CipherScheme::RsaPkcs1 => {
            let max = k.saturating_sub(11);
            if plaintext.len() > max {
                return Err(too_long("RSA PKCS#1 v1.5", max));
            }
            rsa::encrypt(&pk, Pkcs1v15Encrypt, plaintext).map_err(internal)
        }
        CipherScheme::RsaOaep { hash, mgf, label } => {
            let max = k.saturating_sub(2 * hash.digest_len() + 2);
            if plaintext.len() > max {
                return Err(too_long("RSA-OAEP", max));
            }
            rsa::encrypt(&pk, oaep(*hash, *mgf, label)?, plaintext).map_err(internal)
        }
        CipherScheme::AesGcm { .. } | CipherScheme::AesCbcPad { .. } => Err(
            KeyError::WrongKeyType("RSA keys cannot encrypt with AES schemes".into()),
        ),
    }
}

/// What the HSM is asked for to encrypt with an AES key; `iv` is the IV of `Default`.
fn hsm_encrypt<'a>(scheme: &'a CipherScheme, iv: &'a [u8]) -> Option<EncryptMechanism<'a>> {
    Some(match scheme {
        CipherScheme::Default => EncryptMechanism::AesGcm {
            iv,
            aad: &[],
            tag_len: GCM_TAG,
        },
        CipherScheme::AesGcm { iv, aad, tag_len } => EncryptMechanism::AesGcm {
            iv,
            aad,
            tag_len: *tag_len,
        },
        CipherScheme::AesCbcPad { iv } => EncryptMechanism::AesCbcPad { iv: *iv },
        CipherScheme::RsaPkcs1 | CipherScheme::RsaOaep { .. } => return None,
    })
}

/// What the HSM is asked for to decrypt; `iv` is the IV of AES `Default`.
fn hsm_decrypt<'a>(
    algorithm: Algorithm,
    scheme: &'a CipherScheme,
    iv: &'a [u8],
) -> Option<DecryptMechanism<'a>> {
    Some(match scheme {
        CipherScheme::Default if algorithm == Algorithm::Aes256 => DecryptMechanism::AesGcm {
            iv,
            aad: &[],
            tag_len: GCM_TAG,
        },
        CipherScheme::Default if is_rsa(algorithm) => DecryptMechanism::RsaOaep {
            hash: HashAlg::Sha1,
            mgf: HashAlg::Sha1,
            label: &[],
        },
        CipherScheme::Default => return None,
        CipherScheme::RsaPkcs1 => DecryptMechanism::RsaPkcs1,
        CipherScheme::RsaOaep { hash, mgf, label } => DecryptMechanism::RsaOaep {
            hash: hash.bridge(),
            mgf: mgf.bridge(),
            label,
        },
        CipherScheme::AesGcm { iv, aad, tag_len } => DecryptMechanism::AesGcm {
            iv,
            aad,
            tag_len: *tag_len,
        },
        CipherScheme::AesCbcPad { iv } => DecryptMechanism::AesCbcPad { iv: *iv },
    })
}

/// Whether an HSM-held version of `algorithm` can use `scheme` both ways.
pub(super) fn hsm_can(algorithm: Algorithm, caps: &Capabilities, scheme: &CipherScheme) -> bool {
    let Some(spec) = algorithm.spec() else {
        return false;
    };
    let iv = [0u8; GCM_IV];
    let decrypts = hsm_decrypt(algorithm, scheme, &iv).is_some_and(|m| caps.can_decrypt(spec, &m));
    if is_rsa(algorithm) {
        return decrypts;
    }
    decrypts && hsm_encrypt(scheme, &iv).is_some_and(|m| caps.can_encrypt(spec, &m))
}

fn hsm_unsupported(algorithm: Algorithm, what: impl std::fmt::Debug) -> KeyError {
    KeyError::Unsupported(format!(
        "the HSM holding this {} key cannot {what:?}",
        algorithm.as_str()
    ))
}

fn gcm(key: &[u8]) -> Result<Aead, KeyError> {
    Aead::new(AeadAlgorithm::Aes256Gcm, key).map_err(internal)
}

fn aes_error(e: AesError) -> KeyError {
    match e {
        AesError::KeyLength => corrupt(),
        AesError::Length(m) => KeyError::invalid("INVALID_CIPHERTEXT", m),
        AesError::Decrypt | AesError::Integrity => failed(),
    }
}

/// Encrypts; `loaded` is the secret key (AES only: RSA and ML-KEM use `public`).
pub(super) fn encrypt(
    loaded: Option<&Loaded>,
    algorithm: Algorithm,
    protection: Protection,
    public: Option<&[u8]>,
    root: &dyn RootOfTrust,
    scheme: &CipherScheme,
    plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
            rsa_encrypt(public.ok_or_else(corrupt)?, protection, scheme, plaintext)
        }
        Algorithm::Aes256 => {
            let mut iv = [0u8; GCM_IV];
            if *scheme == CipherScheme::Default {
                hsm_bridge::fill_random(&mut iv);
            }
            let out = match loaded.ok_or_else(corrupt)? {
                Loaded::Hsm(k) => {
                    let m = hsm_encrypt(scheme, &iv).ok_or_else(corrupt)?;
                    if !root.capabilities().can_encrypt(k.spec, &m) {
                        return Err(hsm_unsupported(algorithm, m));
                    }
                    root.encrypt(k, m, plaintext)?
                }
                Loaded::Aes(key) => match scheme {
                    CipherScheme::Default => {
                        return gcm(key)?.seal(&iv, &[], plaintext).map_err(internal)
                    }
                    CipherScheme::AesGcm { iv, aad, .. } => {
                        gcm(key)?.encrypt(iv, aad, plaintext).map_err(internal)?
                    }
                    CipherScheme::AesCbcPad { iv } => {
                        aes::cbc_pad_encrypt(key, iv, plaintext).map_err(aes_error)?
                    }
                    CipherScheme::RsaPkcs1 | CipherScheme::RsaOaep { .. } => return Err(corrupt()),
                },
                _ => return Err(corrupt()),
            };
            if *scheme == CipherScheme::Default {
                let mut framed = Vec::with_capacity(GCM_IV + out.len());
                framed.extend_from_slice(&iv);
                framed.extend_from_slice(&out);
                return Ok(framed);
            }
            Ok(out)
        }
        Algorithm::MlKem768 => {
            let (ct, shared) = encapsulate_public(public.ok_or_else(corrupt)?)?;
            let mut iv = [0u8; GCM_IV];
            hsm_bridge::fill_random(&mut iv);
            let mut out = ct;
            out.extend(gcm(&shared)?.seal(&iv, &[], plaintext).map_err(internal)?);
            Ok(out)
        }
        _ => Err(KeyError::WrongKeyType(format!(
            "{} keys cannot encrypt",
            algorithm.as_str()
        ))),
    }
}

pub(super) fn decrypt(
    loaded: &Loaded,
    algorithm: Algorithm,
    protection: Protection,
    root: &dyn RootOfTrust,
    scheme: &CipherScheme,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    match loaded {
        Loaded::Hsm(k) => {
            let (iv, data) = if algorithm == Algorithm::Aes256 && *scheme == CipherScheme::Default {
                if ciphertext.len() < GCM_IV + GCM_TAG {
                    return Err(KeyError::invalid(
                        "DECRYPTION_FAILED",
                        "ciphertext too short",
                    ));
                }
                ciphertext.split_at(GCM_IV)
            } else {
                (&[][..], ciphertext)
            };
            let m = hsm_decrypt(algorithm, scheme, iv).ok_or_else(corrupt)?;
            if !root.capabilities().can_decrypt(k.spec, &m) {
                return Err(hsm_unsupported(algorithm, m));
            }
            Ok(root.decrypt(k, m, data)?)
        }
        Loaded::Rsa(k) => match scheme {
            CipherScheme::Default => {
                let h = default_oaep_hash(protection);
                k.decrypt(oaep(h, h, &[])?, ciphertext)
            }
            CipherScheme::RsaPkcs1 => k.decrypt(Pkcs1v15Encrypt, ciphertext),
            CipherScheme::RsaOaep { hash, mgf, label } => {
                k.decrypt(oaep(*hash, *mgf, label)?, ciphertext)
            }
            CipherScheme::AesGcm { .. } | CipherScheme::AesCbcPad { .. } => return Err(corrupt()),
        }
        .map_err(|_| failed()),
        Loaded::Aes(key) => match scheme {
            CipherScheme::Default => gcm_open(key, ciphertext),
            CipherScheme::AesGcm { iv, aad, .. } => {
                gcm(key)?.decrypt(iv, aad, ciphertext).map_err(|_| failed())
            }
            CipherScheme::AesCbcPad { iv } => {
                aes::cbc_pad_decrypt(key, iv, ciphertext).map_err(aes_error)
            }
            CipherScheme::RsaPkcs1 | CipherScheme::RsaOaep { .. } => Err(corrupt()),
        },
        Loaded::MlKem(_) => {
            if ciphertext.len() < MLKEM_CT + GCM_IV + GCM_TAG {
                return Err(KeyError::invalid(
                    "INVALID_CIPHERTEXT",
                    "the ciphertext is too short for ML-KEM-768",
                ));
            }
            let shared = decapsulate(loaded, &ciphertext[..MLKEM_CT]).map_err(|_| failed())?;
            gcm_open(&shared, &ciphertext[MLKEM_CT..])
        }
        Loaded::Ec(_) | Loaded::MlDsa(_) => Err(KeyError::WrongKeyType(format!(
            "{} keys cannot decrypt",
            algorithm.as_str()
        ))),
    }
}

/// Opens `iv || ct || tag`.
fn gcm_open(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if data.len() < GCM_IV + GCM_TAG {
        return Err(KeyError::invalid(
            "INVALID_CIPHERTEXT",
            "the ciphertext is too short",
        ));
    }
    gcm(key)?.open(data, &[]).map_err(|_| failed())
}

/// ML-KEM-768 encapsulation to an encoded public key (1184 bytes): the ciphertext (1088
/// bytes) and the 32-byte shared secret.
pub fn encapsulate_public(public: &[u8]) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), KeyError> {
    let enc = ml_kem::Encoded::<MlKemEk>::try_from(public).map_err(|_| {
        KeyError::invalid(
            "INVALID_PUBLIC_KEY",
            format!(
                "an ML-KEM-768 public key is 1184 bytes, not {}",
                public.len()
            ),
        )
    })?;
    let ek = MlKemEk::from_bytes(&enc);
    let (ct, shared) = ek.encapsulate(&mut OsRng).map_err(|_| corrupt())?;
    Ok((ct.to_vec(), Zeroizing::new(shared.to_vec())))
}

/// ML-KEM-768 decapsulation with a loaded version: the 32-byte shared secret.
pub(super) fn decapsulate(
    loaded: &Loaded,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let Loaded::MlKem(dk) = loaded else {
        return Err(KeyError::WrongKeyType(
            "only ML-KEM keys decapsulate".into(),
        ));
    };
    let ct = ml_kem::Ciphertext::<MlKem768>::try_from(ciphertext).map_err(|_| {
        KeyError::invalid(
            "INVALID_CIPHERTEXT",
            format!(
                "an ML-KEM-768 ciphertext is {MLKEM_CT} bytes, not {}",
                ciphertext.len()
            ),
        )
    })?;
    let shared = dk.decapsulate(&ct).map_err(|_| failed())?;
    Ok(Zeroizing::new(shared.to_vec()))
}

fn aes_kek(loaded: &Loaded) -> Result<&[u8], KeyError> {
    match loaded {
        Loaded::Aes(key) => Ok(key),
        Loaded::Hsm(_) => Err(KeyError::Unsupported(
            "AES key wrapping with an HSM-held key is not supported: the unwrapped key would leave the HSM".into(),
        )),
        _ => Err(KeyError::WrongKeyType(
            "AES key wrapping needs an AES key".into(),
        )),
    }
}

/// RFC 3394 (`padded` false) or RFC 5649 unwrap with a software AES key.
pub(super) fn aes_unwrap(
    loaded: &Loaded,
    wrapped: &[u8],
    padded: bool,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    aes::key_unwrap(aes_kek(loaded)?, wrapped, padded).map_err(aes_error)
}

/// The inverse of [`aes_unwrap`].
pub(super) fn aes_wrap(loaded: &Loaded, secret: &[u8], padded: bool) -> Result<Vec<u8>, KeyError> {
    aes::key_wrap(aes_kek(loaded)?, secret, padded).map_err(|e| match e {
        AesError::Length(m) => KeyError::invalid("DATA_TOO_LONG", m),
        other => aes_error(other),
    })
}
