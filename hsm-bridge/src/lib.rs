//! The hardware boundary: one trait for the root of trust, one module per backend.
//!
//! The root key never leaves its backend. Callers hand in the keyring to be wrapped or
//! unwrapped and get the result back; with a hardware backend that work happens inside
//! the device, with the software `shamir` backend it happens in zeroized memory.
//!
//! Backends:
//! - [`shamir`]: software, the root key split into unseal keys (always built);
//! - `pkcs11` (cargo feature `pkcs11`): an AES-256 key inside a PKCS#11 token, via cryptoki;
//! - `tpm2` (cargo feature `tpm2`): a sealed data object under the TPM's storage primary.
//!
//! A hardware backend is reached through a [`SealDevice`], which knows how to (re)open
//! the device; the engine keeps retrying `open` while the device is away.

#![deny(unsafe_code)]

pub mod byok;
mod error;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod random;
pub mod shamir;
mod soft_aead;
#[cfg(feature = "tpm2")]
pub mod tpm2;

pub use error::{BridgeError, ImportError, SealFault};
pub use random::{fill_nonce, fill_random};
pub use shamir::{ShamirRoot, UnsealShare};

use std::collections::BTreeMap;
use std::sync::Arc;

use zeroize::Zeroizing;

/// Which kind of root of trust holds the root key, as `sys/seal-status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    Shamir,
    Pkcs11,
    Tpm2,
}

impl SealKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SealKind::Shamir => "shamir",
            SealKind::Pkcs11 => "pkcs11",
            SealKind::Tpm2 => "tpm2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shamir" => Some(SealKind::Shamir),
            "pkcs11" => Some(SealKind::Pkcs11),
            "tpm2" => Some(SealKind::Tpm2),
            _ => None,
        }
    }

    /// True for seals that unseal by themselves and use recovery keys.
    pub fn is_hardware(self) -> bool {
        !matches!(self, SealKind::Shamir)
    }

    /// What the device is called in messages.
    pub fn device_name(self) -> &'static str {
        match self {
            SealKind::Shamir => "set of unseal keys",
            SealKind::Pkcs11 => "HSM token",
            SealKind::Tpm2 => "TPM",
        }
    }
}

impl std::fmt::Display for SealKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the engine hands a hardware seal when it makes (or remakes) the sealed root key,
/// for seals that tie the root key to more than the device (the TPM's PCR policy).
pub struct SealBinding<'a> {
    /// The recovery key the recovery shares reconstruct: a seal may let it open the root
    /// key on this device whatever the platform state (the TPM policy's recovery branch).
    pub recovery_key: &'a [u8],
    /// The appliance policy key from [`SealDevice::new_policy_key`], kept under the
    /// barrier; it signs the platform states the seal accepts.
    pub policy_key: Option<&'a [u8]>,
}

/// What a PCR should hold at the next boot, for [`RootOfTrust::authorize_pcrs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcrTarget {
    /// This exact value (SHA-256 bank).
    Value(Vec<u8>),
    /// The current value with these digests extended into it, in order.
    Extend(Vec<Vec<u8>>),
}

/// The platform states a seal accepts (TPM: PCR values, hex, by index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealPolicyReport {
    /// The PCRs the seal is bound to (SHA-256 bank).
    pub pcrs: Vec<u8>,
    /// True when the sealed object takes signed PCR policies (PolicyAuthorize).
    pub signed_policy: bool,
    /// The PCRs' values now.
    pub current: BTreeMap<u8, String>,
    /// Whether the current values are among the authorised ones (auto-unseal would work).
    pub current_authorized: bool,
    /// The signed PCR values, oldest first.
    pub authorized: Vec<BTreeMap<u8, String>>,
}

/// Key types the in-boundary operations (managed keys) will ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Aes256,
    Rsa(u32),
    EcP256,
    EcP384,
}

