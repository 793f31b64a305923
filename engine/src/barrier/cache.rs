//! Plaintext of recently read values, so a hot read skips the storage transaction and
//! the AEAD (together a quarter of a kv read's CPU). It lives only while the barrier is
//! unsealed, in the same locked memory as the keyring that could decrypt those values
//! anyway, and every entry is zeroized when it is dropped (evicted, invalidated or
//! cleared, once its last reader lets go).
//!
//! Coherence: every write goes through the barrier, which invalidates the paths it
//! touched after the storage commit, whether it succeeded or not (a failed commit may
//! still have reached the disk); the epoch guard of [`BoundedCache`] keeps a value read
//! just before a commit from being cached after that commit's invalidation. Writes by
//! another writer sharing the storage reach the cache as prefixes raised by the backend
//! ([`crate::storage::Invalidations`]), which drop every entry below them the same way.
//!
//! A path found empty is cached as such ([`Entry::Absent`]), under the same epoch guard
//! and invalidations as a value, so a write that reads a setting nobody set (a mount's
//! default configuration), or a path its existence check just found empty, does not ask
//! storage again. An absence costs its key and the entry overhead in the byte budget, and
//! absences together take at most an eighth of it, making room among themselves: reads of
//! paths that do not exist (made-up tokens, which anyone can send) cannot fill the cache
//! and have the values that are read flushed with them.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::bounded_cache::BoundedCache;

/// Values above this size are not cached: they are rare and would crowd out the rest.
const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Bytes held at most; a full cache is flushed whole.
const CAPACITY_BYTES: usize = 32 * 1024 * 1024;

pub type Plain = Arc<Zeroizing<Vec<u8>>>;

/// What storage holds at a path, as stored and as read. The ciphertext lets a
/// transaction take the cached value as its read condition (each ciphertext has a fresh
/// nonce, so it names one write) without reading storage again; an absent path is the
/// condition that it is still absent.
pub(super) enum Entry {
    Value { sealed: Vec<u8>, plain: Plain },
    Absent,
}

impl Entry {
    pub(super) fn size(&self) -> usize {
        match self {
            Entry::Value { sealed, plain } => sealed.len() + plain.len(),
            Entry::Absent => 0,
        }
    }

    pub(super) fn sealed(&self) -> Option<&[u8]> {
        match self {
            Entry::Value { sealed, .. } => Some(sealed),
            Entry::Absent => None,
        }
    }

    pub(super) fn plain(&self) -> Option<&Plain> {
        match self {
            Entry::Value { plain, .. } => Some(plain),
            Entry::Absent => None,
        }
    }
}

pub(super) type ReadCache = BoundedCache<Entry>;

pub(super) fn read_cache() -> ReadCache {
    BoundedCache::with_max_value(CAPACITY_BYTES, MAX_ENTRY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounded_cache::Cached;

    fn plain(v: &[u8]) -> Arc<Entry> {
        Arc::new(Entry::Value {
            sealed: Vec::new(),
            plain: Arc::new(Zeroizing::new(v.to_vec())),
        })
    }

    fn insert(c: &ReadCache, epoch: u64, path: &str, value: Arc<Entry>) {
        let len = value.size();
        c.insert(epoch, path, value, len);
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let c = read_cache();
        let Cached::Miss(epoch) = c.get("a") else {
            panic!("empty cache hit")
        };
        c.invalidate_all(["a"]);
        insert(&c, epoch, "a", plain(b"old"));
        assert!(matches!(c.get("a"), Cached::Miss(_)));
    }

    #[test]
    fn hits_until_invalidated() {
        let c = read_cache();
        let Cached::Miss(epoch) = c.get("a") else {
            panic!("empty cache hit")
        };
        insert(&c, epoch, "a", plain(b"v1"));
        assert!(
            matches!(c.get("a"), Cached::Hit(v) if v.plain().is_some_and(|p| p.as_slice() == b"v1"))
        );
        c.invalidate_all(["a"]);
        assert!(matches!(c.get("a"), Cached::Miss(_)));
    }

    #[test]
    fn stays_within_its_capacity() {
        let c = read_cache();
        let big = plain(&vec![7u8; MAX_ENTRY_BYTES]);
        for i in 0..(CAPACITY_BYTES / MAX_ENTRY_BYTES + 10) {
            let Cached::Miss(epoch) = c.get(&i.to_string()) else {
                panic!("unexpected hit")
            };
            insert(&c, epoch, &i.to_string(), big.clone());
            assert!(
                c.len() > 0,
                "a value of the largest cached size was refused"
            );
        }
        assert!(c.bytes() <= CAPACITY_BYTES);
        // One byte more is not cached.
        let Cached::Miss(epoch) = c.get("over") else {
            panic!("unexpected hit")
        };
        insert(&c, epoch, "over", plain(&vec![7u8; MAX_ENTRY_BYTES + 1]));
        assert!(matches!(c.get("over"), Cached::Miss(_)));
    }
}
