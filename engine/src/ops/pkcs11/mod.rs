//! PKCS#11 operations: what each call of `libironseal_pkcs11.so` asks of the engine, one
//! file per chapter of the specification (objects, key management, cryptography). The
//! scopes are the key API's: finding and reading objects needs `keys:read`; generating
//! token keys, creating, changing and destroying objects `keys:write`; using keys, and
//! generating session keys (which change nothing on the token), `keys:use`. Digests and
//! random bytes need no token. An attenuated token's checks are tested on each managed
//! key an operation touches; objects that are not managed keys (certificates, data
//! objects, stored public keys) need a token whose attenuation holds without naming a
//! key.
//!
//! Session objects belong to the library instance the door names: no other instance can
//! see, use or release them.

pub mod crypto;
pub mod keys;
pub mod objects;
#[cfg(test)]
mod tests;

use super::Context;
use crate::error::Result;
use crate::managed_keys::ManagedKey;
use crate::pkcs11::{keys as key_objects, objects as stored, Handle, Object};

/// The library instance a call comes from (the owner of its session objects).
pub type Instance = [u8; 16];

/// The managed key `id` names, once the caller's attenuation allows this request on it.
fn key(cx: &Context<'_>, id: &uuid::Uuid) -> Result<ManagedKey> {
    let key = cx.core.keys.get(id)?;
    cx.check_key(Some(&key.name), Some(&key.id.to_string()))?;
    Ok(key)
}

/// Whether the caller may touch objects that are not managed keys.
fn others(cx: &Context<'_>) -> Result<()> {
    cx.check_key(None, None)
}

/// The object `handle` names, as the caller may see it.
fn object(cx: &Context<'_>, instance: &Instance, handle: Handle) -> Result<Object> {
    match handle {
        Handle::Key {
            key: id,
            version,
            class,
        } => key_objects::key_object(&key(cx, &id)?, version, class),
        Handle::Stored(id) => {
            others(cx)?;
            stored::get_stored(&cx.core.barrier, &id)
        }
        Handle::Session(id) => cx.core.pkcs11_sessions.get(instance, id),
    }
}