/// A key made inside the boundary, as it may be stored: wrapped by the root key.
#[derive(Clone)]
pub struct WrappedKey {
    pub spec: KeySpec,
    pub blob: Vec<u8>,
    /// The public key (DER SubjectPublicKeyInfo) for asymmetric keys.
    pub public: Option<Vec<u8>>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("spec", &self.spec)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// What a backend can do beyond wrap/unwrap, so callers pick a path without knowing
/// which hardware they run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The root key lives in a device (false for Shamir).
    pub hardware: bool,
    /// `generate_key`, `sign`, `decrypt`, `export_wrap` run inside the device.
    pub in_boundary_keys: bool,
    /// The device has an RNG that `random` mixes in.
    pub hardware_rng: bool,
    /// The mechanisms the device runs on the keys it holds, as the backend found them.
    pub mechanisms: Mechanisms,
}

impl Capabilities {
    /// Whether a key of `spec` held inside the boundary signs with `mechanism`.
    pub fn can_sign(&self, spec: KeySpec, mechanism: &SignMechanism) -> bool {
        self.in_boundary_keys && self.mechanisms.contains(Mechanisms::sign(spec, mechanism))
    }

    /// Whether a key of `spec` held inside the boundary encrypts with `mechanism`.
    pub fn can_encrypt(&self, spec: KeySpec, mechanism: &EncryptMechanism<'_>) -> bool {
        self.in_boundary_keys
            && self
                .mechanisms
                .contains(Mechanisms::encrypt(spec, mechanism))
    }

    /// Whether a key of `spec` held inside the boundary decrypts with `mechanism`.
    pub fn can_decrypt(&self, spec: KeySpec, mechanism: &DecryptMechanism<'_>) -> bool {
        self.in_boundary_keys
            && self
                .mechanisms
                .contains(Mechanisms::decrypt(spec, mechanism))
    }
}

/// A set of in-boundary mechanisms (a bit each), small enough for [`Capabilities`] to
/// stay `Copy`. Parameters that a device checks separately (the OAEP hash, an OAEP
/// label) have bits of their own, because tokens differ there: SoftHSM2 refuses OAEP
/// with anything but SHA-1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mechanisms(u64);

impl Mechanisms {
    pub const RSA_PKCS_SIGN: Mechanisms = Mechanisms(1 << 0);
    /// PKCS#1 v1.5 with the device hashing, by [`HashAlg::index`].
    const RSA_PKCS_HASH_SIGN: u64 = 1 << 1;
    pub const RSA_PSS_SIGN: Mechanisms = Mechanisms(1 << 6);
    pub const ECDSA_SIGN: Mechanisms = Mechanisms(1 << 7);
    pub const RSA_PKCS_DECRYPT: Mechanisms = Mechanisms(1 << 8);
    /// OAEP decryption with MGF1 of the same hash and no label, by [`HashAlg::index`].
    const RSA_OAEP_DECRYPT: u64 = 1 << 9;
    pub const RSA_OAEP_LABEL: Mechanisms = Mechanisms(1 << 14);
    pub const AES_GCM: Mechanisms = Mechanisms(1 << 15);
    pub const AES_CBC_PAD: Mechanisms = Mechanisms(1 << 16);
    /// Asked for by a combination no device does (ECDSA with an AES key).
    pub const IMPOSSIBLE: Mechanisms = Mechanisms(1 << 63);

    pub const fn empty() -> Mechanisms {
        Mechanisms(0)
    }

    pub fn rsa_pkcs_hash_sign(hash: HashAlg) -> Mechanisms {
        Mechanisms(Self::RSA_PKCS_HASH_SIGN << hash.index())
    }

    pub fn rsa_oaep_decrypt(hash: HashAlg) -> Mechanisms {
        Mechanisms(Self::RSA_OAEP_DECRYPT << hash.index())
    }

    #[must_use]
    pub fn with(self, other: Mechanisms) -> Mechanisms {
        Mechanisms(self.0 | other.0)
    }

