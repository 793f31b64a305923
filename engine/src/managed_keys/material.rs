//! Key material and the operations on it. HSM-protected versions go to the root of trust
//! (`RootOfTrust::sign`/`encrypt`/`decrypt` on the wrapped blob); software versions are
//! held here, parsed once and zeroized on drop. Public-key operations (verify, RSA and
//! ML-KEM encryption) use the stored public key in every mode.
//!
//! Formats: RSA signs PKCS#1 v1.5 with SHA-256; ECDSA signs SHA-256 (P-256) or SHA-384
//! (P-384) and answers DER, as OpenSSL does; ML-DSA-65 signs pure (empty context). RSA
//! encrypts with OAEP, SHA-256 in software and SHA-1 inside the HSM (all SoftHSM2 can
//! do, see DESIGN.md); AES-256 with GCM (`iv(12) || ct || tag`); ML-KEM-768 encapsulates
//! a key that seals the plaintext with AES-256-GCM (`kem_ct(1088) || iv || ct || tag`).
//! The RSA, ECDSA and AES-GCM code for software keys is `crate::crypto`, shared with
//! transit.

use ::rsa::pkcs8::DecodePublicKey;
use ::rsa::signature::Verifier;
use ::rsa::traits::PublicKeyParts;
use ::rsa::{Oaep, Pkcs1v15Sign};
use base64::Engine as _;
use hsm_bridge::{DecryptMechanism, EncryptMechanism, RootOfTrust, SignMechanism, WrappedKey};
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, Keypair, MlDsa65};
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use rand::rngs::OsRng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use super::error::KeyError;
use super::model::{Algorithm, Protection, StoredMaterial};
use crate::crypto::aead::{Aead, AeadAlgorithm};
use crate::crypto::ecdsa::{self, Curve, EcError, EcKey, EcPublicKey, SignatureFormat};
use crate::crypto::rsa::{self, RsaKey};
use crate::error::EngineError;

type MlKemDk = <MlKem768 as KemCore>::DecapsulationKey;
type MlKemEk = <MlKem768 as KemCore>::EncapsulationKey;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const GCM_IV: usize = 12;
const GCM_TAG: usize = 16;
const MLKEM_CT: usize = 1088;

/// A version's private or secret key, ready to use.
pub enum Loaded {
    Hsm(WrappedKey),
    Rsa(Box<RsaKey>),
    Ec(EcKey),
    Aes(Zeroizing<Vec<u8>>),
    MlDsa(Box<ml_dsa::SigningKey<MlDsa65>>),
    MlKem(Box<MlKemDk>),
}

fn internal<E: std::fmt::Display>(e: E) -> KeyError {
    KeyError::Engine(EngineError::internal(e))
}

fn corrupt() -> KeyError {
    KeyError::Engine(EngineError::Corrupt("keys/material".into()))
}

/// The curve of an EC algorithm.
fn curve(algorithm: Algorithm) -> Option<Curve> {
    match algorithm {
        Algorithm::EcP256 => Some(Curve::P256),
        Algorithm::EcP384 => Some(Curve::P384),
        _ => None,
    }
}

/// What an EC key signs: SHA-256 of the message on P-256, SHA-384 on P-384.
fn ec_digest(curve: Curve, message: &[u8]) -> Vec<u8> {
    match curve {
        Curve::P256 => Sha256::digest(message).to_vec(),
        Curve::P384 => Sha384::digest(message).to_vec(),
    }
}

