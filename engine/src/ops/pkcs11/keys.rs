//! Key management: generation inside the boundary, wrapping (never of an appliance key:
//! none is extractable), and keys made from secrets received by unwrapping or by ML-KEM.

use std::sync::Arc;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::crypto::{inconsistent, is_rsa, not_permitted};
use super::{key, object, Instance};
use crate::compute;
use crate::error::{EngineError, Result};
use crate::managed_keys::scheme::{self, HeldKey, WrapScheme};
use crate::managed_keys::{material, Algorithm, KeyError, ManagedKey};
use crate::managed_keys::{KeyState, KeyVersion, Origin, VersionState};
use crate::ops::{Access, Context, Decoded, Op, Scope};
use crate::pkcs11::{code, keygen, keys as key_objects, refuse};
use crate::pkcs11::{Handle, KeyClass, NewKey, NewSecret, Object, Value};

/// `C_GenerateKey` and `C_GenerateKeyPair`: a new managed key with its first version
/// (`CKA_TOKEN` true), or a session key generated in the same boundary and held in
/// memory for the caller's library instance. The objects made: public then private, or
/// the secret key.
pub struct GenerateKey {
    pub instance: Instance,
    pub request: Decoded<NewKey>,
}

impl Op for GenerateKey {
    type Output = Vec<Object>;

