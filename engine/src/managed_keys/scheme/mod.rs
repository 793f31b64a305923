//! How an operation uses a key, chosen by the caller instead of the key's default: the
//! PKCS#11 mechanisms (and their parameters) as the engine knows them, free of any wire
//! encoding. `/api/v1` uses [`SignScheme::Default`] and [`CipherScheme::Default`], the
//! formats documented in `material.rs`.

//!
//! One implementation of each primitive: `/api/v1` comes here too, with the `Default`
//! schemes. Software-protected versions run on RustCrypto (`crate::crypto`); versions
//! held by the HSM go to the root of trust with the matching `hsm_bridge` mechanism, and
//! only where [`hsm_bridge::Capabilities`] says the device can (what [`can_sign`] and
//! [`can_cipher`] answer). Public-key work (verification, RSA encryption, ML-KEM
//! encapsulation) always runs here on the stored public key.
//!
//! Errors: input that does not fit the scheme (a digest of the wrong length, data too
//! long for the key, an IV of the wrong size) is [`KeyError::Invalid`]; a scheme for
//! another key type (PSS on an EC key) [`KeyError::WrongKeyType`]; a scheme this key or
//! boundary cannot do [`KeyError::Unsupported`].
//!
//! Key wrapping ([`KeyStore::unwrap_secret`], [`KeyStore::wrap_secret`]): AES-KW and
//! AES-KWP with a software AES key, RSA-OAEP with an RSA key (inside the HSM where it is
//! held there). An HSM-held AES key does not unwrap to plaintext: the secret would leave
//! the boundary, so that answers `Unsupported`.

mod cipher;
mod sign;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use hsm_bridge::{HashAlg, RootOfTrust};
use sha2::Digest;
use zeroize::Zeroizing;

use super::error::KeyError;
use super::material::Loaded;
use super::model::{Algorithm, Protection, Usage};
use super::{blocking, on_lane, with_loaded, KeyStore, ManagedKey, Output};

pub use cipher::encapsulate_public;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        self.bridge().digest_len()
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn bridge(self) -> HashAlg {
        match self {
            Hash::Sha1 => HashAlg::Sha1,
            Hash::Sha224 => HashAlg::Sha224,
            Hash::Sha256 => HashAlg::Sha256,
            Hash::Sha384 => HashAlg::Sha384,
            Hash::Sha512 => HashAlg::Sha512,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha224 => "SHA-224",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }
}

/// Runs `$body` with `$d` the RustCrypto digest type of `$hash`.
macro_rules! with_hash {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            Hash::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            Hash::Sha224 => {
                type $d = sha2::Sha224;
                $body
            }
            Hash::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            Hash::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            Hash::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
        }
    };
}
use with_hash;

/// What a signature is made over and how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignScheme {
    /// The key's own format (RSA PKCS#1 v1.5 SHA-256, ECDSA DER over SHA-256/384, ML-DSA
    /// pure): what `/api/v1` answers.
    Default,
    /// RSA PKCS#1 v1.5. With a hash the message is hashed and wrapped in a DigestInfo
    /// (`CKM_SHA256_RSA_PKCS`); without, the data is the DigestInfo (or any value up to
    /// k-11 bytes) to pad (`CKM_RSA_PKCS`).
    RsaPkcs1 { hash: Option<Hash> },
    /// RSA-PSS. Without `hash` the data is the digest (`CKM_RSA_PKCS_PSS`), whose length
    /// must match `digest`.
    RsaPss {
        hash: Option<Hash>,
        digest: Hash,
        mgf: Hash,
        salt_len: usize,
    },
    /// ECDSA answering raw `r || s` (PKCS#11's encoding). Without `hash` the data is the
    /// digest (`CKM_ECDSA`).
    EcdsaRaw { hash: Option<Hash> },
    /// ML-DSA (FIPS 204), pure, with a context string of at most 255 bytes;
    /// `deterministic` is FIPS 204's deterministic variant, otherwise hedged.
    MlDsa {
        context: Vec<u8>,
        deterministic: bool,
    },
}