/// A new version: its stored material, public key and protection.
pub fn generate(
    algorithm: Algorithm,
    root: &dyn RootOfTrust,
) -> Result<(StoredMaterial, Option<Vec<u8>>, Protection), KeyError> {
    if let (true, Some(spec)) = (root.capabilities().in_boundary_keys, algorithm.spec()) {
        let wrapped = root.generate_key(spec)?;
        let stored = StoredMaterial {
            kind: "hsm".into(),
            material: B64.encode(&wrapped.blob),
        };
        return Ok((stored, wrapped.public.clone(), Protection::Hsm));
    }
    let (secret, public): (Zeroizing<Vec<u8>>, Option<Vec<u8>>) = match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
            let bits = match algorithm {
                Algorithm::Rsa2048 => 2048,
                Algorithm::Rsa3072 => 3072,
                _ => 4096,
            };
            let key = RsaKey::generate(bits).map_err(internal)?;
            let public = rsa::public_to_der(&key.public).map_err(internal)?;
            (key.to_pkcs8_der().map_err(internal)?, Some(public))
        }
        Algorithm::EcP256 | Algorithm::EcP384 => {
            let curve = curve(algorithm).ok_or_else(corrupt)?;
            let scalar = EcKey::generate(curve);
            let public = EcKey::from_scalar(curve, &scalar)
                .and_then(|k| k.public_key().to_der())
                .map_err(internal)?;
            (scalar, Some(public))
        }
        Algorithm::Aes256 => {
            let mut k = Zeroizing::new(vec![0u8; 32]);
            root.random(&mut k)?;
            (k, None)
        }
        Algorithm::MlDsa65 => {
            let mut seed = Zeroizing::new(vec![0u8; 32]);
            root.random(&mut seed)?;
            let key = ml_dsa_from_seed(&seed)?;
            let public = key.verifying_key().encode().to_vec();
            (seed, Some(public))
        }
        Algorithm::MlKem768 => {
            let (dk, ek) = MlKem768::generate(&mut OsRng);
            (
                Zeroizing::new(dk.as_bytes().to_vec()),
                Some(ek.as_bytes().to_vec()),
            )
        }
    };
    let stored = StoredMaterial {
        kind: "software".into(),
        material: B64.encode(&*secret),
    };
    Ok((stored, public, Protection::Software))
}

fn ml_dsa_from_seed(seed: &[u8]) -> Result<ml_dsa::SigningKey<MlDsa65>, KeyError> {
    let seed = ml_dsa::B32::try_from(seed).map_err(|_| corrupt())?;
    Ok(ml_dsa::SigningKey::<MlDsa65>::from_seed(&seed))
}

/// Parses stored material for use.
pub fn load(
    algorithm: Algorithm,
    stored: &StoredMaterial,
    public: Option<&[u8]>,
) -> Result<Loaded, KeyError> {
    let bytes = Zeroizing::new(B64.decode(&stored.material).map_err(|_| corrupt())?);
    if stored.kind == "hsm" {
        let spec = algorithm.spec().ok_or_else(corrupt)?;
        return Ok(Loaded::Hsm(WrappedKey {
            spec,
            blob: bytes.to_vec(),
            public: public.map(|p| p.to_vec()),
        }));
    }
    Ok(match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => Loaded::Rsa(Box::new(
            RsaKey::from_pkcs8_der(&bytes).map_err(|_| corrupt())?,
        )),
        Algorithm::EcP256 | Algorithm::EcP384 => {
            let curve = curve(algorithm).ok_or_else(corrupt)?;
            Loaded::Ec(EcKey::from_scalar(curve, &bytes).map_err(|_| corrupt())?)
        }
        Algorithm::Aes256 => Loaded::Aes(bytes),
        Algorithm::MlDsa65 => Loaded::MlDsa(Box::new(ml_dsa_from_seed(&bytes)?)),
        Algorithm::MlKem768 => {
            let enc = ml_kem::Encoded::<MlKemDk>::try_from(&bytes[..]).map_err(|_| corrupt())?;
            Loaded::MlKem(Box::new(MlKemDk::from_bytes(&enc)))
        }
    })
}

