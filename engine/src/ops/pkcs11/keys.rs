//! Key management: generation inside the boundary, and wrapping (never of an appliance
//! key: none is extractable).

use super::{key, object, Instance};
use crate::error::Result;
use crate::managed_keys::ManagedKey;
use crate::ops::{Access, Context, Decoded, Op, Scope};
use crate::pkcs11::{code, refuse, Handle, NewKey};

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

/// `C_UnwrapKey`, `C_EncapsulateKey`, `C_DecapsulateKey`: the key they would make must be
/// a managed key, which the store cannot import yet. Answered once the caller and the
/// key are authorised, so the refusal says nothing to others.
pub struct NewSecretKey {
    pub instance: Instance,
    pub key: Handle,
    pub mechanism: Decoded<()>,
}

impl Op for NewSecretKey {
    type Output = std::convert::Infallible;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        self.mechanism?;
        object(&cx, &self.instance, self.key)?;
        Err(refuse(
            code::FUNCTION_NOT_SUPPORTED,
            "keys made from unwrapped or encapsulated secrets are not available yet",
        ))
    }
}
