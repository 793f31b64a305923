//! Plaintext of recently read values, so a hot read skips the storage transaction and
//! the AEAD (together a quarter of a kv read's CPU). It lives only while the barrier is
//! unsealed, in the same locked memory as the keyring that could decrypt those values
//! anyway, and every entry is zeroized when it is dropped.
//!
//! Coherence: every write goes through the barrier, which invalidates the paths it
//! touched after the storage commit and bumps `epoch`. A reader notes the epoch before
//! it reads storage and inserts what it read only if no write finished in between, so a
//! value read just before a commit can never be cached after that commit's
//! invalidation.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use zeroize::Zeroizing;

/// Values above this size are not cached: they are rare and would crowd out the rest.
const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Plaintext bytes held at most; a full cache is flushed whole, which is cheap and keeps
/// the bound strict without bookkeeping on the read path.
const CAPACITY_BYTES: usize = 32 * 1024 * 1024;

pub type Plain = Arc<Zeroizing<Vec<u8>>>;

#[derive(Default)]
pub(super) struct ReadCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Plain>,
    bytes: usize,
    epoch: u64,
}

/// What a lookup found: the value, or the epoch to hand back to [`ReadCache::insert`].
pub(super) enum Lookup {
    Hit(Plain),
    Miss(u64),
}

impl ReadCache {
    pub fn lookup(&self, path: &str) -> Lookup {
        let inner = self.inner.read();
        match inner.entries.get(path) {
            Some(v) => Lookup::Hit(v.clone()),
            None => Lookup::Miss(inner.epoch),
        }
    }

    pub fn insert(&self, epoch: u64, path: &str, value: &Plain) {
        if value.len() > MAX_ENTRY_BYTES {
            return;
        }
        let mut inner = self.inner.write();
        if inner.epoch != epoch {
            return;
        }
        if inner.bytes + value.len() > CAPACITY_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += value.len();
        if let Some(old) = inner.entries.insert(path.to_string(), value.clone()) {
            inner.bytes -= old.len();
        }
    }

    /// Called after every commit, whether it succeeded or not: a failed commit may still
    /// have reached the disk.
    pub fn invalidate<'a>(&self, paths: impl Iterator<Item = &'a str>) {
        let mut inner = self.inner.write();
        for path in paths {
            if let Some(old) = inner.entries.remove(path) {
                inner.bytes -= old.len();
            }
        }
        inner.epoch = inner.epoch.wrapping_add(1);
    }

    pub fn clear(&self) {
        let mut inner = self.inner.write();
        inner.entries.clear();
        inner.bytes = 0;
        inner.epoch = inner.epoch.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &[u8]) -> Plain {
        Arc::new(Zeroizing::new(v.to_vec()))
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let c = ReadCache::default();
        let Lookup::Miss(epoch) = c.lookup("a") else {
            panic!("empty cache hit")
        };
        c.invalidate(["a"].into_iter());
        c.insert(epoch, "a", &plain(b"old"));
        assert!(matches!(c.lookup("a"), Lookup::Miss(_)));
    }

    #[test]
    fn hits_until_invalidated() {
        let c = ReadCache::default();
        let Lookup::Miss(epoch) = c.lookup("a") else {
            panic!("empty cache hit")
        };
        c.insert(epoch, "a", &plain(b"v1"));
        assert!(matches!(c.lookup("a"), Lookup::Hit(v) if v.as_slice() == b"v1"));
        c.invalidate(["a"].into_iter());
        assert!(matches!(c.lookup("a"), Lookup::Miss(_)));
    }

    #[test]
    fn stays_within_its_capacity() {
        let c = ReadCache::default();
        let big = plain(&vec![7u8; MAX_ENTRY_BYTES]);
        for i in 0..(CAPACITY_BYTES / MAX_ENTRY_BYTES + 10) {
            let Lookup::Miss(epoch) = c.lookup(&i.to_string()) else {
                panic!("unexpected hit")
            };
            c.insert(epoch, &i.to_string(), &big);
        }
        assert!(c.inner.read().bytes <= CAPACITY_BYTES);
    }
}
