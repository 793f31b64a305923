//! The in-memory view of a mount's keys: every key name, and for each key that has been
//! used, its parsed material. The whole name index is in memory, so telling that a key
//! does not exist never reads storage (which would make a missing key slower to answer
//! than a present one, and its absence observable).
//!
//! Material leaves memory when the cache is cleared (seal, unmount) or a key is deleted:
//! every secret inside a `Key` is zeroized when its last `Arc` is dropped.
//!
//! When storage raises that another writer changed keys of the mount, the changed keys
//! are parsed again on next use and the names listed again.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::key_policy::Key;

enum Slot {
    /// Exists in storage, not parsed yet (or changed there by another writer).
    Unloaded,
    Loaded(Arc<Key>),
}

pub(crate) enum Lookup {
    Missing,
    /// Load it from storage, then [`KeyCache::fill`] with this generation.
    Unloaded(u64),
    Loaded(Arc<Key>),
}

#[derive(Default)]
pub(crate) struct KeyCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    /// Whether `slots` holds every stored name: not until they have been listed, and no
    /// longer once another writer changed keys.
    indexed: bool,
    /// Bumped when another writer's change is raised, or the cache is cleared: a
    /// listing or a load begun before that is not kept.
    generation: u64,
}

impl KeyCache {
    #[cfg(test)]
    pub fn is_indexed(&self) -> bool {
        self.inner.read().indexed
    }

    /// The generation to hand to [`Self::index`] when the names must be listed.
    pub fn needs_index(&self) -> Option<u64> {
        let inner = self.inner.read();
        (!inner.indexed).then_some(inner.generation)
    }

    /// Installs the list of stored names, unless another caller already did or the
    /// names changed since `generation`. Parsed keys still listed are kept.
    pub fn index(&self, generation: u64, names: Vec<String>) {
        let mut inner = self.inner.write();
        if inner.indexed || inner.generation != generation {
            return;
        }
        let mut old = std::mem::take(&mut inner.slots);
        inner.slots = names
            .into_iter()
            .map(|n| {
                let slot = old.remove(&n).unwrap_or(Slot::Unloaded);
                (n, slot)
            })
            .collect();
        inner.indexed = true;
    }

    pub fn lookup(&self, name: &str) -> Lookup {
        let inner = self.inner.read();
        match inner.slots.get(name) {
            None => Lookup::Missing,
            Some(Slot::Unloaded) => Lookup::Unloaded(inner.generation),
            Some(Slot::Loaded(k)) => Lookup::Loaded(k.clone()),
        }
    }

    /// Stores a key just loaded from storage, unless a writer replaced or removed it in
    /// the meantime; returns what the cache holds for the name afterwards (the key
    /// itself, not kept, when another writer's change was raised since the lookup).
    pub fn fill(&self, generation: u64, key: Arc<Key>) -> Option<Arc<Key>> {
        let mut inner = self.inner.write();
        if inner.generation != generation {
            return Some(key);
        }
        let slot = inner.slots.get_mut(key.name())?;
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
        let mut inner = self.inner.write();
        if inner.indexed {
            inner
                .slots
                .insert(key.name().to_string(), Slot::Loaded(key));
        }
    }

    pub fn remove(&self, name: &str) {
        self.inner.write().slots.remove(name);
    }

    /// Another writer changed the keys whose names start with `names`: parse them again
    /// on next use, and list the names again (some may be new or gone).
    pub fn invalidate(&self, names: &str) {
        let mut inner = self.inner.write();
        for (name, slot) in inner.slots.iter_mut() {
            if name.starts_with(names) {
                *slot = Slot::Unloaded;
            }
        }
        inner.indexed = false;
        inner.generation = inner.generation.wrapping_add(1);
    }

    /// Every key name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.read().slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// Forgets everything; the keys' material is wiped as the last users let go.
    pub fn clear(&self) {
        let dropped = {
            let mut inner = self.inner.write();
            inner.indexed = false;
            inner.generation = inner.generation.wrapping_add(1);
            std::mem::take(&mut inner.slots)
        };
        drop(dropped);
    }
}
