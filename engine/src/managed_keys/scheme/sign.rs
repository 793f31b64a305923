//! Signing and verification, per scheme.

use std::borrow::Cow;

use ::rsa::traits::PublicKeyParts;
use ::rsa::{Pkcs1v15Sign, Pss};
use hsm_bridge::{BridgeError, RootOfTrust, SignMechanism, WrappedKey};
use ml_dsa::signature::rand_core::{TryCryptoRng, TryRng};
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, MlDsa65};

use super::super::material::{corrupt, curve, internal};
use super::{with_hash, Algorithm, Hash, KeyError, Loaded, SignScheme};
use crate::crypto::ecdsa::{self, EcError, EcPublicKey, SignatureFormat};
use crate::crypto::rsa;

/// A scheme made concrete for a key: `Default` replaced by the key's own format.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub scheme: SignScheme,
    /// ECDSA answers DER (what `/api/v1` and OpenSSL use) rather than `r || s`.
    pub der: bool,
}

fn is_rsa(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096
    )
}

fn is_ec(algorithm: Algorithm) -> bool {
    matches!(algorithm, Algorithm::EcP256 | Algorithm::EcP384)
}

fn cannot_sign(algorithm: Algorithm) -> KeyError {
    KeyError::WrongKeyType(format!("{} keys cannot sign", algorithm.as_str()))
}

/// Checks `scheme` against the key type and resolves `Default`.
pub(super) fn plan(algorithm: Algorithm, scheme: SignScheme) -> Result<Plan, KeyError> {
    let (scheme, der) = match scheme {
        SignScheme::Default => match algorithm {
            Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => (
                SignScheme::RsaPkcs1 {
                    hash: Some(Hash::Sha256),
                },
                false,
            ),
            Algorithm::EcP256 => (
                SignScheme::EcdsaRaw {
                    hash: Some(Hash::Sha256),
                },
                true,
            ),
            Algorithm::EcP384 => (
                SignScheme::EcdsaRaw {
                    hash: Some(Hash::Sha384),
                },
                true,
            ),
            Algorithm::MlDsa65 => (
                SignScheme::MlDsa {
                    context: Vec::new(),
                    deterministic: true,
                },
                false,
            ),
            Algorithm::Aes256 | Algorithm::MlKem768 => return Err(cannot_sign(algorithm)),
        },
        other => (other, false),
    };
    if matches!(algorithm, Algorithm::Aes256 | Algorithm::MlKem768) {
        return Err(cannot_sign(algorithm));
    }
    let (fits, needs) = match &scheme {
        SignScheme::RsaPkcs1 { .. } => (is_rsa(algorithm), "RSA PKCS#1 v1.5 needs an RSA key"),
        SignScheme::RsaPss { .. } => (is_rsa(algorithm), "RSA-PSS needs an RSA key"),
        SignScheme::EcdsaRaw { .. } => (is_ec(algorithm), "ECDSA needs an EC key"),
        SignScheme::MlDsa { .. } => (
            algorithm == Algorithm::MlDsa65,
            "ML-DSA needs an ML-DSA key",
        ),
        SignScheme::Default => (true, ""),
    };
    if !fits {
        return Err(KeyError::WrongKeyType(format!(
            "{needs}; this is a {} key",
            algorithm.as_str()
        )));
    }
    match &scheme {
        SignScheme::RsaPss {
            hash, digest, mgf, ..
        } => {
            if let Some(h) = hash.filter(|h| h != digest) {
                return Err(KeyError::invalid(
                    "INVALID_MECHANISM_PARAMETERS",
                    format!(
                        "the PSS parameters name {} but the mechanism hashes with {}",
                        digest.name(),
                        h.name()
                    ),
                ));
            }
            if mgf != digest {
                return Err(KeyError::Unsupported(format!(
                    "RSA-PSS with MGF1-{} over a {} digest: the MGF1 hash must be the digest's",
                    mgf.name(),
                    digest.name()
                )));
            }
        }
        SignScheme::MlDsa { context, .. } if context.len() > 255 => {
            return Err(KeyError::invalid(
                "INVALID_CONTEXT",
                format!(
                    "an ML-DSA context is at most 255 bytes, not {}",
                    context.len()
                ),
            ));
        }
        _ => {}
    }
    Ok(Plan { scheme, der })
}

/// The RSA modulus length in bytes of a managed key's algorithm.
fn modulus_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Rsa2048 => 256,
        Algorithm::Rsa3072 => 384,
        Algorithm::Rsa4096 => 512,
        _ => 0,
    }
}

