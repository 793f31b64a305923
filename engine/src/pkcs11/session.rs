//! Session objects (`CKA_TOKEN` false): held in memory for the library instance that
//! made them, never stored, zeroized when they go (released, instance gone, restart).

use std::collections::{BTreeMap, HashMap};

use cryptoki_sys::CKA_VALUE;
use parking_lot::Mutex;
use zeroize::{Zeroize, Zeroizing};

use super::{code, refuse, Attr, Handle, Object};
use crate::error::{EngineError, Result};

/// Session objects one library instance may hold at once.
pub const MAX_PER_INSTANCE: usize = 256;
/// Session objects all instances together may hold.
pub const MAX_TOTAL: usize = 16 * 1024;

/// An object's attributes and, for a secret key, its value: never shown
/// (`CKA_VALUE` is sensitive), only used.
struct Held(Vec<Attr>, Option<Zeroizing<Vec<u8>>>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.zeroize();
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
        attributes: held.0.clone(),
        sensitive: if held.1.is_some() {
            vec![CKA_VALUE]
        } else {
            Vec::new()
        },
    }
}

fn gone(id: u64) -> EngineError {
    EngineError::NotFound(format!("no session object {id}"))
}

impl SessionObjects {
    pub(crate) fn insert(&self, instance: &[u8; 16], attributes: Vec<Attr>) -> Result<u64> {
        self.insert_held(instance, Held(attributes, None))
    }

    /// A secret key: its attributes, and its value, which is only ever used.
    pub(crate) fn insert_secret(
        &self,
        instance: &[u8; 16],
        attributes: Vec<Attr>,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<u64> {
        self.insert_held(instance, Held(attributes, Some(secret)))
    }

    fn insert_held(&self, instance: &[u8; 16], held: Held) -> Result<u64> {
        let mut inner = self.inner.lock();
        let full = inner.total >= MAX_TOTAL
            || inner
                .instances
                .get(instance)
                .is_some_and(|i| i.objects.len() >= MAX_PER_INSTANCE);
        if full {
            return Err(refuse(
                code::ACTION_PROHIBITED,
                format!(
                    "at most {MAX_PER_INSTANCE} session objects per application: \
                     destroy some, or store objects on the token"
                ),
            ));
        }
        inner.last += 1;
        let id = inner.last;
        inner
            .instances
            .entry(*instance)
            .or_default()
            .objects
            .insert(id, held);
        inner.total += 1;
        Ok(id)
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

    /// The object and the value of a secret key; `None` for other objects.
    pub(crate) fn secret(
        &self,
        instance: &[u8; 16],
        id: u64,
    ) -> Result<(Object, Option<Zeroizing<Vec<u8>>>)> {
        let inner = self.inner.lock();
        inner
            .instances
            .get(instance)
            .and_then(|i| i.objects.get(&id))
            .map(|h| (object(id, h), h.1.clone()))
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
        let secret = held.1.take();
        *held = Held(attributes, secret);
        Ok(object(id, held))
    }

    pub(crate) fn remove(&self, instance: &[u8; 16], ids: &[u64]) -> usize {
        let mut inner = self.inner.lock();
        let Some(slot) = inner.instances.get_mut(instance) else {
            return 0;
        };
        let removed = ids
            .iter()
            .filter(|id| slot.objects.remove(id).is_some())
            .count();
        if slot.objects.is_empty() {
            inner.instances.remove(instance);
        }
        inner.total -= removed;
        removed
    }

    pub(crate) fn forget(&self, instance: &[u8; 16]) {
        let mut inner = self.inner.lock();
        if let Some(slot) = inner.instances.remove(instance) {
            inner.total -= slot.objects.len();
        }
    }
}
