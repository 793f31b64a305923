//! The in-memory view of a mount's keys: every key name, and for each key that has been
//! used, its parsed material. The whole name index is in memory, so telling that a key
//! does not exist never reads storage (which would make a missing key slower to answer
//! than a present one, and its absence observable).
//!
//! Material leaves memory when the cache is cleared (seal, unmount) or a key is deleted:
//! every secret inside a `Key` is zeroized when its last `Arc` is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::key_policy::Key;

enum Slot {
    /// Exists in storage, not parsed yet.
    Unloaded,
    Loaded(Arc<Key>),
}

pub(crate) enum Lookup {
    Missing,
    Unloaded,
    Loaded(Arc<Key>),
}

#[derive(Default)]
pub(crate) struct KeyCache {
    /// `None` until the names have been listed from storage.
    slots: RwLock<Option<HashMap<String, Slot>>>,
}

impl KeyCache {
    pub fn is_indexed(&self) -> bool {
        self.slots.read().is_some()
    }

    /// Installs the list of stored names, unless another caller already did.
    pub fn index(&self, names: Vec<String>) {
        let mut slots = self.slots.write();
        if slots.is_none() {
            *slots = Some(names.into_iter().map(|n| (n, Slot::Unloaded)).collect());
        }
    }

    pub fn lookup(&self, name: &str) -> Lookup {
        match self.slots.read().as_ref().and_then(|s| s.get(name)) {
            None => Lookup::Missing,
            Some(Slot::Unloaded) => Lookup::Unloaded,
            Some(Slot::Loaded(k)) => Lookup::Loaded(k.clone()),
        }
    }

    /// Stores a key just loaded from storage, unless a writer replaced or removed it in
    /// the meantime; returns what the cache holds for the name afterwards.
    pub fn fill(&self, key: Arc<Key>) -> Option<Arc<Key>> {
        let mut guard = self.slots.write();
        let slots = guard.as_mut()?;
        let slot = slots.get_mut(key.name())?;
        match slot {
            Slot::Loaded(current) => Some(current.clone()),
            Slot::Unloaded => {
                *slot = Slot::Loaded(key.clone());
                Some(key)
            }
        }
    }

    /// Puts a key written by this engine (created, rotated, reconfigured).
    pub fn put(&self, key: Arc<Key>) {
        if let Some(slots) = self.slots.write().as_mut() {
            slots.insert(key.name().to_string(), Slot::Loaded(key));
        }
    }

    pub fn remove(&self, name: &str) {
        if let Some(slots) = self.slots.write().as_mut() {
            slots.remove(name);
        }
    }

    /// Every key name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots
            .read()
            .as_ref()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Forgets everything; the keys' material is wiped as the last users let go.
    pub fn clear(&self) {
        let dropped = self.slots.write().take();
        drop(dropped);
    }
}