/// How data is encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherScheme {
    /// The key's own format (RSA-OAEP, AES-GCM with a generated IV prepended, ML-KEM +
    /// AES-GCM): what `/api/v1` answers.
    Default,
    /// RSA PKCS#1 v1.5 encryption (`CKM_RSA_PKCS`).
    RsaPkcs1,
    /// RSA-OAEP (`CKM_RSA_PKCS_OAEP`); the label is OAEP's encoding parameter.
    RsaOaep {
        hash: Hash,
        mgf: Hash,
        label: Vec<u8>,
    },
    /// AES-GCM with the caller's IV and AAD; ciphertext then tag, the tag `tag_len`
    /// bytes (`CKM_AES_GCM`).
    AesGcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_len: usize,
    },
    /// AES-CBC with PKCS#7 padding (`CKM_AES_CBC_PAD`).
    AesCbcPad { iv: [u8; 16] },
}

/// How a key is wrapped by (or unwrapped with) an AES key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapScheme {
    /// RFC 3394 (`CKM_AES_KEY_WRAP`), default IV.
    AesKeyWrap,
    /// RFC 5649 (`CKM_AES_KEY_WRAP_KWP`).
    AesKeyWrapPad,
    /// RSA-OAEP of the key bytes (`CKM_RSA_PKCS_OAEP` as a wrap mechanism).
    RsaOaep { hash: Hash, mgf: Hash },
}

impl WrapScheme {
    /// For AES key wrapping, whether it pads (RFC 5649); RSA-OAEP is a decryption (or
    /// encryption) with that scheme instead.
    fn aes_padding(self) -> Result<bool, CipherScheme> {
        match self {
            WrapScheme::AesKeyWrap => Ok(false),
            WrapScheme::AesKeyWrapPad => Ok(true),
            WrapScheme::RsaOaep { hash, mgf } => Err(CipherScheme::RsaOaep {
                hash,
                mgf,
                label: Vec::new(),
            }),
        }
    }
}

/// Whether a version of `algorithm` held as `protection` on a boundary with
/// `capabilities` can sign with `scheme` (what `C_GetMechanismInfo` tells the truth
/// from). Software versions can use every scheme their key type allows.
pub fn can_sign(
    algorithm: Algorithm,
    protection: Protection,
    capabilities: &hsm_bridge::Capabilities,
    scheme: &SignScheme,
) -> bool {
    let Ok(plan) = sign::plan(algorithm, scheme.clone()) else {
        return false;
    };
    match protection {
        Protection::Software => true,
        Protection::Hsm => algorithm
            .spec()
            .zip(sign::hsm_mechanism(&plan.scheme))
            .is_some_and(|(spec, m)| capabilities.can_sign(spec, &m)),
    }
}

/// As [`can_sign`], for encryption and decryption: true when both directions work
/// (RSA encryption is always done here, on the public key).
pub fn can_cipher(
    algorithm: Algorithm,
    protection: Protection,
    capabilities: &hsm_bridge::Capabilities,
    scheme: &CipherScheme,
) -> bool {
    if cipher::check(algorithm, scheme).is_err() {
        return false;
    }
    match protection {
        Protection::Software => true,
        Protection::Hsm => cipher::hsm_can(algorithm, capabilities, scheme),
    }
}

/// As [`can_cipher`], for [`KeyStore::unwrap_secret`] and [`KeyStore::wrap_secret`].
pub fn can_wrap(
    algorithm: Algorithm,
    protection: Protection,
    capabilities: &hsm_bridge::Capabilities,
    scheme: WrapScheme,
) -> bool {
    match scheme.aes_padding() {
        Ok(_) => algorithm == Algorithm::Aes256 && protection == Protection::Software,
        Err(oaep) => can_cipher(algorithm, protection, capabilities, &oaep),
    }
}