    /// A session key changes nothing on the token: using keys is enough to make one.
    fn access(&self) -> Access {
        match &self.request {
            Ok(new) if !new.token => Access::Scope(Scope::Use),
            _ => Access::Scope(Scope::Write),
        }
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<Object>> {
        let new = self.request?;
        if !new.token {
            return generate_session_key(&cx, &self.instance, new).await;
        }
        let request = new.create;
        cx.check_key(Some(&request.name), None)?;
        let k = cx.core.keys.create(request, cx.core.root()?).await?;
        key_objects::classes(k.algorithm)
            .iter()
            .map(|class| key_objects::key_object(&k, k.primary_version, *class))
            .collect()
    }
}

/// A session key: generated as a managed key's first version would be (inside the HSM
/// where the boundary holds keys, the blob it wraps under its root key kept only here),
/// shown with that version's attributes, but not a token object and named as the
/// template says.
async fn generate_session_key(
    cx: &Context<'_>,
    instance: &Instance,
    new: NewKey,
) -> Result<Vec<Object>> {
    let algorithm = new.create.algorithm;
    let root = cx.core.root()?;
    let (stored, public, protection) =
        compute::run(move || material::generate(algorithm, false, root.as_ref())).await??;
    let loaded = material::load(algorithm, &stored, public.as_deref())?;
    let created = time::OffsetDateTime::now_utc();
    // Never stored: it only gives the objects a managed key's version would have.
    let shape = ManagedKey {
        id: uuid::Uuid::new_v4(),
        name: new.create.name,
        algorithm,
        usage: new.create.usage.unwrap_or(algorithm.usages()[0]),
        exportable: false,
        allow_unwrapped_export: false,
        labels: Default::default(),
        create_time: created,
        state: KeyState::Enabled,
        destroy_time: None,
        primary_version: 1,
        versions: vec![KeyVersion {
            version: 1,
            state: VersionState::Enabled,
            create_time: created,
            protection,
            origin: Origin::Generated,
            public_key: public.clone(),
        }],
    };
    let mut key = Some(HeldKey {
        algorithm,
        protection,
        loaded,
        public,
    });
    let mut objects = Vec::new();
    for class in key_objects::classes(algorithm) {
        let mut o = key_objects::key_object(&shape, 1, *class)?;
        for a in &mut o.attributes {
            a.value = match a.kind {
                CKA_TOKEN => Value::Bool(false),
                // Nothing outlives the session: the public half goes with it.
                CKA_DESTROYABLE => Value::Bool(true),
                CKA_LABEL => Value::Bytes(new.label.clone()),
                CKA_ID => Value::Bytes(new.id.clone()),
                _ => continue,
            };
        }
        let held = match class {
            KeyClass::Public => None,
            KeyClass::Private | KeyClass::Secret => key.take(),
        };
        objects.push((o, held));
    }
    let sessions = &cx.core.pkcs11_sessions;
    let ids = sessions.insert_key(instance, objects)?;
    ids.into_iter()
        .map(|id| sessions.get(instance, id))
        .collect()
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

/// The key a call making a key from a received secret uses.
enum Using {
    /// A managed key's version.
    Managed(ManagedKey, u32),
    /// A session key: its object, and the key itself for a private or secret one.
    Session(Object, Option<Arc<HeldKey>>),
}

/// What a call making a key from a received secret checks before it uses a key: its
/// template, the right to make a managed key if it asks for one (`keys:write`, beside the
/// `keys:use` every such call needs), and the key `handle` names (a managed key's
/// version or a session key), whose object's `flag` (`CKA_UNWRAP`, `CKA_ENCAPSULATE`,
/// `CKA_DECAPSULATE`) allows it.
fn receiving(
    cx: &Context<'_>,
    instance: &Instance,
    handle: Handle,
    template: Decoded<NewSecret>,
    flag: CK_ATTRIBUTE_TYPE,
    what: &str,
) -> Result<(NewSecret, Using)> {
    let new = template?;
    let write = Scope::Write.fact();
    if new.token && !cx.caller()?.has_scope(write) {
        return Err(EngineError::MissingScope(write));
    }
    let (o, using) = match handle {
        Handle::Key {
            key: id,
            version,
            class,
        } => {
            let k = key(cx, &id)?;
            let o = key_objects::key_object(&k, version, class)?;
            (o, Using::Managed(k, version))
        }
        Handle::Session(id) => {
            let (o, held) = cx.core.pkcs11_sessions.key(instance, id)?;
            (o.clone(), Using::Session(o, held))
        }
        Handle::Stored(_) => {
            object(cx, instance, handle)?;
            return Err(not_permitted(what));
        }
    };
    if !o.get_bool(flag) {
        return Err(not_permitted(what));
    }
    Ok((new, using))
}

/// The session key a call uses; `None` for a public key.
fn held(held: Option<Arc<HeldKey>>, what: &str) -> Result<Arc<HeldKey>> {
    held.ok_or_else(|| not_permitted(what))
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
    let id = sessions.insert_secret(
        instance,
        keygen::session_secret(&new),
        HeldKey::secret(secret),
    )?;
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
        let (new, using) = receiving(
            &cx,
            &self.instance,
            self.key,
            self.template,
            CKA_UNWRAP,
            "unwrap",
        )?;
        let algorithm = match &using {
            Using::Managed(k, _) => k.algorithm,
            Using::Session(_, h) => held(h.clone(), "unwrap")?.algorithm,
        };
        let fits = match scheme {
            WrapScheme::AesKeyWrap | WrapScheme::AesKeyWrapPad => algorithm == Algorithm::Aes256,
            WrapScheme::RsaOaep { .. } => is_rsa(algorithm),
        };
        if !fits {
            return Err(inconsistent());
        }
        let root = cx.core.root()?;
        let secret = match using {
            Using::Managed(k, version) => {
                cx.core
                    .keys
                    .unwrap_secret(&k, Some(version), scheme, self.wrapped, root)
                    .await
                    .map_err(unwrap_error)?
                    .0
            }
            Using::Session(_, h) => {
                let h = held(h, "unwrap")?;
                compute::run(move || h.unwrap(root.as_ref(), scheme, &self.wrapped))
                    .await?
                    .map_err(unwrap_error)?
            }
        };
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
        let (new, using) = receiving(
            &cx,
            &self.instance,
            self.key,
            self.template,
            CKA_ENCAPSULATE,
            "encapsulate",
        )?;
        let (ciphertext, secret) = match using {
            Using::Managed(k, version) => cx.core.keys.encapsulate(&k, Some(version))?,
            // A session ML-KEM public key: its CKA_VALUE is the encoded key.
            Using::Session(o, _) => scheme::encapsulate_public(
                o.get_bytes(CKA_VALUE)
                    .ok_or_else(|| not_permitted("encapsulate"))?,
            )?,
        };
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
        let (new, using) = receiving(
            &cx,
            &self.instance,
            self.key,
            self.template,
            CKA_DECAPSULATE,
            "decapsulate",
        )?;
        let secret = match using {
            Using::Managed(k, version) => {
                cx.core
                    .keys
                    .decapsulate(&k, Some(version), self.ciphertext, cx.core.root()?)
                    .await?
            }
            Using::Session(_, h) => {
                let h = held(h, "decapsulate")?;
                compute::run(move || h.decapsulate(&self.ciphertext)).await??
            }
        };
        keep_secret(&cx, &self.instance, new, secret).await
    }
}
