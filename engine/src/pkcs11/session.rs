//! Session objects (`CKA_TOKEN` false): held in memory for the library instance that
//! made them, never stored, zeroized when they go (released, instance gone, restart).
//! Private and secret session keys hold their [`HeldKey`], which is only ever used.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cryptoki_sys::{CKA_VALUE, CK_ATTRIBUTE_TYPE};
use parking_lot::Mutex;
use zeroize::Zeroize;

use super::{code, refuse, Attr, Handle, Object};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::managed_keys::material::Loaded;
use crate::managed_keys::scheme::HeldKey;

/// Session objects one library instance may hold at once.
pub const MAX_PER_INSTANCE: usize = 256;
/// Session objects all instances together may hold.
pub const MAX_TOTAL: usize = 16 * 1024;

/// An object's attributes and, for a private or secret key, the key: never shown, only
/// used.
struct Held {
    attributes: Vec<Attr>,
    key: Option<Arc<HeldKey>>,
    /// Attributes the object has but never reveals.
    sensitive: Vec<CK_ATTRIBUTE_TYPE>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.attributes.zeroize();
    }
}

#[derive(Default)]
struct Instance {
    objects: BTreeMap<u64, Held>,
}

#[derive(Default)]
struct Inner {
    instances: HashMap<[u8; 16], Instance>,
    total: usize,
    /// The last id handed out: ids are never reused while the daemon runs, so a library
    /// that still maps a released or forgotten id never reaches another object with it.
    last: u64,
}

#[derive(Default)]
pub(crate) struct SessionObjects {
    inner: Mutex<Inner>,
}

fn object(id: u64, held: &Held) -> Object {
    Object {
        handle: Handle::Session(id),
        attributes: held.attributes.clone(),
        sensitive: held.sensitive.clone(),
    }
}

fn gone(id: u64) -> EngineError {
    EngineError::NotFound(format!("no session object {id}"))
}

impl SessionObjects {
    pub(crate) fn insert(&self, instance: &[u8; 16], attributes: Vec<Attr>) -> Result<u64> {
        self.insert_all(
            instance,
            vec![Held {
                attributes,
                key: None,
                sensitive: Vec::new(),
            }],
        )
        .map(|ids| ids[0])
    }

    /// A secret key made from a received secret: its attributes, and its value, which
    /// is only ever used (`CKA_VALUE` is sensitive).
    pub(crate) fn insert_secret(
        &self,
        instance: &[u8; 16],
        attributes: Vec<Attr>,
        key: HeldKey,
    ) -> Result<u64> {
        self.insert_all(
            instance,
            vec![Held {
                attributes,
                key: Some(Arc::new(key)),
                sensitive: vec![CKA_VALUE],
            }],
        )
        .map(|ids| ids[0])
    }

    /// The objects of a generated key, all or none: each [`Object`]'s attributes and
    /// sensitive attributes (its handle is ignored), and for the private or secret one
    /// the key.
    pub(crate) fn insert_key(
        &self,
        instance: &[u8; 16],
        objects: Vec<(Object, Option<HeldKey>)>,
    ) -> Result<Vec<u64>> {
        let held = objects
            .into_iter()
            .map(|(o, key)| Held {
                attributes: o.attributes,
                key: key.map(Arc::new),
                sensitive: o.sensitive,
            })
            .collect();
        self.insert_all(instance, held)
    }

    fn insert_all(&self, instance: &[u8; 16], held: Vec<Held>) -> Result<Vec<u64>> {
        let mut inner = self.inner.lock();
        let full = inner.total + held.len() > MAX_TOTAL
            || inner
                .instances
                .get(instance)
                .is_some_and(|i| i.objects.len() + held.len() > MAX_PER_INSTANCE);
        if full {
            return Err(refuse(
                code::ACTION_PROHIBITED,
                format!(
                    "at most {MAX_PER_INSTANCE} session objects per application: \
                     destroy some, or store objects on the token"
                ),
            ));
        }
        let mut ids = Vec::with_capacity(held.len());
        for h in held {
            inner.last += 1;
            let id = inner.last;
            inner
                .instances
                .entry(*instance)
                .or_default()
                .objects
                .insert(id, h);
            inner.total += 1;
            ids.push(id);
        }
        Ok(ids)
    }