/// Secret output of a decryption, with the version used.
pub type Plain = (Zeroizing<Vec<u8>>, u32);

/// Verifies with a public key that is not a managed key's (a PKCS#11 public-key object an
/// application stored): `public` is a DER SubjectPublicKeyInfo (RSA, EC) or the encoded
/// ML-DSA key.
pub fn verify_public(
    algorithm: Algorithm,
    public: &[u8],
    scheme: &SignScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, KeyError> {
    let plan = sign::plan(algorithm, scheme.clone())?;
    sign::verify(algorithm, public, &plan, message, signature)
}

/// Encrypts to a public key that is not a managed key's (RSA only; ML-KEM is
/// [`encapsulate_public`]); `Default` is OAEP with SHA-256.
pub fn encrypt_public(
    algorithm: Algorithm,
    public: &[u8],
    scheme: &CipherScheme,
    plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    if !cipher::is_rsa(algorithm) {
        return Err(KeyError::WrongKeyType(format!(
            "only RSA public keys encrypt; this is a {} key",
            algorithm.as_str()
        )));
    }
    cipher::check(algorithm, scheme)?;
    cipher::rsa_encrypt(public, Protection::Software, scheme, plaintext)
}

/// A key held in memory outside the store: a PKCS#11 session key, generated in the
/// boundary ([`super::material::generate`]: with an HSM, `loaded` is the blob the HSM
/// wrapped under its root key) or made from a received AES-256 secret. It is never
/// stored, and its parsed material is zeroized when it goes. Its operations are a
/// managed-key version's, without the version.
pub struct HeldKey {
    pub algorithm: Algorithm,
    pub protection: Protection,
    pub loaded: Loaded,
    /// RSA/EC: DER SubjectPublicKeyInfo; ML-DSA/ML-KEM: the encoded public key.
    pub public: Option<Vec<u8>>,
}

impl HeldKey {
    /// An AES-256 secret received from outside (unwrapped or decapsulated).
    pub fn secret(secret: Zeroizing<Vec<u8>>) -> HeldKey {
        HeldKey {
            algorithm: Algorithm::Aes256,
            protection: Protection::Software,
            loaded: Loaded::Aes(secret),
            public: None,
        }
    }

    pub fn sign(
        &self,
        root: &dyn RootOfTrust,
        scheme: SignScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        KeyStore::check_size("message", message)?;
        let plan = sign::plan(self.algorithm, scheme)?;
        sign::sign(&self.loaded, self.algorithm, root, &plan, message)
    }

    pub fn encrypt(
        &self,
        root: &dyn RootOfTrust,
        scheme: &CipherScheme,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        KeyStore::check_size("plaintext", plaintext)?;
        cipher::check(self.algorithm, scheme)?;
        cipher::encrypt(
            Some(&self.loaded),
            self.algorithm,
            self.protection,
            self.public.as_deref(),
            root,
            scheme,
            plaintext,
        )
    }

    pub fn decrypt(
        &self,
        root: &dyn RootOfTrust,
        scheme: &CipherScheme,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        KeyStore::check_ciphertext_size(ciphertext)?;
        cipher::check(self.algorithm, scheme)?;
        cipher::decrypt(
            &self.loaded,
            self.algorithm,
            self.protection,
            root,
            scheme,
            ciphertext,
        )
    }

    /// As [`KeyStore::unwrap_secret`]: AES-KW/KWP with a software AES key, RSA-OAEP
    /// with an RSA key.
    pub fn unwrap(
        &self,
        root: &dyn RootOfTrust,
        scheme: WrapScheme,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match scheme.aes_padding() {
            Err(oaep) => self.decrypt(root, &oaep, wrapped),
            Ok(padded) => {
                KeyStore::check_ciphertext_size(wrapped)?;
                if self.algorithm != Algorithm::Aes256 {
                    return Err(KeyError::WrongKeyType(format!(
                        "AES key wrapping needs an AES key, not a {} key",
                        self.algorithm.as_str()
                    )));
                }
                cipher::aes_unwrap(&self.loaded, wrapped, padded)
            }
        }
    }

    /// ML-KEM-768 decapsulation: the 32-byte shared secret.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        cipher::decapsulate(&self.loaded, ciphertext)
    }
}

