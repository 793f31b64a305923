//! Signing, verification, encryption and decryption with a mechanism the caller chose;
//! digests and random bytes, which need no token.

use cryptoki_sys::*;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use std::sync::Arc;

use super::{key, object, Instance};
use crate::compute;
use crate::error::Result;
use crate::managed_keys::scheme::{self, CipherScheme, Hash, HeldKey, SignScheme};
use crate::managed_keys::{Algorithm, KeyError, ManagedKey, Usage, MAX_MESSAGE};
use crate::ops::{Access, Context, Decoded, Op, Scope};
use crate::pkcs11::{code, keys as key_objects, objects as stored, refuse};
use crate::pkcs11::{Handle, KeyClass, Object};

/// Largest `C_GenerateRandom` answer.
pub const MAX_RANDOM: usize = 64 * 1024;

fn too_large(what: &str, len: usize) -> crate::error::EngineError {
    KeyError::TooLarge(format!(
        "the {what} is {len} bytes; the limit is {MAX_MESSAGE}"
    ))
    .into()
}

pub(super) fn not_permitted(what: &str) -> crate::error::EngineError {
    refuse(
        code::KEY_FUNCTION_NOT_PERMITTED,
        format!("this object cannot {what}"),
    )
}

pub(super) fn is_rsa(a: Algorithm) -> bool {
    matches!(
        a,
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096
    )
}

fn sign_fits(a: Algorithm, s: &SignScheme) -> bool {
    match s {
        SignScheme::Default => true,
        SignScheme::RsaPkcs1 { .. } | SignScheme::RsaPss { .. } => is_rsa(a),
        SignScheme::EcdsaRaw { .. } => matches!(a, Algorithm::EcP256 | Algorithm::EcP384),
        SignScheme::MlDsa { .. } => a == Algorithm::MlDsa65,
    }
}

fn cipher_fits(a: Algorithm, s: &CipherScheme) -> bool {
    match s {
        CipherScheme::Default => true,
        CipherScheme::RsaPkcs1 | CipherScheme::RsaOaep { .. } => is_rsa(a),
        CipherScheme::AesGcm { .. } | CipherScheme::AesCbcPad { .. } => a == Algorithm::Aes256,
    }
}

pub(super) fn inconsistent() -> crate::error::EngineError {
    refuse(
        code::KEY_TYPE_INCONSISTENT,
        "the mechanism does not take this type of key",
    )
}

/// The managed key and version a handle names, for a use its objects of `classes` allow.
fn usable(
    cx: &Context<'_>,
    handle: Handle,
    classes: &[KeyClass],
    usage: Usage,
    what: &str,
) -> Result<(ManagedKey, u32)> {
    let Handle::Key {
        key: id,
        version,
        class,
    } = handle
    else {
        return Err(not_permitted(what));
    };
    let k = key(cx, &id)?;
    key_objects::key_object(&k, version, class)?;
    if !classes.contains(&class) || k.usage != usage || k.algorithm == Algorithm::MlKem768 {
        return Err(not_permitted(what));
    }
    Ok((k, version))
}

/// The session private or secret key `handle` names, whose `flag` is set; `None` if
/// `handle` names no such key (a managed key's object, a public key, another object).
fn session_key(
    cx: &Context<'_>,
    instance: &Instance,
    handle: Handle,
    flag: CK_ATTRIBUTE_TYPE,
    what: &str,
) -> Result<Option<Arc<HeldKey>>> {
    let Handle::Session(id) = handle else {
        return Ok(None);
    };
    let (o, key) = cx.core.pkcs11_sessions.key(instance, id)?;
    if key.is_some() && !o.get_bool(flag) {
        return Err(not_permitted(what));
    }
    Ok(key)
}

/// A stored or session public key whose `flag` is set.
fn outside_public(
    cx: &Context<'_>,
    instance: &Instance,
    handle: Handle,
    flag: CK_ATTRIBUTE_TYPE,
    what: &str,
) -> Result<(Algorithm, Vec<u8>)> {
    let o: Object = object(cx, instance, handle)?;
    let key = stored::public_key(&o)?;
    if !o.get_bool(flag) {
        return Err(not_permitted(what));
    }
    Ok(key)
}

pub struct Sign {
    pub instance: Instance,
    pub key: Handle,
    pub scheme: Decoded<SignScheme>,
    pub data: Vec<u8>,
}

impl Op for Sign {
    type Output = Vec<u8>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<u8>> {
        let scheme = self.scheme?;
        if let Some(key) = session_key(&cx, &self.instance, self.key, CKA_SIGN, "sign")? {
            if !sign_fits(key.algorithm, &scheme) {
                return Err(inconsistent());
            }
            let root = cx.core.root()?;
            return Ok(compute::run(move || key.sign(root.as_ref(), scheme, &self.data)).await??);
        }
        let (k, version) = usable(
            &cx,
            self.key,
            &[KeyClass::Private],
            Usage::SignVerify,
            "sign",
        )?;
        if !sign_fits(k.algorithm, &scheme) {
            return Err(inconsistent());
        }
        if self.data.len() > MAX_MESSAGE {
            return Err(too_large("data", self.data.len()));
        }
        let out = cx
            .core
            .keys
            .sign_with(&k, Some(version), scheme, self.data, cx.core.root()?)
            .await?;
        Ok(out.data)
    }
}