    pub fn contains(self, other: Mechanisms) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// What a device must have to sign with `mechanism` using a key of `spec`.
    pub fn sign(spec: KeySpec, mechanism: &SignMechanism) -> Mechanisms {
        match (spec, mechanism) {
            (KeySpec::Rsa(_), SignMechanism::RsaPkcs1 { hash: None }) => Self::RSA_PKCS_SIGN,
            (KeySpec::Rsa(_), SignMechanism::RsaPkcs1 { hash: Some(h) }) => {
                Self::rsa_pkcs_hash_sign(*h)
            }
            (KeySpec::Rsa(_), SignMechanism::RsaPss { digest, mgf, .. }) if digest == mgf => {
                Self::RSA_PSS_SIGN
            }
            (KeySpec::EcP256 | KeySpec::EcP384, SignMechanism::EcdsaPrehashed) => Self::ECDSA_SIGN,
            _ => Self::IMPOSSIBLE,
        }
    }

    /// What a device must have to encrypt with `mechanism` using a key of `spec`.
    pub fn encrypt(spec: KeySpec, mechanism: &EncryptMechanism<'_>) -> Mechanisms {
        match (spec, mechanism) {
            (KeySpec::Aes256, EncryptMechanism::AesGcm { .. }) => Self::AES_GCM,
            (KeySpec::Aes256, EncryptMechanism::AesCbcPad { .. }) => Self::AES_CBC_PAD,
            _ => Self::IMPOSSIBLE,
        }
    }

    /// What a device must have to decrypt with `mechanism` using a key of `spec`.
    pub fn decrypt(spec: KeySpec, mechanism: &DecryptMechanism<'_>) -> Mechanisms {
        match (spec, mechanism) {
            (KeySpec::Aes256, DecryptMechanism::AesGcm { .. }) => Self::AES_GCM,
            (KeySpec::Aes256, DecryptMechanism::AesCbcPad { .. }) => Self::AES_CBC_PAD,
            (KeySpec::Rsa(_), DecryptMechanism::RsaPkcs1) => Self::RSA_PKCS_DECRYPT,
            (KeySpec::Rsa(_), DecryptMechanism::RsaOaep { hash, mgf, label }) if hash == mgf => {
                let needed = Self::rsa_oaep_decrypt(*hash);
                if label.is_empty() {
                    needed
                } else {
                    needed.with(Self::RSA_OAEP_LABEL)
                }
            }
            _ => Self::IMPOSSIBLE,
        }
    }
}

/// The hash functions in-boundary mechanisms name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 5] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    fn index(self) -> u32 {
        match self {
            HashAlg::Sha1 => 0,
            HashAlg::Sha224 => 1,
            HashAlg::Sha256 => 2,
            HashAlg::Sha384 => 3,
            HashAlg::Sha512 => 4,
        }
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// How a key inside the boundary signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMechanism {
    /// RSA PKCS#1 v1.5. With a hash the device hashes `data` and signs its DigestInfo
    /// (`CKM_SHA256_RSA_PKCS`…); without, `data` is what is padded and signed
    /// (`CKM_RSA_PKCS`: a DigestInfo the caller built).
    RsaPkcs1 { hash: Option<HashAlg> },
    /// RSA-PSS over a digest the caller computed (`CKM_RSA_PKCS_PSS`).
    RsaPss {
        digest: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
    },
    /// ECDSA over a digest the caller computed; the answer is the raw `r || s`.
    EcdsaPrehashed,
}

/// How a key inside the boundary encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptMechanism<'a> {
    /// AES-GCM with the caller's IV and AAD, answering `ciphertext || tag`.
    AesGcm {
        iv: &'a [u8],
        aad: &'a [u8],
        tag_len: usize,
    },
    /// AES-CBC with PKCS#7 padding.
    AesCbcPad { iv: [u8; 16] },
}

/// How a key inside the boundary decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptMechanism<'a> {
    /// The inverse of [`EncryptMechanism::AesGcm`]: `data` is `ciphertext || tag`.
    AesGcm {
        iv: &'a [u8],
        aad: &'a [u8],
        tag_len: usize,
    },
    /// The inverse of [`EncryptMechanism::AesCbcPad`].
    AesCbcPad { iv: [u8; 16] },
    /// RSA PKCS#1 v1.5 decryption.
    RsaPkcs1,
    /// RSA-OAEP; SoftHSM2 does only SHA-1 with MGF1-SHA1 (see DESIGN.md), which
    /// [`Capabilities`] tells.
    RsaOaep {
        hash: HashAlg,
        mgf: HashAlg,
        label: &'a [u8],
    },
}