impl KeyStore {
    /// [`KeyStore::sign`] with a caller-chosen scheme.
    pub async fn sign_with(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        scheme: SignScheme,
        message: Vec<u8>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Output, KeyError> {
        Self::check_usage(key, Usage::SignVerify, "sign")?;
        Self::check_size("message", &message)?;
        let plan = sign::plan(key.algorithm, scheme)?;
        let v = Self::pick(key, version)?;
        let loaded = self.load(key, &v)?;
        let algorithm = key.algorithm;
        let data = with_loaded(loaded, move |loaded| {
            sign::sign(loaded, algorithm, root.as_ref(), &plan, &message)
        })
        .await?;
        Ok(Output {
            data,
            version: v.version,
        })
    }

    /// [`KeyStore::verify`] with a caller-chosen scheme: whether it verifies, and the
    /// version used.
    pub async fn verify_with(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        scheme: SignScheme,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<(bool, u32), KeyError> {
        Self::check_usage(key, Usage::SignVerify, "verify")?;
        Self::check_size("message", &message)?;
        let plan = sign::plan(key.algorithm, scheme)?;
        let v = Self::pick(key, version)?;
        let public = v.public_key.clone().ok_or_else(|| {
            KeyError::WrongKeyType(format!(
                "{} keys have no public key",
                key.algorithm.as_str()
            ))
        })?;
        let algorithm = key.algorithm;
        let ok =
            blocking(move || sign::verify(algorithm, &public, &plan, &message, &signature)).await?;
        Ok((ok, v.version))
    }

    /// [`KeyStore::encrypt`] with a caller-chosen scheme.
    pub async fn encrypt_with(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        scheme: CipherScheme,
        plaintext: Zeroizing<Vec<u8>>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Output, KeyError> {
        Self::check_usage(key, Usage::EncryptDecrypt, "encrypt")?;
        Self::check_size("plaintext", &plaintext)?;
        cipher::check(key.algorithm, &scheme)?;
        let v = Self::pick(key, version)?;
        // Only AES encrypts with the secret key; RSA and ML-KEM use the public key.
        let loaded = if key.algorithm == Algorithm::Aes256 {
            Some(self.load(key, &v)?)
        } else {
            None
        };
        let algorithm = key.algorithm;
        let protection = v.protection;
        let public = v.public_key.clone();
        // AES with an HSM-held key is the device's work; RSA and ML-KEM use the public key.
        let device = matches!(loaded.as_deref(), Some(Loaded::Hsm(_)));
        let data = on_lane(device, move || {
            cipher::encrypt(
                loaded.as_deref(),
                algorithm,
                protection,
                public.as_deref(),
                root.as_ref(),
                &scheme,
                &plaintext,
            )
        })
        .await?;
        Ok(Output {
            data,
            version: v.version,
        })
    }

    /// [`KeyStore::decrypt`] with a caller-chosen scheme.
    pub async fn decrypt_with(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        scheme: CipherScheme,
        ciphertext: Vec<u8>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Plain, KeyError> {
        Self::check_usage(key, Usage::EncryptDecrypt, "decrypt")?;
        Self::check_ciphertext_size(&ciphertext)?;
        cipher::check(key.algorithm, &scheme)?;
        let v = Self::pick(key, version)?;
        let loaded = self.load(key, &v)?;
        let algorithm = key.algorithm;
        let protection = v.protection;
        let plain = with_loaded(loaded, move |loaded| {
            cipher::decrypt(
                loaded,
                algorithm,
                protection,
                root.as_ref(),
                &scheme,
                &ciphertext,
            )
        })
        .await?;
        Ok((plain, v.version))
    }

    /// ML-KEM-768 encapsulation (`CKM_ML_KEM`) to this version's public key: the
    /// ciphertext and the new 32-byte shared secret.
    pub fn encapsulate(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
    ) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), KeyError> {
        Self::check_usage(key, Usage::EncryptDecrypt, "encapsulate")?;
        if key.algorithm != Algorithm::MlKem768 {
            return Err(KeyError::WrongKeyType(format!(
                "only ML-KEM keys encapsulate; {:?} is a {} key",
                key.name,
                key.algorithm.as_str()
            )));
        }
        let v = Self::pick(key, version)?;
        encapsulate_public(
            v.public_key
                .as_deref()
                .ok_or_else(super::material::corrupt)?,
        )
    }

    /// ML-KEM-768 decapsulation (`CKM_ML_KEM`): the 32-byte shared secret of a
    /// ciphertext made by encapsulating to this version's public key.
    pub async fn decapsulate(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        ciphertext: Vec<u8>,
        _root: Arc<dyn RootOfTrust>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Self::check_usage(key, Usage::EncryptDecrypt, "decapsulate")?;
        if key.algorithm != Algorithm::MlKem768 {
            return Err(KeyError::WrongKeyType(format!(
                "only ML-KEM keys decapsulate; {:?} is a {} key",
                key.name,
                key.algorithm.as_str()
            )));
        }
        let v = Self::pick(key, version)?;
        let loaded = self.load(key, &v)?;
        blocking(move || cipher::decapsulate(&loaded, &ciphertext)).await
    }

    /// Unwraps a secret (`C_UnwrapKey`) with this key version: AES-KW or AES-KWP with a
    /// software AES key, RSA-OAEP with an RSA key. The caller makes the result a new key.
    pub async fn unwrap_secret(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        scheme: WrapScheme,
        wrapped: Vec<u8>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Plain, KeyError> {
        let padded = match scheme.aes_padding() {
            Ok(padded) => padded,
            Err(oaep) => return self.decrypt_with(key, version, oaep, wrapped, root).await,
        };
        Self::check_ciphertext_size(&wrapped)?;
        let (v, loaded) = self.aes_kek(key, version, "unwrap")?;
        let plain = with_loaded(loaded, move |loaded| {
            cipher::aes_unwrap(loaded, &wrapped, padded)
        })
        .await?;
        Ok((plain, v.version))
    }

    /// The version and loaded key an AES key wrap or unwrap uses.
    fn aes_kek(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        op: &str,
    ) -> Result<(super::KeyVersion, Arc<Loaded>), KeyError> {
        Self::check_usage(key, Usage::EncryptDecrypt, op)?;
        if key.algorithm != Algorithm::Aes256 {
            return Err(KeyError::WrongKeyType(format!(
                "AES key wrapping needs an AES key; {:?} is a {} key",
                key.name,
                key.algorithm.as_str()
            )));
        }
        let v = Self::pick(key, version)?;
        let loaded = self.load(key, &v)?;
        Ok((v, loaded))
    }

    /// The inverse of [`KeyStore::unwrap_secret`]: `secret` wrapped under this version.
    pub async fn wrap_secret(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        scheme: WrapScheme,
        secret: Zeroizing<Vec<u8>>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Output, KeyError> {
        let padded = match scheme.aes_padding() {
            Ok(padded) => padded,
            Err(oaep) => return self.encrypt_with(key, version, oaep, secret, root).await,
        };
        Self::check_size("key to wrap", &secret)?;
        let (v, loaded) = self.aes_kek(key, version, "wrap")?;
        let data = with_loaded(loaded, move |loaded| {
            cipher::aes_wrap(loaded, &secret, padded)
        })
        .await?;
        Ok(Output {
            data,
            version: v.version,
        })
    }
}
