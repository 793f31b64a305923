//! Managed-key operations (the key API): create, list, get, rotate, enable/disable a
//! version, schedule and cancel destruction, sign, verify, encrypt, decrypt. Each needs a
//! scope; an attenuated token's own checks are tested once the operation knows the key.
//!
//! Errors come in the order the key API has always reported them: the request's fields
//! that do not depend on the key, then the key (its id, its existence, the attenuation),
//! then the fields of the payload.

#[cfg(test)]
mod tests;

use std::cell::Cell;

use zeroize::Zeroizing;

use super::{Access, Context, Decoded, Op, Scope};
use crate::error::Result;
use crate::managed_keys::{
    CreateKey, KeyPage, KeyStore, ListKeys, ManagedKey, VersionState, DEFAULT_PENDING_WINDOW,
};

/// The key `id` names, once the caller's attenuation allows this request on it.
pub(super) fn load(cx: &Context<'_>, id: &str) -> Result<ManagedKey> {
    let uuid = KeyStore::parse_id(id)?;
    let key = cx.core.keys.get(&uuid)?;
    check(cx, &key)?;
    Ok(key)
}

fn check(cx: &Context<'_>, key: &ManagedKey) -> Result<()> {
    cx.check_key(Some(&key.name), Some(&key.id.to_string()))
}

/// A new key with its first version.
pub struct KeyCreate {
    pub request: Decoded<CreateKey>,
}

impl Op for KeyCreate {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        let request = self.request?;
        cx.check_key(Some(&request.name), None)?;
        Ok(cx.core.keys.create(request, cx.core.root()?).await?)
    }
}

/// A page of the keys the caller may see.
pub struct KeyList {
    pub query: Decoded<ListKeys>,
}

impl Op for KeyList {
    type Output = KeyPage;

    fn access(&self) -> Access {
        Access::Scope(Scope::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<KeyPage> {
        let query = self.query?;
        // A token whose attenuation does not hold for the listing as such (a key-name
        // restriction) sees the keys it may name; one that holds for none of them
        // (expired) is refused.
        let unrestricted = cx.check_key(None, None);
        let denied = Cell::new(0usize);
        let page = cx.core.keys.list(&query, |key| {
            let visible = unrestricted.is_ok() || check(&cx, key).is_ok();
            if !visible {
                denied.set(denied.get() + 1);
            }
            visible
        })?;
        match unrestricted {
            Err(e) if page.keys.is_empty() && denied.get() > 0 => Err(e),
            _ => Ok(page),
        }
    }
}

pub struct KeyGet {
    pub key: String,
}

impl Op for KeyGet {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        load(&cx, &self.key)
    }
}

/// Adds a version and makes it the primary.
pub struct KeyRotate {
    pub key: String,
}

impl Op for KeyRotate {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        let key = load(&cx, &self.key)?;
        let operator = cx.caller()?.entry.display_name.clone();
        Ok(cx
            .core
            .keys
            .rotate(&key.id, cx.core.root()?, &operator)
            .await?)
    }
}

/// Enables or disables one version.
pub struct KeyVersionState {
    pub key: String,
    pub version: Decoded<u32>,
    pub state: VersionState,
}

impl Op for KeyVersionState {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        let version = self.version?;
        let key = load(&cx, &self.key)?;
        Ok(cx
            .core
            .keys
            .set_version_state(&key.id, version, self.state)
            .await?)
    }
}

/// Schedules the key's destruction once its pending window (default: a week) has
/// passed.
pub struct KeyScheduleDestruction {
    pub key: String,
    pub pending_window_seconds: Decoded<Option<u64>>,
}

impl Op for KeyScheduleDestruction {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        let window = self
            .pending_window_seconds?
            .unwrap_or(DEFAULT_PENDING_WINDOW);
        let key = load(&cx, &self.key)?;
        Ok(cx.core.keys.schedule_destruction(&key.id, window).await?)
    }
}

pub struct KeyCancelDestruction {
    pub key: String,
}

impl Op for KeyCancelDestruction {
    type Output = ManagedKey;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ManagedKey> {
        let key = load(&cx, &self.key)?;
        Ok(cx.core.keys.cancel_destruction(&key.id).await?)
    }
}

/// What a cryptographic operation answered, with the key and version it used.
pub struct Used<T> {
    pub key_id: uuid::Uuid,
    pub version: u32,
    pub value: T,
}

/// Signs `message` with a version (default: the primary).
pub struct KeySign {
    pub key: String,
    pub version: Decoded<Option<u32>>,
    pub message: Decoded<Vec<u8>>,
}

impl Op for KeySign {
    type Output = Used<Vec<u8>>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        let version = self.version?;
        let key = load(&cx, &self.key)?;
        let message = self.message?;
        let out = cx
            .core
            .keys
            .sign(&key, version, message, cx.core.root()?)
            .await?;
        Ok(Used {
            key_id: key.id,
            version: out.version,
            value: out.data,
        })
    }
}

/// Whether `signature` is a version's signature of `message`.
pub struct KeyVerify {
    pub key: String,
    pub version: Decoded<Option<u32>>,
    pub message: Decoded<Vec<u8>>,
    pub signature: Decoded<Vec<u8>>,
}

impl Op for KeyVerify {
    type Output = Used<bool>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        let version = self.version?;
        let key = load(&cx, &self.key)?;
        let message = self.message?;
        let signature = self.signature?;
        let (valid, version) = cx
            .core
            .keys
            .verify(&key, version, message, signature)
            .await?;
        Ok(Used {
            key_id: key.id,
            version,
            value: valid,
        })
    }
}

pub struct KeyEncrypt {
    pub key: String,
    pub version: Decoded<Option<u32>>,
    pub plaintext: Decoded<Zeroizing<Vec<u8>>>,
}

impl Op for KeyEncrypt {
    type Output = Used<Vec<u8>>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        let version = self.version?;
        let key = load(&cx, &self.key)?;
        let plaintext = self.plaintext?;
        let out = cx
            .core
            .keys
            .encrypt(&key, version, plaintext, cx.core.root()?)
            .await?;
        Ok(Used {
            key_id: key.id,
            version: out.version,
            value: out.data,
        })
    }
}

pub struct KeyDecrypt {
    pub key: String,
    pub version: Decoded<Option<u32>>,
    pub ciphertext: Decoded<Vec<u8>>,
}

impl Op for KeyDecrypt {
    type Output = Used<Zeroizing<Vec<u8>>>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Use)
    }

    async fn run(self, cx: Context<'_>) -> Result<Self::Output> {
        let version = self.version?;
        let key = load(&cx, &self.key)?;
        let ciphertext = self.ciphertext?;
        let (plaintext, version) = cx
            .core
            .keys
            .decrypt(&key, version, ciphertext, cx.core.root()?)
            .await?;
        Ok(Used {
            key_id: key.id,
            version,
            value: plaintext,
        })
    }
}