/// How a managed key is wrapped for export under an outside RSA public key (BYOK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapMechanism {
    /// RSA-OAEP of the key itself (AES keys), SHA-1.
    RsaOaepSha1,
    /// RSA-OAEP of the key itself (AES keys), SHA-256.
    RsaOaepSha256,
    /// An ephemeral AES key under RSA-OAEP SHA-1, then the target under it with RFC 5649.
    RsaAesKeyWrapSha1,
    /// An ephemeral AES key under RSA-OAEP SHA-256, then the target under it with RFC 5649.
    RsaAesKeyWrapSha256,
}

/// Whether [`SealDevice::open`] may make a root key the device does not hold yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The root key must exist: a missing one is a device mismatch.
    Existing,
    /// A missing root key is made (init and seal migration).
    CreateIfMissing,
}

/// The root of trust: the only thing that can open the barrier keyring.
///
/// `wrap`/`unwrap` are what every backend does. The key operations after them are for
/// managed keys, which only a device that keeps keys inside its boundary can serve; a
/// backend that cannot do one answers [`BridgeError::Unsupported`], which is what the
/// defaults do.
pub trait RootOfTrust: Send + Sync {
    fn kind(&self) -> SealKind;

    /// Encrypts `plaintext` under the root key, binding `aad` to the result.
    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError>;

    /// Opens a blob made by `wrap` with the same `aad`; fails if either was altered or
    /// the blob was made under another root key.
    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError>;

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Random bytes: the OS RNG mixed with the device RNG where there is one.
    fn random(&self, buf: &mut [u8]) -> Result<(), BridgeError> {
        fill_random(buf);
        Ok(())
    }