    pub(crate) fn get(&self, instance: &[u8; 16], id: u64) -> Result<Object> {
        let inner = self.inner.lock();
        inner
            .instances
            .get(instance)
            .and_then(|i| i.objects.get(&id))
            .map(|h| object(id, h))
            .ok_or_else(|| gone(id))
    }

    /// The object and, for a private or secret key, the key; `None` for other objects.
    pub(crate) fn key(
        &self,
        instance: &[u8; 16],
        id: u64,
    ) -> Result<(Object, Option<Arc<HeldKey>>)> {
        let inner = self.inner.lock();
        inner
            .instances
            .get(instance)
            .and_then(|i| i.objects.get(&id))
            .map(|h| (object(id, h), h.key.clone()))
            .ok_or_else(|| gone(id))
    }

    pub(crate) fn list(&self, instance: &[u8; 16]) -> Vec<Object> {
        let inner = self.inner.lock();
        inner
            .instances
            .get(instance)
            .map(|i| i.objects.iter().map(|(id, h)| object(*id, h)).collect())
            .unwrap_or_default()
    }

    pub(crate) fn replace(
        &self,
        instance: &[u8; 16],
        id: u64,
        attributes: Vec<Attr>,
    ) -> Result<Object> {
        let mut inner = self.inner.lock();
        let held = inner
            .instances
            .get_mut(instance)
            .and_then(|i| i.objects.get_mut(&id))
            .ok_or_else(|| gone(id))?;
        held.attributes.zeroize();
        held.attributes = attributes;
        Ok(object(id, held))
    }
    /// Removes the objects `ids` names; how many there were, and the keys they held
    /// (for the boundary to forget).
    pub(crate) fn remove(&self, instance: &[u8; 16], ids: &[u64]) -> (usize, Vec<Arc<HeldKey>>) {
        let mut inner = self.inner.lock();
        let Some(slot) = inner.instances.get_mut(instance) else {
            return (0, Vec::new());
        };
        let removed: Vec<Held> = ids
            .iter()
            .filter_map(|id| slot.objects.remove(id))
            .collect();
        if slot.objects.is_empty() {
            inner.instances.remove(instance);
        }
        inner.total -= removed.len();
        let count = removed.len();
        (count, keys(removed))
    }

    /// Removes every object of `instance`; the keys they held.
    pub(crate) fn forget(&self, instance: &[u8; 16]) -> Vec<Arc<HeldKey>> {
        let mut inner = self.inner.lock();
        let Some(slot) = inner.instances.remove(instance) else {
            return Vec::new();
        };
        inner.total -= slot.objects.len();
        keys(slot.objects.into_values())
    }
}

fn keys(held: impl IntoIterator<Item = Held>) -> Vec<Arc<HeldKey>> {
    held.into_iter().filter_map(|mut h| h.key.take()).collect()
}

impl Core {
    /// Drops the session objects of a library instance that is gone.
    pub fn pkcs11_forget_instance(&self, instance: &[u8; 16]) {
        let keys = self.pkcs11_sessions.forget(instance);
        self.pkcs11_let_go(keys);
    }

    /// Drops the session objects `ids` of `instance`; how many there were.
    pub(crate) fn pkcs11_release(&self, instance: &[u8; 16], ids: &[u64]) -> usize {
        let (count, keys) = self.pkcs11_sessions.remove(instance, ids);
        self.pkcs11_let_go(keys);
        count
    }

    /// Has the boundary forget its unwrapped copies of session keys that went: a key the
    /// HSM generated stays in the HSM only as long as its session object.
    fn pkcs11_let_go(&self, keys: Vec<Arc<HeldKey>>) {
        let Ok(root) = self.root() else {
            return;
        };
        for key in keys {
            if let Loaded::Hsm(wrapped) = &key.loaded {
                root.forget_key(wrapped);
            }
        }
    }
}
