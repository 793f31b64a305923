//! `sign` and `verify` on a loaded key: RSA (PSS or PKCS#1 v1.5), ECDSA (ASN.1 DER or
//! JWS `r || s`) and Ed25519, with Vault's hash choices and `prehashed` input.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};

use super::decode_base64;
use super::error::{TransitError, TransitResult};
use super::hash::{with_digest, HashAlgorithm};
use super::key_policy::Key;
use super::material::{Marshaling, Material};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaScheme {
    Pss,
    Pkcs1v15,
}

impl RsaScheme {
    pub fn parse(s: &str) -> TransitResult<RsaScheme> {
        match s {
            "" | "pss" => Ok(RsaScheme::Pss),
            "pkcs1v15" => Ok(RsaScheme::Pkcs1v15),
            other => Err(TransitError::invalid(format!(
                "unsupported rsa signature algorithm {other}"
            ))),
        }
    }
}

/// PSS salt length: `auto` (as long as the key allows when signing), `hash` (the
/// digest's length) or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltLength {
    Auto,
    Hash,
    Bytes(usize),
}

impl SaltLength {
    pub fn parse(s: &str) -> TransitResult<SaltLength> {
        match s.to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(SaltLength::Auto),
            "hash" => Ok(SaltLength::Hash),
            other => match other.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(SaltLength::Bytes(n as usize)),
                Ok(n) => Err(TransitError::invalid(format!(
                    "salt length is invalid: {n}"
                ))),
                Err(_) => Err(TransitError::invalid(format!(
                    "salt length neither 'auto', 'hash', nor an int: {s}"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SignOptions {
    pub hash: HashAlgorithm,
    pub prehashed: bool,
    pub rsa_scheme: RsaScheme,
    pub salt_length: SaltLength,
    pub marshaling: Marshaling,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            hash: HashAlgorithm::Sha2_256,
            prehashed: false,
            rsa_scheme: RsaScheme::Pss,
            salt_length: SaltLength::Auto,
            marshaling: Marshaling::Asn1,
        }
    }
}

#[derive(Debug)]
pub struct Signed {
    pub signature: String,
    pub key_version: u32,
    /// For derived Ed25519 keys: the public key of the key derived for the context.
    pub public_key: Option<Vec<u8>>,
}

/// Go's `PSSSaltLengthAuto` when signing: the longest salt the key allows.
fn max_pss_salt(key: &RsaPublicKey, hash_len: usize) -> usize {
    use rsa::traits::PublicKeyParts;
    let em_len = (key.n().bits() - 1).div_ceil(8);
    em_len.saturating_sub(2 + hash_len)
}

fn pss_scheme(hash: HashAlgorithm, salt: usize) -> TransitResult<Pss> {
    with_digest!(hash, D => Ok(Pss::new_with_salt::<D>(salt)),
    none => Err(TransitError::invalid(
        "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
    )))
}

fn pkcs1v15_scheme(hash: HashAlgorithm) -> Pkcs1v15Sign {
    with_digest!(hash, D => Pkcs1v15Sign::new::<D>(), none => Pkcs1v15Sign::new_unprefixed())
}

impl Key {
    pub(crate) fn check_signing(&self, opts: &SignOptions, verb: &str) -> TransitResult<()> {
        let kind = self.config.kind;
        if !kind.supports_signing() {
            return Err(TransitError::invalid(format!(
                "key type {kind} does not support {verb}"
            )));
        }
        if opts.hash == HashAlgorithm::None
            && (!opts.prehashed || opts.rsa_scheme != RsaScheme::Pkcs1v15)
        {
            return Err(TransitError::invalid(
                "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
            ));
        }
        Ok(())
    }

    /// What is signed: the digest of `input`, or `input` itself when the caller hashed
    /// it already or the scheme hashes internally (Ed25519).
    fn signing_input<'a>(&self, input: &'a [u8], opts: &SignOptions) -> std::borrow::Cow<'a, [u8]> {
        if self.config.kind.hashes_signature_input() && !opts.prehashed {
            if let Some(d) = opts.hash.digest(input) {
                return std::borrow::Cow::Owned(d);
            }
        }
        std::borrow::Cow::Borrowed(input)
    }

    fn check_prehash_len(opts: &SignOptions, digest: &[u8]) -> TransitResult<()> {
        let want = opts.hash.output_len();
        if want != 0 && digest.len() != want {
            return Err(TransitError::invalid(format!(
                "prehashed input must be a {}-byte {} digest",
                want,
                opts.hash.as_str()
            )));
        }
        Ok(())
    }

    pub fn sign(
        &self,
        version: i64,
        context: &[u8],
        input: &[u8],
        opts: &SignOptions,
    ) -> TransitResult<Signed> {
        self.check_signing(opts, "signing")?;
        let v = self.version_for_use(version, "signing")?;
        let data = self.signing_input(input, opts);
        let mut public_key = None;
        let sig = match &v.material {
            Material::Ec(k) => k.sign_prehash(&data, opts.marshaling.into())?,
            Material::Ed25519(k) => {
                if self.config.derived {
                    if context.is_empty() {
                        return Err(TransitError::invalid(
                            "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key",
                        ));
                    }
                    let derived = k.derive(context)?;
                    public_key = Some(derived.verifying_key().to_bytes().to_vec());
                    derived.sign(&data).to_bytes().to_vec()
                } else {
                    k.signing.sign(&data).to_bytes().to_vec()
                }
            }
            Material::Rsa(k) => {
                if opts.prehashed {
                    Self::check_prehash_len(opts, &data)?;
                }
                let result = match opts.rsa_scheme {
                    RsaScheme::Pss => {
                        let hash_len = opts.hash.output_len();
                        let max = max_pss_salt(&k.public, hash_len);
                        let salt = match opts.salt_length {
                            SaltLength::Auto => max,
                            SaltLength::Hash => hash_len,
                            SaltLength::Bytes(n) if n <= max => n,
                            SaltLength::Bytes(n) => {
                                return Err(TransitError::invalid(format!(
                                    "requested salt length {n} is invalid"
                                )))
                            }
                        };
                        k.sign(pss_scheme(opts.hash, salt)?, &data)
                    }
                    RsaScheme::Pkcs1v15 => k.sign(pkcs1v15_scheme(opts.hash), &data),
                };
                result.map_err(|e| TransitError::invalid(format!("unable to sign: {e}")))?
            }
            _ => return Err(TransitError::internal("unexpected material for signing")),
        };
        let encoded = match opts.marshaling {
            Marshaling::Asn1 => STANDARD.encode(&sig),
            Marshaling::Jws => URL_SAFE_NO_PAD.encode(&sig),
        };
        Ok(Signed {
            signature: format!("vault:v{}:{}", v.number, encoded),
            key_version: v.number,
            public_key,
        })
    }

    pub fn verify(
        &self,
        context: &[u8],
        input: &[u8],
        signature: &str,
        opts: &SignOptions,
    ) -> TransitResult<bool> {
        self.check_signing(opts, "verification")?;
        let rest = signature
            .strip_prefix("vault:v")
            .ok_or_else(|| TransitError::invalid("invalid signature: no prefix"))?;
        let (version, encoded) = rest
            .split_once(':')
            .ok_or_else(|| TransitError::invalid("invalid signature: wrong number of fields"))?;
        let version: u32 = version.parse().map_err(|_| {
            TransitError::invalid("invalid signature: version number could not be decoded")
        })?;
        let v = self.version_for_reading(version, "signature")?;
        let sig = decode_base64(encoded)
            .map_err(|_| TransitError::invalid("invalid base64 signature value"))?;
        let data = self.signing_input(input, opts);
        match &v.material {
            Material::Ec(k) => {
                Ok(k.public_key()
                    .verify_prehash(&data, &sig, opts.marshaling.into())?)
            }
            Material::Ed25519(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
                    return Ok(false);
                };
                let public = if self.config.derived {
                    if context.is_empty() {
                        return Err(TransitError::invalid(
                            "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key",
                        ));
                    }
                    k.derive(context)?.verifying_key()
                } else {
                    k.signing.verifying_key()
                };
                Ok(public.verify(&data, &sig).is_ok())
            }
            Material::Rsa(k) => {
                if opts.prehashed {
                    Self::check_prehash_len(opts, &data)?;
                }
                match opts.rsa_scheme {
                    RsaScheme::Pkcs1v15 => Ok(k
                        .public
                        .verify(pkcs1v15_scheme(opts.hash), &data, &sig)
                        .is_ok()),
                    RsaScheme::Pss => {
                        let hash_len = opts.hash.output_len();
                        let max = max_pss_salt(&k.public, hash_len);
                        // Go recovers any salt length under `auto`; the rsa crate checks
                        // a given one, so try what signers use: the maximum (Go, Vault,
                        // OpenSSL's default) and the digest length (most other tools).
                        let salts: Vec<usize> = match opts.salt_length {
                            SaltLength::Auto => vec![max, hash_len],
                            SaltLength::Hash => vec![hash_len],
                            SaltLength::Bytes(n) if n <= max => vec![n],
                            SaltLength::Bytes(n) => {
                                return Err(TransitError::invalid(format!(
                                    "requested salt length {n} is invalid"
                                )))
                            }
                        };
                        for salt in salts {
                            if k.public
                                .verify(pss_scheme(opts.hash, salt)?, &data, &sig)
                                .is_ok()
                            {
                                return Ok(true);
                            }
                        }
                        Ok(false)
                    }
                }
            }
            _ => Err(TransitError::internal(
                "unexpected material for verification",
            )),
        }
    }
}