pub struct Verify {
    pub instance: Instance,
    pub key: Handle,
    pub scheme: Decoded<SignScheme>,
    pub data: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Op for Verify {
    /// Whether the signature is valid.
    type Output = bool;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<bool> {
        let scheme = self.scheme?;
        if self.data.len() > MAX_MESSAGE {
            return Err(too_large("data", self.data.len()));
        }
        if let Handle::Key { .. } = self.key {
            let (k, version) = usable(
                &cx,
                self.key,
                &[KeyClass::Public],
                Usage::SignVerify,
                "verify",
            )?;
            if !sign_fits(k.algorithm, &scheme) {
                return Err(inconsistent());
            }
            let (valid, _) = cx
                .core
                .keys
                .verify_with(&k, Some(version), scheme, self.data, self.signature)
                .await?;
            return Ok(valid);
        }
        let (algorithm, public) =
            outside_public(&cx, &self.instance, self.key, CKA_VERIFY, "verify")?;
        if !sign_fits(algorithm, &scheme) {
            return Err(inconsistent());
        }
        Ok(scheme::verify_public(
            algorithm,
            &public,
            &scheme,
            &self.data,
            &self.signature,
        )?)
    }
}

pub struct Encrypt {
    pub instance: Instance,
    pub key: Handle,
    pub scheme: Decoded<CipherScheme>,
    pub data: Zeroizing<Vec<u8>>,
}

impl Op for Encrypt {
    type Output = Vec<u8>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<u8>> {
        let scheme = self.scheme?;
        if self.data.len() > MAX_MESSAGE {
            return Err(too_large("data", self.data.len()));
        }
        if let Handle::Key { .. } = self.key {
            let (k, version) = usable(
                &cx,
                self.key,
                &[KeyClass::Public, KeyClass::Secret],
                Usage::EncryptDecrypt,
                "encrypt",
            )?;
            if !cipher_fits(k.algorithm, &scheme) {
                return Err(inconsistent());
            }
            let out = cx
                .core
                .keys
                .encrypt_with(&k, Some(version), scheme, self.data, cx.core.root()?)
                .await?;
            return Ok(out.data);
        }
        if let Some(key) = session_key(&cx, &self.instance, self.key, CKA_ENCRYPT, "encrypt")? {
            if !cipher_fits(key.algorithm, &scheme) {
                return Err(inconsistent());
            }
            let root = cx.core.root()?;
            return Ok(
                compute::run(move || key.encrypt(root.as_ref(), &scheme, &self.data)).await??,
            );
        }
        let (algorithm, public) =
            outside_public(&cx, &self.instance, self.key, CKA_ENCRYPT, "encrypt")?;
        if !cipher_fits(algorithm, &scheme) {
            return Err(inconsistent());
        }
        Ok(scheme::encrypt_public(
            algorithm, &public, &scheme, &self.data,
        )?)
    }
}

pub struct Decrypt {
    pub instance: Instance,
    pub key: Handle,
    pub scheme: Decoded<CipherScheme>,
    pub data: Vec<u8>,
}

impl Op for Decrypt {
    type Output = Zeroizing<Vec<u8>>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Zeroizing<Vec<u8>>> {
        let scheme = self.scheme?;
        if let Some(key) = session_key(&cx, &self.instance, self.key, CKA_DECRYPT, "decrypt")? {
            if !cipher_fits(key.algorithm, &scheme) {
                return Err(inconsistent());
            }
            if self.data.len() > MAX_MESSAGE + 2048 {
                return Err(too_large("data", self.data.len()));
            }
            let root = cx.core.root()?;
            return Ok(
                compute::run(move || key.decrypt(root.as_ref(), &scheme, &self.data)).await??,
            );
        }
        let (k, version) = usable(
            &cx,
            self.key,
            &[KeyClass::Private, KeyClass::Secret],
            Usage::EncryptDecrypt,
            "decrypt",
        )?;
        if !cipher_fits(k.algorithm, &scheme) {
            return Err(inconsistent());
        }
        if self.data.len() > MAX_MESSAGE + 2048 {
            return Err(too_large("data", self.data.len()));
        }
        let (plain, _) = cx
            .core
            .keys
            .decrypt_with(&k, Some(version), scheme, self.data, cx.core.root()?)
            .await?;
        Ok(plain)
    }
}

/// `C_Digest`: SHA-2 in the daemon, no key and no token involved.
pub struct Digest {
    pub hash: Decoded<Hash>,
    pub data: Vec<u8>,
}

impl Op for Digest {
    type Output = Vec<u8>;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, _cx: Context<'_>) -> Result<Vec<u8>> {
        let hash = self.hash?;
        if self.data.len() > MAX_MESSAGE {
            return Err(too_large("data", self.data.len()));
        }
        Ok(match hash {
            Hash::Sha256 => Sha256::digest(&self.data).to_vec(),
            Hash::Sha384 => Sha384::digest(&self.data).to_vec(),
            Hash::Sha512 => Sha512::digest(&self.data).to_vec(),
            Hash::Sha1 | Hash::Sha224 => {
                return Err(refuse(
                    code::MECHANISM_INVALID,
                    "digests are SHA-256, SHA-384 and SHA-512",
                ))
            }
        })
    }
}

/// `C_GenerateRandom`: the root of trust's RNG (hardware mixed with the OS), no token.
pub struct Random {
    pub len: usize,
}

impl Op for Random {
    type Output = Zeroizing<Vec<u8>>;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<Zeroizing<Vec<u8>>> {
        if self.len > MAX_RANDOM {
            return Err(refuse(
                code::DATA_LEN_RANGE,
                format!("at most {MAX_RANDOM} random bytes per call"),
            ));
        }
        let mut out = Zeroizing::new(vec![0u8; self.len]);
        cx.core.root()?.random(&mut out)?;
        Ok(out)
    }
}
