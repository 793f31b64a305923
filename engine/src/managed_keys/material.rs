//! Key material: generation, storage and the parsed form operations use. HSM-protected
//! versions stay wrapped blobs for the root of trust; software versions are parsed once
//! and zeroized on drop. The operations on them are in `scheme`, whose `Default` schemes
//! are these formats: RSA signs PKCS#1 v1.5 with SHA-256; ECDSA signs SHA-256 (P-256) or SHA-384
//! (P-384) and answers DER, as OpenSSL does; ML-DSA-65 signs pure (empty context). RSA
//! encrypts with OAEP, SHA-256 in software and SHA-1 inside the HSM (all SoftHSM2 can
//! do, see DESIGN.md); AES-256 with GCM (`iv(12) || ct || tag`); ML-KEM-768 encapsulates
//! a key that seals the plaintext with AES-256-GCM (`kem_ct(1088) || iv || ct || tag`).
//! The RSA, ECDSA and AES code for software keys is `crate::crypto`, shared with transit.

use ::rsa::pkcs8::DecodePublicKey;
use ::rsa::traits::PublicKeyParts;
use base64::Engine as _;
use hsm_bridge::{RootOfTrust, WrappedKey};
use ml_dsa::{Keypair, MlDsa65};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use rand::rngs::OsRng;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::error::KeyError;
use super::model::{Algorithm, Protection, StoredMaterial};
use crate::crypto::ecdsa::{Curve, EcKey};
use crate::crypto::rsa::{self, RsaKey};
use crate::error::EngineError;

type MlKemDk = <MlKem768 as KemCore>::DecapsulationKey;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A version's private or secret key, ready to use.
pub enum Loaded {
    Hsm(WrappedKey),
    Rsa(Box<RsaKey>),
    Ec(EcKey),
    Aes(Zeroizing<Vec<u8>>),
    MlDsa(Box<ml_dsa::SigningKey<MlDsa65>>),
    MlKem(Box<MlKemDk>),
}

pub(super) fn internal<E: std::fmt::Display>(e: E) -> KeyError {
    KeyError::Engine(EngineError::internal(e))
}

pub(super) fn corrupt() -> KeyError {
    KeyError::Engine(EngineError::Corrupt("keys/material".into()))
}

/// The curve of an EC algorithm.
pub(super) fn curve(algorithm: Algorithm) -> Option<Curve> {
    match algorithm {
        Algorithm::EcP256 => Some(Curve::P256),
        Algorithm::EcP384 => Some(Curve::P384),
        _ => None,
    }
}

/// A new version: its stored material, public key and protection. An `exportable` key's
/// version is made so that the boundary can later wrap it for a cloud export; the others
/// stay unextractable inside an HSM.
pub fn generate(
    algorithm: Algorithm,
    exportable: bool,
    root: &dyn RootOfTrust,
) -> Result<(StoredMaterial, Option<Vec<u8>>, Protection), KeyError> {
    if let (true, Some(spec)) = (root.capabilities().in_boundary_keys, algorithm.spec()) {
        let wrapped = if exportable {
            root.generate_exportable_key(spec)?
        } else {
            root.generate_key(spec)?
        };
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

/// The stored material of a secret brought in from outside: a software version, even
/// with an HSM root of trust (see `KeyStore::import`).
pub fn import(algorithm: Algorithm, secret: &[u8]) -> Result<StoredMaterial, KeyError> {
    if algorithm != Algorithm::Aes256 {
        return Err(KeyError::Unsupported(format!(
            "only AES-256 keys are imported, not {}",
            algorithm.as_str()
        )));
    }
    if secret.len() != 32 {
        return Err(KeyError::invalid(
            "INVALID_KEY_MATERIAL",
            format!("an AES-256 key is 32 bytes, not {}", secret.len()),
        ));
    }
    Ok(StoredMaterial {
        kind: "software".into(),
        material: B64.encode(secret),
    })
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