pub fn sign(
    loaded: &Loaded,
    algorithm: Algorithm,
    root: &dyn RootOfTrust,
    message: &[u8],
) -> Result<Vec<u8>, KeyError> {
    Ok(match loaded {
        Loaded::Hsm(k) => match curve(algorithm) {
            Some(curve) => {
                let raw =
                    root.sign(k, SignMechanism::EcdsaPrehashed, &ec_digest(curve, message))?;
                ecdsa::fixed_to_der(curve, &raw).map_err(internal)?
            }
            None => root.sign(k, SignMechanism::RsaPkcs1Sha256, message)?,
        },
        Loaded::Rsa(k) => k
            .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
            .map_err(internal)?,
        Loaded::Ec(k) => k
            .sign_prehash(&ec_digest(k.curve(), message), SignatureFormat::Der)
            .map_err(internal)?,
        Loaded::MlDsa(k) => k
            .expanded_key()
            .sign_deterministic(message, &[])
            .map_err(internal)?
            .encode()
            .to_vec(),
        Loaded::Aes(_) | Loaded::MlKem(_) => {
            return Err(KeyError::WrongKeyType(format!(
                "{} keys cannot sign",
                algorithm.as_str()
            )))
        }
    })
}

/// Checks a signature against a version's public key.
pub fn verify(
    algorithm: Algorithm,
    public: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<bool, KeyError> {
    Ok(match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
            let pk = rsa::public_from_der(public).map_err(|_| corrupt())?;
            let Ok(sig) = ::rsa::pkcs1v15::Signature::try_from(signature) else {
                return Ok(false);
            };
            ::rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk)
                .verify(message, &sig)
                .is_ok()
        }
        Algorithm::EcP256 | Algorithm::EcP384 => {
            let curve = curve(algorithm).ok_or_else(corrupt)?;
            let pk = EcPublicKey::from_spki(curve, public).map_err(|_| corrupt())?;
            match pk.verify_prehash(&ec_digest(curve, message), signature, SignatureFormat::Der) {
                Ok(valid) => valid,
                Err(EcError::InvalidSignature) => false,
                Err(e) => return Err(internal(e)),
            }
        }
        Algorithm::MlDsa65 => {
            let enc = EncodedVerifyingKey::<MlDsa65>::try_from(public).map_err(|_| corrupt())?;
            let vk = ml_dsa::VerifyingKey::<MlDsa65>::decode(&enc);
            let Ok(enc_sig) = EncodedSignature::<MlDsa65>::try_from(signature) else {
                return Ok(false);
            };
            let Some(sig) = ml_dsa::Signature::<MlDsa65>::decode(&enc_sig) else {
                return Ok(false);
            };
            vk.verify_with_context(message, &[], &sig)
        }
        Algorithm::Aes256 | Algorithm::MlKem768 => {
            return Err(KeyError::WrongKeyType(format!(
                "{} keys cannot verify signatures",
                algorithm.as_str()
            )))
        }
    })
}

fn gcm_seal(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cipher = Aead::new(AeadAlgorithm::Aes256Gcm, key).map_err(internal)?;
    let mut iv = [0u8; GCM_IV];
    hsm_bridge::fill_random(&mut iv);
    cipher.seal(&iv, &[], plaintext).map_err(internal)
}

fn gcm_open(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if data.len() < GCM_IV + GCM_TAG {
        return Err(KeyError::invalid(
            "INVALID_CIPHERTEXT",
            "the ciphertext is too short",
        ));
    }
    let cipher = Aead::new(AeadAlgorithm::Aes256Gcm, key).map_err(internal)?;
    cipher.open(data, &[]).map_err(|_| {
        KeyError::invalid(
            "DECRYPTION_FAILED",
            "the ciphertext does not decrypt under this key version",
        )
    })
}

fn oaep(protection: Protection) -> Oaep {
    match protection {
        Protection::Hsm => Oaep::new::<sha1::Sha1>(),
        Protection::Software => Oaep::new::<Sha256>(),
    }
}

