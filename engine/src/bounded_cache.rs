//! The in-memory cache of the barrier (plaintext), the token and the policy stores:
//! bounded in bytes (an estimate each caller gives per entry), and guarded by an epoch,
//! so a value read from storage just before a concurrent write, revoke or delete
//! committed can never be put back after that write cleared it.
//!
//! Use: `get` a key; on a miss it hands back the epoch; read storage; `insert` with that
//! epoch. Every writer calls `invalidate` (or `clear`) after its commit, which bumps the
//! epoch, so an insert that raced the write is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

/// What a map slot costs beyond the key and the value's own estimate (hash table slot,
/// `Arc` header, `String` header).
const ENTRY_OVERHEAD: usize = 96;

pub(crate) enum Cached<V> {
    Hit(Arc<V>),
    /// Not cached; the epoch to give back to [`BoundedCache::insert`].
    Miss(u64),
}

pub(crate) struct BoundedCache<V> {
    inner: RwLock<Inner<V>>,
    capacity: usize,
    /// Values whose own size is above this are not cached.
    max_value: usize,
}

struct Inner<V> {
    /// The value, its cost, and whether it came through [`BoundedCache::insert_if_room`].
    entries: HashMap<String, (Arc<V>, usize, bool)>,
    bytes: usize,
    /// What the entries from `insert_if_room` cost together.
    spare_bytes: usize,
    epoch: u64,
}

impl<V> Inner<V> {
    fn remove(&mut self, key: &str) {
        if let Some((_, cost, spare)) = self.entries.remove(key) {
            self.bytes -= cost;
            if spare {
                self.spare_bytes -= cost;
            }
        }
    }

    fn flush(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.spare_bytes = 0;
    }

    /// Drops the entries `drop(key, spare)` picks, keeping the byte counts exact.
    fn drop_where(&mut self, mut drop: impl FnMut(&str, bool) -> bool) {
        let (mut freed, mut spare_freed) = (0, 0);
        self.entries.retain(|key, (_, cost, spare)| {
            let gone = drop(key, *spare);
            if gone {
                freed += *cost;
                if *spare {
                    spare_freed += *cost;
                }
            }
            !gone
        });
        self.bytes -= freed;
        self.spare_bytes -= spare_freed;
    }
}

impl<V> BoundedCache<V> {
    pub fn new(capacity_bytes: usize) -> Self {
        Self::with_max_value(capacity_bytes, usize::MAX)
    }