    /// Generates a key inside the boundary and returns it wrapped by the root key.
    fn generate_key(&self, _spec: KeySpec) -> Result<WrappedKey, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "generate_key",
        })
    }

    /// Like [`RootOfTrust::generate_key`], for a key created exportable: a backend that
    /// keeps other keys unextractable inside the device (the PKCS#11 root key's unwrap
    /// template) wraps this one so that [`RootOfTrust::export_wrap`] can move it out under
    /// a provider's key. Elsewhere the same as `generate_key`.
    fn generate_exportable_key(&self, spec: KeySpec) -> Result<WrappedKey, BridgeError> {
        self.generate_key(spec)
    }

    /// Signs `data` with a wrapped key; what `data` is depends on `mechanism`.
    fn sign(
        &self,
        _key: &WrappedKey,
        _mechanism: SignMechanism,
        _data: &[u8],
    ) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "sign",
        })
    }

    /// Encrypts with a wrapped key inside the boundary.
    fn encrypt(
        &self,
        _key: &WrappedKey,
        _mechanism: EncryptMechanism<'_>,
        _data: &[u8],
    ) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "encrypt",
        })
    }

    /// Forgets any cached, unwrapped copy of `key` (after its destruction).
    fn forget_key(&self, _key: &WrappedKey) {}

    /// Decrypts with a wrapped key inside the boundary.
    fn decrypt(
        &self,
        _key: &WrappedKey,
        _mechanism: DecryptMechanism<'_>,
        _data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "decrypt",
        })
    }

    /// The platform states this seal accepts (TPM PCR policy); `Unsupported` elsewhere.
    fn seal_policy(&self) -> Result<SealPolicyReport, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "seal policy",
        })
    }

    /// Signs, with the appliance policy key, the PCR values of the next boot (each PCR's
    /// current value unless `targets` says otherwise), so the seal opens after a planned
    /// firmware or boot change.
    fn authorize_pcrs(
        &self,
        _policy_key: &[u8],
        _targets: &BTreeMap<u8, PcrTarget>,
    ) -> Result<SealPolicyReport, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "authorize-pcrs",
        })
    }

    /// Re-creates the sealed root key on the device for the current platform state,
    /// with `binding`'s recovery key and policy key.
    fn reseal(&self, _binding: &SealBinding<'_>) -> Result<SealPolicyReport, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "reseal",
        })
    }

    /// Whether [`RootOfTrust::export_wrap`] produces `mechanism`'s format correctly for
    /// a key of `spec`, as the backend's start-up self-test found (it wraps known
    /// material and compares with [`byok`]'s software computation). `Err` says why not,
    /// naming the missing or faulty mechanism, in words an operator can act on.
    fn export_support(&self, _spec: KeySpec, mechanism: WrapMechanism) -> Result<(), String> {
        Err(format!(
            "the {} seal keeps no managed keys inside a device, so it cannot wrap with {}",
            self.kind(),
            mechanism.pkcs11_name()
        ))
    }

    /// Whether [`RootOfTrust::import_unwrap`] takes a BYOK ciphertext whose ephemeral key
    /// was wrapped with RSA-OAEP of `hash`, as the backend's start-up self-test found
    /// (the device unwraps known material, compared with [`byok`]'s software computation).
    /// `Err` says why not, naming the missing or faulty mechanism.
    fn import_support(&self, hash: HashAlg) -> Result<(), String> {
        Err(format!(
            "the {} seal keeps no keys inside a device, so it cannot unwrap a BYOK import (RSA-OAEP with {hash:?})",
            self.kind()
        ))
    }

    /// The target key of a BYOK import in Vault's format, unwrapped inside the boundary:
    /// `wrapped_ephemeral` is RSA-OAEP (`hash`, MGF1 of the same, no label) of an AES-256
    /// key under `key`, an RSA key from [`RootOfTrust::generate_key`]; `wrapped_target` is
    /// the target under that AES key (RFC 5649). The ephemeral key never leaves the
    /// device and every object made for the import is destroyed, errors included; the
    /// target's bytes are the answer. Callers ask [`RootOfTrust::import_support`] first.
    fn import_unwrap(
        &self,
        _key: &WrappedKey,
        _hash: HashAlg,
        _wrapped_ephemeral: &[u8],
        _wrapped_target: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ImportError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "import_unwrap",
        }
        .into())
    }

    /// Wraps a managed key for export under an outside public key (BYOK), inside the
    /// boundary, in the format `mechanism` names (see [`byok`] for the bytes). Callers
    /// ask [`RootOfTrust::export_support`] first.
    fn export_wrap(
        &self,
        _key: &WrappedKey,
        _wrapping_public_der: &[u8],
        _mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::Unsupported {
            kind: self.kind(),
            op: "export_wrap",
        })
    }
}

/// A configured hardware seal that can be (re)opened: the engine calls `open` at start
/// and keeps calling it, with backoff, while the device is away.
pub trait SealDevice: Send + Sync {
    fn kind(&self) -> SealKind;

    /// Connects to the device and finds the root key; `mode` says whether a missing root
    /// key is made (only `operator init` and seal migration ask for that).
    fn open(&self, mode: OpenMode) -> Result<Arc<dyn RootOfTrust>, BridgeError>;

    /// Where the device is, for logs (module path, token, TCTI); never a PIN.
    fn describe(&self) -> String;

    /// A new appliance policy key, for seals that accept signed platform states (TPM);
    /// the engine keeps it under the barrier and hands it back in [`SealBinding`].
    fn new_policy_key(&self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }

    /// Makes a new root key (init, seal migration), replacing any left by an
    /// interrupted init.
    fn create(&self, _binding: &SealBinding<'_>) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        self.open(OpenMode::CreateIfMissing)
    }

    /// Opens the root key with the recovery key's help where the seal allows it (a TPM
    /// whose PCRs changed without authorisation); other seals simply open.
    fn open_with_recovery(
        &self,
        _recovery_key: &[u8],
    ) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        self.open(OpenMode::Existing)
    }
}