/// The encryption scheme a version uses, for its JSON.
pub fn encryption_algorithm(algorithm: Algorithm, protection: Protection) -> Option<&'static str> {
    match (algorithm, protection) {
        (Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096, Protection::Hsm) => {
            Some("RSAES_OAEP_SHA_1")
        }
        (Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096, _) => {
            Some("RSAES_OAEP_SHA_256")
        }
        (Algorithm::Aes256, _) => Some("AES_256_GCM"),
        (Algorithm::MlKem768, _) => Some("ML_KEM_768_AES_256_GCM"),
        _ => None,
    }
}

pub fn encrypt(
    loaded: &Loaded,
    algorithm: Algorithm,
    protection: Protection,
    public: Option<&[u8]>,
    root: &dyn RootOfTrust,
    plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    match algorithm {
        Algorithm::Aes256 => match loaded {
            Loaded::Hsm(k) => Ok(root.encrypt(k, EncryptMechanism::Aes256Gcm, plaintext)?),
            Loaded::Aes(k) => gcm_seal(k, plaintext),
            _ => Err(corrupt()),
        },
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
            let pk = rsa::public_from_der(public.ok_or_else(corrupt)?).map_err(|_| corrupt())?;
            let hash_len = if protection == Protection::Hsm {
                20
            } else {
                32
            };
            let max = pk.size().saturating_sub(2 * hash_len + 2);
            if plaintext.len() > max {
                return Err(KeyError::TooLarge(format!(
                    "{} with OAEP encrypts at most {max} bytes; encrypt a data key instead",
                    algorithm.as_str()
                )));
            }
            rsa::encrypt(&pk, oaep(protection), plaintext).map_err(internal)
        }
        Algorithm::MlKem768 => {
            let enc = ml_kem::Encoded::<MlKemEk>::try_from(public.ok_or_else(corrupt)?)
                .map_err(|_| corrupt())?;
            let ek = MlKemEk::from_bytes(&enc);
            let (ct, shared) = ek.encapsulate(&mut OsRng).map_err(|_| corrupt())?;
            let mut out = ct.to_vec();
            out.extend(gcm_seal(&shared, plaintext)?);
            Ok(out)
        }
        _ => Err(KeyError::WrongKeyType(format!(
            "{} keys cannot encrypt",
            algorithm.as_str()
        ))),
    }
}

pub fn decrypt(
    loaded: &Loaded,
    algorithm: Algorithm,
    protection: Protection,
    root: &dyn RootOfTrust,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let failed = || {
        KeyError::invalid(
            "DECRYPTION_FAILED",
            "the ciphertext does not decrypt under this key version",
        )
    };
    match (loaded, algorithm) {
        (Loaded::Hsm(k), Algorithm::Aes256) => {
            Ok(root.decrypt(k, DecryptMechanism::Aes256Gcm, ciphertext)?)
        }
        (Loaded::Hsm(k), _) => Ok(root.decrypt(k, DecryptMechanism::RsaOaepSha1, ciphertext)?),
        (Loaded::Aes(k), _) => gcm_open(k, ciphertext),
        (Loaded::Rsa(k), _) => k
            .decrypt(oaep(protection), ciphertext)
            .map_err(|_| failed()),
        (Loaded::MlKem(dk), _) => {
            if ciphertext.len() < MLKEM_CT + GCM_IV + GCM_TAG {
                return Err(KeyError::invalid(
                    "INVALID_CIPHERTEXT",
                    "the ciphertext is too short for ML-KEM-768",
                ));
            }
            let ct = ml_kem::Ciphertext::<MlKem768>::try_from(&ciphertext[..MLKEM_CT])
                .map_err(|_| failed())?;
            let shared = Zeroizing::new(dk.decapsulate(&ct).map_err(|_| failed())?.to_vec());
            gcm_open(&shared, &ciphertext[MLKEM_CT..])
        }
        _ => Err(KeyError::WrongKeyType(format!(
            "{} keys cannot decrypt",
            algorithm.as_str()
        ))),
    }
}

