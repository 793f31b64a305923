//! Key management: generation inside the boundary, wrapping (never of an appliance key:
//! none is extractable), and keys made from secrets received by unwrapping or by ML-KEM.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::crypto::{inconsistent, is_rsa, not_permitted};
use super::{key, object, Instance};
use crate::error::{EngineError, Result};
use crate::managed_keys::scheme::WrapScheme;
use crate::managed_keys::{Algorithm, KeyError, ManagedKey};
use crate::ops::{Access, Context, Decoded, Op, Scope};
use crate::pkcs11::{code, keygen, keys as key_objects, refuse};
use crate::pkcs11::{Handle, KeyClass, NewKey, NewSecret, Object};

/// `C_GenerateKey` and `C_GenerateKeyPair`: a new managed key with its first version.
pub struct GenerateKey {
    pub request: Decoded<NewKey>,
}

impl Op for GenerateKey {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        let request = self.request?.create;
        cx.check_key(Some(&request.name), None)?;
        Ok(cx.core.keys.create(request, cx.core.root()?).await?)
    }
}

/// `C_WrapKey`: every appliance key is `CKA_EXTRACTABLE` false, and the other objects
/// are not secret or private keys.
pub struct WrapKey {
    pub instance: Instance,
    pub wrapping: Handle,
    pub key: Handle,
    /// The mechanism, checked before the answer.
    pub mechanism: Decoded<()>,
}

impl Op for WrapKey {
    type Output = std::convert::Infallible;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        self.mechanism?;
        object(&cx, &self.instance, self.wrapping)?;
        match self.key {
            Handle::Key { key: id, .. } => {
                key(&cx, &id)?;
                Err(refuse(
                    code::KEY_UNEXTRACTABLE,
                    "appliance keys never leave the appliance (CKA_EXTRACTABLE is false)",
                ))
            }
            other => {
                object(&cx, &self.instance, other)?;
                Err(refuse(
                    code::KEY_NOT_WRAPPABLE,
                    "only secret and private keys are wrapped",
                ))
            }
        }
    }
}

/// What a call making a key from a received secret checks before it uses a key: its
/// template, the right to make a managed key if it asks for one (`keys:write`, beside the
/// `keys:use` every such call needs), and the managed key and version `handle` names,
/// whose object's `flag` (`CKA_UNWRAP`, `CKA_ENCAPSULATE`, `CKA_DECAPSULATE`) allows it.
fn receiving(
    cx: &Context<'_>,
    instance: &Instance,
    handle: Handle,
    template: Decoded<NewSecret>,
    flag: CK_ATTRIBUTE_TYPE,
    what: &str,
) -> Result<(NewSecret, ManagedKey, u32)> {
    let new = template?;
    let write = Scope::Write.fact();
    if new.token && !cx.caller()?.has_scope(write) {
        return Err(EngineError::MissingScope(write));
    }
    let Handle::Key {
        key: id,
        version,
        class,
    } = handle
    else {
        object(cx, instance, handle)?;
        return Err(not_permitted(what));
    };
    let k = key(cx, &id)?;
    if !key_objects::key_object(&k, version, class)?.get_bool(flag) {
        return Err(not_permitted(what));
    }
    Ok((new, k, version))
}

/// The key a received secret becomes: a managed key (`CKA_TOKEN` true) or a session
/// object of the caller's library instance.
async fn keep_secret(
    cx: &Context<'_>,
    instance: &Instance,
    new: NewSecret,
    secret: Zeroizing<Vec<u8>>,
) -> Result<Object> {
    if new.token {
        let create = new.key.create;
        cx.check_key(Some(&create.name), None)?;
        let k = cx.core.keys.import(create, secret).await?;
        return key_objects::key_object(&k, k.primary_version, KeyClass::Secret);
    }
    let sessions = &cx.core.pkcs11_sessions;
    let id = sessions.insert_secret(instance, keygen::session_secret(&new), secret)?;
    sessions.get(instance, id)
}