/// What the primitive gets: the message itself, or its digest when the scheme hashes.
fn digest_of(hash: Option<Hash>, message: &[u8]) -> Cow<'_, [u8]> {
    match hash {
        Some(h) => Cow::Owned(h.digest(message)),
        None => Cow::Borrowed(message),
    }
}

/// Checks what the caller gave against the scheme, for an RSA key of `k` bytes (0 for
/// other keys), before any key is used.
fn check_input(scheme: &SignScheme, k: usize, message: &[u8]) -> Result<(), KeyError> {
    match scheme {
        SignScheme::RsaPkcs1 { hash: None } if message.len() + 11 > k => {
            Err(KeyError::invalid(
                "DATA_TOO_LONG",
                format!(
                    "RSA PKCS#1 v1.5 without a hash signs at most {} bytes (a DigestInfo) with this key, not {}",
                    k.saturating_sub(11),
                    message.len()
                ),
            ))
        }
        SignScheme::RsaPss {
            hash,
            digest,
            salt_len,
            ..
        } => {
            if hash.is_none() && message.len() != digest.digest_len() {
                return Err(KeyError::invalid(
                    "INVALID_DIGEST_LENGTH",
                    format!(
                        "RSA-PSS without a hash signs a {}-byte {} digest, not {} bytes",
                        digest.digest_len(),
                        digest.name(),
                        message.len()
                    ),
                ));
            }
            // EMSA-PSS: emLen >= hLen + sLen + 2, emLen being k for these key sizes.
            let max = k.saturating_sub(digest.digest_len() + 2);
            if *salt_len > max {
                return Err(KeyError::invalid(
                    "INVALID_MECHANISM_PARAMETERS",
                    format!("the PSS salt is at most {max} bytes with this key and digest, not {salt_len}"),
                ));
            }
            Ok(())
        }
        SignScheme::EcdsaRaw { hash: None } if message.is_empty() => Err(KeyError::invalid(
            "INVALID_DIGEST_LENGTH",
            "ECDSA without a hash signs a digest: it cannot be empty",
        )),
        _ => Ok(()),
    }
}

/// What the HSM is asked for to sign with `scheme` (already planned), if anything.
pub(super) fn hsm_mechanism(scheme: &SignScheme) -> Option<SignMechanism> {
    Some(match scheme {
        SignScheme::RsaPkcs1 { hash } => SignMechanism::RsaPkcs1 {
            hash: hash.map(Hash::bridge),
        },
        SignScheme::RsaPss {
            digest,
            mgf,
            salt_len,
            ..
        } => SignMechanism::RsaPss {
            digest: digest.bridge(),
            mgf: mgf.bridge(),
            salt_len: *salt_len,
        },
        SignScheme::EcdsaRaw { .. } => SignMechanism::EcdsaPrehashed,
        SignScheme::MlDsa { .. } | SignScheme::Default => return None,
    })
}

/// The mixed RNG (OS and hardware entropy) as ML-DSA's hedged signing takes it.
struct MixedRng;

impl TryRng for MixedRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        hsm_bridge::fill_random(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        hsm_bridge::fill_random(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        hsm_bridge::fill_random(dst);
        Ok(())
    }
}

impl TryCryptoRng for MixedRng {}

pub(super) fn sign(
    loaded: &Loaded,
    algorithm: Algorithm,
    root: &dyn RootOfTrust,
    plan: &Plan,
    message: &[u8],
) -> Result<Vec<u8>, KeyError> {
    check_input(&plan.scheme, modulus_len(algorithm), message)?;
    let format = if plan.der {
        SignatureFormat::Der
    } else {
        SignatureFormat::Fixed
    };
    Ok(match (loaded, &plan.scheme) {
        (Loaded::Hsm(k), _) => return sign_hsm(k, algorithm, root, plan, message),
        (Loaded::Rsa(k), SignScheme::RsaPkcs1 { hash: Some(h) }) => {
            with_hash!(h, D => k.sign(Pkcs1v15Sign::new::<D>(), &h.digest(message)))
                .map_err(internal)?
        }
        (Loaded::Rsa(k), SignScheme::RsaPkcs1 { hash: None }) => k
            .sign(Pkcs1v15Sign::new_unprefixed(), message)
            .map_err(internal)?,
        (
            Loaded::Rsa(k),
            SignScheme::RsaPss {
                hash,
                digest,
                salt_len,
                ..
            },
        ) => {
            let d = digest_of(*hash, message);
            with_hash!(digest, D => k.sign(Pss::new_with_salt::<D>(*salt_len), &d))
                .map_err(internal)?
        }
        (Loaded::Ec(k), SignScheme::EcdsaRaw { hash }) => k
            .sign_prehash(&digest_of(*hash, message), format)
            .map_err(internal)?,
        (
            Loaded::MlDsa(k),
            SignScheme::MlDsa {
                context,
                deterministic,
            },
        ) => {
            let k = k.expanded_key();
            if *deterministic {
                k.sign_deterministic(message, context)
            } else {
                k.sign_randomized(message, context, &mut MixedRng)
            }
            .map_err(internal)?
            .encode()
            .to_vec()
        }
        _ => return Err(cannot_sign(algorithm)),
    })
}