/// PEM of a SubjectPublicKeyInfo (RSA and EC keys).
pub fn public_pem(algorithm: Algorithm, public: &[u8]) -> Option<String> {
    if !matches!(
        algorithm,
        Algorithm::Rsa2048
            | Algorithm::Rsa3072
            | Algorithm::Rsa4096
            | Algorithm::EcP256
            | Algorithm::EcP384
    ) {
        return None;
    }
    crate::crypto::pem("PUBLIC KEY", public).ok()
}

/// The public key as a JWK (RFC 7517/7518) for RSA and EC keys.
pub fn public_jwk(algorithm: Algorithm, public: &[u8], kid: &str) -> Option<Value> {
    match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
            let pk = rsa::public_from_der(public).ok()?;
            Some(json!({
                "kty": "RSA",
                "kid": kid,
                "n": B64URL.encode(pk.n().to_bytes_be()),
                "e": B64URL.encode(pk.e().to_bytes_be()),
            }))
        }
        Algorithm::EcP256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let pk = p256::PublicKey::from_public_key_der(public).ok()?;
            let point = pk.to_encoded_point(false);
            Some(json!({
                "kty": "EC", "crv": "P-256", "kid": kid,
                "x": B64URL.encode(point.x()?), "y": B64URL.encode(point.y()?),
            }))
        }
        Algorithm::EcP384 => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            let pk = p384::PublicKey::from_public_key_der(public).ok()?;
            let point = pk.to_encoded_point(false);
            Some(json!({
                "kty": "EC", "crv": "P-384", "kid": kid,
                "x": B64URL.encode(point.x()?), "y": B64URL.encode(point.y()?),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use ::rsa::signature::SignatureEncoding;
    use hsm_bridge::ShamirRoot;

    use super::*;

    fn software_rsa() -> (Loaded, Vec<u8>, ShamirRoot) {
        let (root, _) = ShamirRoot::generate(1, 1).unwrap();
        let (stored, public, protection) = generate(Algorithm::Rsa2048, &root).unwrap();
        assert_eq!(protection, Protection::Software);
        let public = public.unwrap();
        let loaded = load(Algorithm::Rsa2048, &stored, Some(&public)).unwrap();
        (loaded, public, root)
    }

    #[test]
    fn blinded_rsa_signatures_verify_and_match_pkcs1v15() {
        let (loaded, public, root) = software_rsa();
        let sig = sign(&loaded, Algorithm::Rsa2048, &root, b"message").unwrap();
        assert!(verify(Algorithm::Rsa2048, &public, b"message", &sig).unwrap());
        assert!(!verify(Algorithm::Rsa2048, &public, b"other", &sig).unwrap());
        // PKCS#1 v1.5 is deterministic: blinding must not change the signature.
        let again = sign(&loaded, Algorithm::Rsa2048, &root, b"message").unwrap();
        assert_eq!(sig, again);
        let Loaded::Rsa(k) = &loaded else {
            panic!("not an RSA key")
        };
        let reference = ::rsa::pkcs1v15::SigningKey::<Sha256>::new(k.private.clone());
        let expected = ::rsa::signature::Signer::sign(&reference, b"message").to_vec();
        assert_eq!(sig, expected);
    }

    #[test]
    fn blinded_rsa_decryption_round_trips() {
        let (loaded, public, root) = software_rsa();
        let ct = encrypt(
            &loaded,
            Algorithm::Rsa2048,
            Protection::Software,
            Some(&public),
            &root,
            b"secret",
        )
        .unwrap();
        let plain = decrypt(
            &loaded,
            Algorithm::Rsa2048,
            Protection::Software,
            &root,
            &ct,
        )
        .unwrap();
        assert_eq!(&plain[..], b"secret");
        let mut tampered = ct.clone();
        tampered[10] ^= 1;
        assert!(decrypt(
            &loaded,
            Algorithm::Rsa2048,
            Protection::Software,
            &root,
            &tampered
        )
        .is_err());
    }
}