/// `C_UnwrapKey`: AES-KW/KWP with an appliance AES key, RSA-OAEP with an appliance RSA
/// encryption key; the secret, AES-256, becomes a new key.
pub struct UnwrapKey {
    pub instance: Instance,
    pub key: Handle,
    pub scheme: Decoded<WrapScheme>,
    pub wrapped: Vec<u8>,
    pub template: Decoded<NewSecret>,
}

/// A failed unwrap, as `C_UnwrapKey` names it: the blob is at fault, not a ciphertext.
fn unwrap_error(e: KeyError) -> EngineError {
    match e {
        KeyError::Invalid {
            code: "DECRYPTION_FAILED",
            message,
        } => refuse(code::WRAPPED_KEY_INVALID, message),
        KeyError::Invalid {
            code: "INVALID_CIPHERTEXT",
            message,
        }
        | KeyError::TooLarge(message) => refuse(code::WRAPPED_KEY_LEN_RANGE, message),
        other => other.into(),
    }
}

impl Op for UnwrapKey {
    type Output = Object;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Object> {
        let scheme = self.scheme?;
        let (new, k, version) = receiving(
            &cx,
            &self.instance,
            self.key,
            self.template,
            CKA_UNWRAP,
            "unwrap",
        )?;
        let fits = match scheme {
            WrapScheme::AesKeyWrap | WrapScheme::AesKeyWrapPad => k.algorithm == Algorithm::Aes256,
            WrapScheme::RsaOaep { .. } => is_rsa(k.algorithm),
        };
        if !fits {
            return Err(inconsistent());
        }
        let (secret, _) = cx
            .core
            .keys
            .unwrap_secret(&k, Some(version), scheme, self.wrapped, cx.core.root()?)
            .await
            .map_err(unwrap_error)?;
        if secret.len() != 32 {
            return Err(refuse(
                code::WRAPPED_KEY_INVALID,
                format!(
                    "the wrapped key is {} bytes: keys unwrapped here are AES-256 (32 bytes)",
                    secret.len()
                ),
            ));
        }
        keep_secret(&cx, &self.instance, new, secret).await
    }
}

/// `C_EncapsulateKey` (`CKM_ML_KEM`) to an appliance ML-KEM public key: the ciphertext,
/// and the new shared secret as an AES-256 key.
pub struct Encapsulate {
    pub instance: Instance,
    pub key: Handle,
    pub mechanism: Decoded<()>,
    pub template: Decoded<NewSecret>,
}

impl Op for Encapsulate {
    type Output = (Vec<u8>, Object);

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        self.mechanism?;
        let (new, k, version) = receiving(
            &cx,
            &self.instance,
            self.key,
            self.template,
            CKA_ENCAPSULATE,
            "encapsulate",
        )?;
        let (ciphertext, secret) = cx.core.keys.encapsulate(&k, Some(version))?;
        let key = keep_secret(&cx, &self.instance, new, secret).await?;
        Ok((ciphertext, key))
    }
}

/// `C_DecapsulateKey` (`CKM_ML_KEM`) with an appliance ML-KEM private key: the shared
/// secret as an AES-256 key.
pub struct Decapsulate {
    pub instance: Instance,
    pub key: Handle,
    pub mechanism: Decoded<()>,
    pub ciphertext: Vec<u8>,
    pub template: Decoded<NewSecret>,
}

impl Op for Decapsulate {
    type Output = Object;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Object> {
        self.mechanism?;
        let (new, k, version) = receiving(
            &cx,
            &self.instance,
            self.key,
            self.template,
            CKA_DECAPSULATE,
            "decapsulate",
        )?;
        let secret = cx
            .core
            .keys
            .decapsulate(&k, Some(version), self.ciphertext, cx.core.root()?)
            .await?;
        keep_secret(&cx, &self.instance, new, secret).await
    }
}
