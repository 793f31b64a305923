//! `wrapping_key`, `keys/:name/import` and `import_version`: bring-your-own-key in
//! Vault's format. The caller wraps an ephemeral AES-256 key with RSA-OAEP under the
//! mount's RSA-4096 wrapping key and the target key (raw bytes for symmetric keys,
//! PKCS#8 for asymmetric ones) with that AES key (RFC 5649, AES-KWP), and sends the two
//! concatenated. The wrapping key is made once per mount. Where it lives follows the seal
//! ([`ImportBoundary`]): with an HSM that keeps keys inside it, the key is made in the HSM
//! and the import unwrapped there (only the target key comes out, once, to become a
//! transit key under the barrier); elsewhere it is a software key under the barrier, as
//! in Vault.

use std::sync::Arc;

use hsm_bridge::{HashAlg, ImportError, RootOfTrust};
use rsa::pkcs8::{ObjectIdentifier, PrivateKeyInfo};
use rsa::traits::PublicKeyParts;
use rsa::Oaep;
use zeroize::Zeroizing;

use super::error::{TransitError, TransitResult};
use super::key_policy::{check_rotate_period, KeyConfig};
use super::keytype::{KeyType, HMAC_MAX_KEY_SIZE, HMAC_MIN_KEY_SIZE};
use super::material::{EcKey, SecretBytes};
use crate::crypto::aes::key_unwrap;
use crate::crypto::ecdsa::Curve;
use crate::crypto::rsa::RsaKey;

/// Bytes of the RSA-OAEP part: one RSA-4096 block.
pub const WRAPPED_EPHEMERAL_LEN: usize = 512;
/// Bits of the wrapping key, as Vault's.
pub const WRAPPING_KEY_BITS: usize = 4096;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// The hash of the RSA-OAEP wrapping (`hash_function`), also MGF1's, as in Go's
/// `rsa.DecryptOAEP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl OaepHash {
    pub fn parse(s: &str) -> TransitResult<OaepHash> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "SHA1" => OaepHash::Sha1,
            "SHA224" => OaepHash::Sha224,
            "" | "SHA256" => OaepHash::Sha256,
            "SHA384" => OaepHash::Sha384,
            "SHA512" => OaepHash::Sha512,
            _ => return Err(TransitError::invalid(format!("unknown hash function: {s}"))),
        })
    }

    fn hash_alg(self) -> HashAlg {
        match self {
            OaepHash::Sha1 => HashAlg::Sha1,
            OaepHash::Sha224 => HashAlg::Sha224,
            OaepHash::Sha256 => HashAlg::Sha256,
            OaepHash::Sha384 => HashAlg::Sha384,
            OaepHash::Sha512 => HashAlg::Sha512,
        }
    }

    fn padding(self) -> Oaep {
        match self {
            OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
            OaepHash::Sha224 => Oaep::new::<sha2::Sha224>(),
            OaepHash::Sha256 => Oaep::new::<sha2::Sha256>(),
            OaepHash::Sha384 => Oaep::new::<sha2::Sha384>(),
            OaepHash::Sha512 => Oaep::new::<sha2::Sha512>(),
        }
    }
}

/// What `keys/:name/import` asks for besides the wrapped key.
#[derive(Debug, Clone)]
pub struct ImportKey {
    pub kind: KeyType,
    pub derived: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub allow_rotation: bool,
    pub auto_rotate_period: u64,
}

impl ImportKey {
    /// Vault's checks before an import; the configuration of the new key.
    pub(crate) fn into_config(
        self,
        name: &str,
        min_rotate_period: u64,
    ) -> TransitResult<KeyConfig> {
        if self.auto_rotate_period > 0 && !self.allow_rotation {
            return Err(TransitError::invalid(
                "allow_rotation must be set to true if auto-rotation is enabled",
            ));
        }
        check_rotate_period(self.auto_rotate_period, min_rotate_period)?;
        if self.derived && !self.kind.supports_derivation() {
            return Err(TransitError::invalid(format!(
                "key derivation and convergent encryption not supported for keys of type {}",
                self.kind
            )));
        }
        Ok(KeyConfig {
            name: name.to_string(),
            kind: self.kind,
            derived: self.derived,
            convergent_encryption: false,
            exportable: self.exportable,
            allow_plaintext_backup: self.allow_plaintext_backup,
            deletion_allowed: false,
            latest_version: 0,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            auto_rotate_period: self.auto_rotate_period,
            key_size: 0,
            imported: true,
            allow_imported_rotation: self.allow_rotation,
        })
    }
}