fn sign_hsm(
    k: &WrappedKey,
    algorithm: Algorithm,
    root: &dyn RootOfTrust,
    plan: &Plan,
    message: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let mechanism = hsm_mechanism(&plan.scheme).ok_or_else(|| cannot_sign(algorithm))?;
    if !root.capabilities().can_sign(k.spec, &mechanism) {
        return Err(KeyError::Unsupported(format!(
            "the HSM holding this {} key cannot sign with {mechanism:?}",
            algorithm.as_str()
        )));
    }
    // The device hashes for PKCS#1 v1.5; PSS and ECDSA get the digest made here.
    let data = match &plan.scheme {
        SignScheme::RsaPss { hash, .. } | SignScheme::EcdsaRaw { hash } => {
            digest_of(*hash, message)
        }
        _ => Cow::Borrowed(message),
    };
    let raw = root.sign(k, mechanism, &data).map_err(|e| match e {
        BridgeError::BadInput(m) => KeyError::invalid("INVALID_INPUT", m),
        other => other.into(),
    })?;
    match (plan.der, curve(algorithm)) {
        (true, Some(curve)) => ecdsa::fixed_to_der(curve, &raw).map_err(internal),
        _ => Ok(raw),
    }
}

fn invalid_public(algorithm: Algorithm) -> KeyError {
    KeyError::invalid(
        "INVALID_PUBLIC_KEY",
        format!("the public key is not a valid {} key", algorithm.as_str()),
    )
}

/// Checks a signature with a public key (DER SubjectPublicKeyInfo for RSA and EC, the
/// encoded key for ML-DSA). A signature that does not parse does not verify.
pub(super) fn verify(
    algorithm: Algorithm,
    public: &[u8],
    plan: &Plan,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, KeyError> {
    match &plan.scheme {
        SignScheme::RsaPkcs1 { .. } | SignScheme::RsaPss { .. } => {
            let pk = rsa::public_from_der(public).map_err(|_| invalid_public(algorithm))?;
            check_input(&plan.scheme, pk.size(), message)?;
            Ok(match &plan.scheme {
                SignScheme::RsaPkcs1 { hash: Some(h) } => with_hash!(h, D => pk.verify(
                    Pkcs1v15Sign::new::<D>(),
                    &h.digest(message),
                    signature
                )),
                SignScheme::RsaPss {
                    hash,
                    digest,
                    salt_len,
                    ..
                } => {
                    let d = digest_of(*hash, message);
                    with_hash!(digest, D => pk.verify(Pss::new_with_salt::<D>(*salt_len), &d, signature))
                }
                _ => pk.verify(Pkcs1v15Sign::new_unprefixed(), message, signature),
            }
            .is_ok())
        }
        SignScheme::EcdsaRaw { hash } => {
            check_input(&plan.scheme, 0, message)?;
            let curve = curve(algorithm).ok_or_else(corrupt)?;
            let pk =
                EcPublicKey::from_spki(curve, public).map_err(|_| invalid_public(algorithm))?;
            let format = if plan.der {
                SignatureFormat::Der
            } else {
                SignatureFormat::Fixed
            };
            match pk.verify_prehash(&digest_of(*hash, message), signature, format) {
                Ok(valid) => Ok(valid),
                Err(EcError::InvalidSignature) => Ok(false),
                Err(e) => Err(internal(e)),
            }
        }
        SignScheme::MlDsa { context, .. } => {
            let enc = EncodedVerifyingKey::<MlDsa65>::try_from(public)
                .map_err(|_| invalid_public(algorithm))?;
            let vk = ml_dsa::VerifyingKey::<MlDsa65>::decode(&enc);
            let Ok(enc_sig) = EncodedSignature::<MlDsa65>::try_from(signature) else {
                return Ok(false);
            };
            let Some(sig) = ml_dsa::Signature::<MlDsa65>::decode(&enc_sig) else {
                return Ok(false);
            };
            Ok(vk.verify_with_context(message, context, &sig))
        }
        SignScheme::Default => Err(cannot_sign(algorithm)),
    }
}