    /// A cache that also refuses values larger than `max_value_bytes`.
    pub fn with_max_value(capacity_bytes: usize, max_value_bytes: usize) -> Self {
        BoundedCache {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
                spare_bytes: 0,
                epoch: 0,
            }),
            capacity: capacity_bytes,
            max_value: max_value_bytes,
        }
    }

    pub fn get(&self, key: &str) -> Cached<V> {
        let inner = self.inner.read();
        match inner.entries.get(key) {
            Some((v, _, _)) => Cached::Hit(v.clone()),
            None => Cached::Miss(inner.epoch),
        }
    }

    /// Caches `value` if no write finished since `epoch` was handed out. `size` is the
    /// caller's estimate of the value's heap bytes. A value larger than the cache's
    /// `max_value`, or costing more than an eighth of the capacity, is not cached; a full
    /// cache is flushed whole, which keeps the bound strict without bookkeeping on the
    /// read path.
    pub fn insert(&self, epoch: u64, key: &str, value: Arc<V>, size: usize) {
        let Some(cost) = self.admitted_cost(key, size) else {
            return;
        };
        let mut inner = self.inner.write();
        if inner.epoch != epoch {
            return;
        }
        inner.remove(key);
        if inner.bytes + cost > self.capacity {
            inner.flush();
        }
        inner.bytes += cost;
        inner.entries.insert(key.to_string(), (value, cost, false));
    }

    /// Like [`BoundedCache::insert`], for entries anyone can make many of (the barrier's
    /// absent paths, which made-up tokens create): together they take at most an eighth
    /// of the capacity, and when that is full they are dropped among themselves; they
    /// never flush the rest. In a full cache they are not cached.
    pub fn insert_if_room(&self, epoch: u64, key: &str, value: Arc<V>, size: usize) {
        let Some(cost) = self.admitted_cost(key, size) else {
            return;
        };
        let mut inner = self.inner.write();
        if inner.epoch != epoch {
            return;
        }
        inner.remove(key);
        if inner.spare_bytes + cost > self.capacity / 8 {
            inner.drop_where(|_, spare| spare);
        }
        if inner.bytes + cost > self.capacity {
            return;
        }
        inner.bytes += cost;
        inner.spare_bytes += cost;
        inner.entries.insert(key.to_string(), (value, cost, true));
    }

    /// Drops one key; called after every write that changes or removes it.
    pub fn invalidate(&self, key: &str) {
        self.invalidate_all([key]);
    }

    /// Drops the keys one commit wrote, with one epoch bump.
    pub fn invalidate_all<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.write();
        for key in keys {
            inner.remove(key);
        }
        inner.epoch = inner.epoch.wrapping_add(1);
    }

    /// Drops every key that starts with `prefix` (all of them for ""), with one epoch
    /// bump: another writer changed keys below it.
    pub fn invalidate_prefix(&self, prefix: &str) {
        let mut inner = self.inner.write();
        inner.drop_where(|key, _| key.starts_with(prefix));
        inner.epoch = inner.epoch.wrapping_add(1);
    }

    /// What an entry costs, if the cache takes it at all: no value above `max_value`, and
    /// none costing more than an eighth of the capacity.
    fn admitted_cost(&self, key: &str, size: usize) -> Option<usize> {
        let cost = size
            .saturating_add(key.len())
            .saturating_add(ENTRY_OVERHEAD);
        (size <= self.max_value && cost <= self.capacity / 8).then_some(cost)
    }

    pub fn clear(&self) {
        let mut inner = self.inner.write();
        inner.flush();
        inner.epoch = inner.epoch.wrapping_add(1);
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner.read().bytes
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss(c: &BoundedCache<u32>, key: &str) -> u64 {
        match c.get(key) {
            Cached::Miss(e) => e,
            Cached::Hit(_) => panic!("unexpected hit for {key}"),
        }
    }

    #[test]
    fn an_insert_that_raced_an_invalidation_is_dropped() {
        let c = BoundedCache::new(1 << 20);
        let epoch = miss(&c, "a");
        // A revoke commits and invalidates between the reader's storage read and insert.
        c.invalidate("a");
        c.insert(epoch, "a", Arc::new(1), 4);
        assert!(matches!(c.get("a"), Cached::Miss(_)));
        // The same race against a clear of the whole cache.
        let epoch = miss(&c, "b");
        c.clear();
        c.insert(epoch, "b", Arc::new(2), 4);
        assert!(matches!(c.get("b"), Cached::Miss(_)));
        // Without a write in between the value is kept.
        let epoch = miss(&c, "c");
        c.insert(epoch, "c", Arc::new(3), 4);
        assert!(matches!(c.get("c"), Cached::Hit(v) if *v == 3));
    }

    #[test]
    fn a_prefix_drops_the_keys_below_it_and_races_with_it_lose() {
        let c = BoundedCache::new(1 << 20);
        for key in ["a/1", "a/2", "b/1"] {
            let epoch = miss(&c, key);
            c.insert(epoch, key, Arc::new(1), 4);
        }
        let epoch = miss(&c, "a/3");
        c.invalidate_prefix("a/");
        assert!(matches!(c.get("a/1"), Cached::Miss(_)));
        assert!(matches!(c.get("a/2"), Cached::Miss(_)));
        assert!(matches!(c.get("b/1"), Cached::Hit(_)));
        c.insert(epoch, "a/3", Arc::new(3), 4);
        assert!(matches!(c.get("a/3"), Cached::Miss(_)));
        c.invalidate_prefix("");
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn entries_anyone_can_make_never_flush_the_rest() {
        let capacity = 64 * 1024;
        let c = BoundedCache::new(capacity);
        let epoch = miss(&c, "hot");
        c.insert(epoch, "hot", Arc::new(1), 1000);
        // A flood of made-up keys: they take their eighth, then make room among themselves.
        for i in 0..10_000u32 {
            let key = format!("made-up-{i}");
            let epoch = miss(&c, &key);
            c.insert_if_room(epoch, &key, Arc::new(0), 0);
            assert!(c.inner.read().spare_bytes <= capacity / 8);
        }
        assert!(matches!(c.get("hot"), Cached::Hit(v) if *v == 1));
        let spare = c.inner.read().spare_bytes;
        assert!(spare > 0 && spare <= capacity / 8, "{spare}");
        assert!(matches!(c.get("made-up-0"), Cached::Miss(_)));
        assert!(matches!(c.get("made-up-9999"), Cached::Hit(_)));
        // Their budget is given back as they go, whichever way they go.
        c.invalidate("made-up-9999");
        c.invalidate_prefix("made-up-99");
        let expected: usize = c
            .inner
            .read()
            .entries
            .values()
            .filter(|(_, _, spare)| *spare)
            .map(|(_, cost, _)| cost)
            .sum();
        assert_eq!(c.inner.read().spare_bytes, expected);
        // A full cache still takes ordinary entries, flushing, and the count starts over.
        for i in 0..200u32 {
            let key = format!("value-{i}");
            let epoch = miss(&c, &key);
            c.insert(epoch, &key, Arc::new(i), 1000);
            assert!(c.bytes() <= capacity);
        }
        assert!(c.inner.read().spare_bytes <= c.bytes());
        c.clear();
        assert_eq!((c.len(), c.bytes(), c.inner.read().spare_bytes), (0, 0, 0));
    }

    #[test]
    fn stays_within_its_byte_capacity() {
        let capacity = 64 * 1024;
        let c = BoundedCache::new(capacity);
        for i in 0..10_000u32 {
            let key = format!("key-{i}");
            let epoch = miss(&c, &key);
            c.insert(epoch, &key, Arc::new(i), 500);
            assert!(c.bytes() <= capacity);
        }
        assert!(c.len() > 0);
        // Too large for the cache at all: never stored.
        let epoch = miss(&c, "big");
        c.insert(epoch, "big", Arc::new(0), capacity);
        assert!(matches!(c.get("big"), Cached::Miss(_)));
    }
}