/// Where a mount's BYOK wrapping key lives, and so where imports are unwrapped: chosen by
/// the seal, as for managed keys.
#[derive(Clone)]
pub enum ImportBoundary {
    /// A software RSA key under the barrier, as Vault keeps it: seals that keep no keys
    /// inside a device (Shamir, TPM).
    Software,
    /// A key made inside the HSM and kept as the blob its root key wrapped; imports are
    /// unwrapped inside the token, by the OAEP hashes its self-test proved.
    Hsm(Arc<dyn RootOfTrust>),
}

impl ImportBoundary {
    /// Where imports are unwrapped, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ImportBoundary::Software => "software",
            ImportBoundary::Hsm(_) => "hsm",
        }
    }

    pub fn of(root: Arc<dyn RootOfTrust>) -> ImportBoundary {
        if root.capabilities().in_boundary_keys {
            ImportBoundary::Hsm(root)
        } else {
            ImportBoundary::Software
        }
    }
}

/// The two parts of a BYOK `ciphertext`: the RSA-OAEP block, and the AES-KWP rest.
pub fn split_ciphertext(ciphertext: &[u8]) -> TransitResult<(&[u8], &[u8])> {
    if ciphertext.len() <= WRAPPED_EPHEMERAL_LEN {
        return Err(TransitError::invalid("provided ciphertext is too short"));
    }
    Ok(ciphertext.split_at(WRAPPED_EPHEMERAL_LEN))
}

/// OpenBao's words (Go's `rsa.DecryptOAEP`) for an RSA part that does not decrypt.
fn ephemeral_refused() -> TransitError {
    TransitError::invalid(
        "crypto/rsa: decryption error: the ephemeral key does not decrypt under this mount's wrapping key (RSA-OAEP): check the wrapping key and hash_function",
    )
}

fn ephemeral_size() -> TransitError {
    TransitError::invalid("expected ephemeral AES key to be 256-bit")
}

/// OpenBao's words (Tink's KWP) for an AES-KWP part that does not unwrap.
fn target_refused(detail: impl std::fmt::Display) -> TransitError {
    TransitError::invalid(format!(
        "kwp: unwrap failed integrity check: the target key does not unwrap under the ephemeral key (AES-KWP, {detail})"
    ))
}

/// The target key of a BYOK `ciphertext`: RSA-OAEP of the ephemeral AES-256 key under
/// `wrapping`, then the target wrapped with it (AES-KWP). CPU-heavy (an RSA-4096
/// private-key operation): run it on the compute pool.
pub fn unwrap_target(
    wrapping: &RsaKey,
    ciphertext: &[u8],
    hash: OaepHash,
) -> TransitResult<Zeroizing<Vec<u8>>> {
    let (wrapped_ephemeral, wrapped_target) = split_ciphertext(ciphertext)?;
    let ephemeral = wrapping
        .decrypt(hash.padding(), wrapped_ephemeral)
        .map_err(|_| ephemeral_refused())?;
    if ephemeral.len() != 32 {
        return Err(ephemeral_size());
    }
    key_unwrap(&ephemeral, wrapped_target, true).map_err(target_refused)
}

/// [`unwrap_target`] inside the HSM, with the wrapping key `blob` it made. A blocking
/// device call: run it on the device lane.
pub fn unwrap_target_in_hsm(
    root: &dyn RootOfTrust,
    blob: &[u8],
    ciphertext: &[u8],
    hash: OaepHash,
) -> TransitResult<Zeroizing<Vec<u8>>> {
    let (wrapped_ephemeral, wrapped_target) = split_ciphertext(ciphertext)?;
    root.import_support(hash.hash_alg()).map_err(|why| {
        TransitError::invalid(format!(
            "this appliance unwraps BYOK imports inside its HSM, and the HSM cannot unwrap this one: {why}; wrap with a hash_function the HSM supports (the appliance log lists them at start)"
        ))
    })?;
    let key = hsm_bridge::WrappedKey {
        spec: hsm_bridge::KeySpec::Rsa(WRAPPING_KEY_BITS as u32),
        blob: blob.to_vec(),
        public: None,
    };
    root.import_unwrap(&key, hash.hash_alg(), wrapped_ephemeral, wrapped_target)
        .map_err(|e| match e {
            ImportError::Ephemeral => ephemeral_refused(),
            ImportError::EphemeralSize => ephemeral_size(),
            ImportError::Target => target_refused("refused by the HSM"),
            ImportError::Bridge(b) => TransitError::Engine(b.into()),
        })
}

/// The imported bytes as the stored secret of a `kind` key, with Vault's checks; for
/// asymmetric keys a PKCS#8 private key of that type.
pub fn imported_secret(kind: KeyType, bytes: &[u8]) -> TransitResult<SecretBytes> {
    let size = || {
        TransitError::invalid(format!(
            "invalid key size {} bytes for key type {kind}",
            bytes.len()
        ))
    };
    match kind {
        k if k.is_aead() => {
            if bytes.len() != k.aead_key_len() {
                return Err(size());
            }
            Ok(SecretBytes::new(bytes.to_vec()))
        }
        KeyType::Hmac => {
            if !(HMAC_MIN_KEY_SIZE..=HMAC_MAX_KEY_SIZE).contains(&bytes.len()) {
                return Err(size());
            }
            Ok(SecretBytes::new(bytes.to_vec()))
        }
        k => pkcs8_secret(k, bytes),
    }
}

fn pkcs8_secret(kind: KeyType, der: &[u8]) -> TransitResult<SecretBytes> {
    let info = PrivateKeyInfo::try_from(der).map_err(|e| {
        TransitError::invalid(format!("error parsing asymmetric key: not PKCS#8: {e}"))
    })?;
    let curve_oid = info
        .algorithm
        .parameters_oid()
        .ok()
        .filter(|_| info.algorithm.oid == EC_PUBLIC_KEY);
    let oid = info.algorithm.oid;
    let found = if oid == RSA_ENCRYPTION {
        "an RSA key"
    } else if oid == ED25519 {
        "an Ed25519 key"
    } else if curve_oid == Some(P256) {
        "a P-256 key"
    } else if curve_oid == Some(P384) {
        "a P-384 key"
    } else if curve_oid == Some(P521) {
        "a P-521 key"
    } else {
        "a key of an unsupported algorithm"
    };
    let wrong = || TransitError::invalid(format!("invalid key type: expected {kind}, got {found}"));
    let invalid = || {
        TransitError::invalid(format!(
            "error parsing asymmetric key: invalid {kind} private key"
        ))
    };
    match kind {
        k if k.is_rsa() => {
            if info.algorithm.oid != RSA_ENCRYPTION {
                return Err(wrong());
            }
            let key = RsaKey::from_pkcs8_der(der).map_err(|_| invalid())?;
            let bytes = k.rsa_bits() / 8;
            if key.public.size() != bytes {
                return Err(TransitError::invalid(format!(
                    "invalid key size: expected {bytes} bytes, got {} bytes",
                    key.public.size()
                )));
            }
            Ok(SecretBytes::new(
                key.to_pkcs8_der().map_err(TransitError::internal)?.to_vec(),
            ))
        }
        k if k.is_ecdsa() => {
            let (curve, oid) = if k == KeyType::EcdsaP384 {
                (Curve::P384, P384)
            } else {
                (Curve::P256, P256)
            };
            if curve_oid != Some(oid) {
                return Err(wrong());
            }
            let key = EcKey::from_pkcs8_der(curve, der).map_err(|_| invalid())?;
            Ok(SecretBytes::new(key.scalar_bytes().to_vec()))
        }
        KeyType::Ed25519 => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            if info.algorithm.oid != ED25519 {
                return Err(wrong());
            }
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| invalid())?;
            Ok(SecretBytes::new(key.to_bytes().to_vec()))
        }
        other => Err(TransitError::invalid(format!(
            "keys of type {other} cannot be imported"
        ))),
    }
}

/// The wrapping key's public half as Vault shows it: SubjectPublicKeyInfo PEM.
pub fn wrapping_public_pem(key: &rsa::RsaPublicKey) -> TransitResult<String> {
    crate::crypto::rsa::public_to_pem(key).map_err(TransitError::internal)
}
