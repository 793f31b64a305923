//! Where each thing lives in FoundationDB's keyspace: tuple-encoded keys under the
//! configured prefix, so several appliances (tenants) share one cluster without their
//! keys interleaving (the tuple encoding of `"a"` is not a prefix of that of `"ab"`).
//!
//! Under `(prefix,)`:
//! - `("k", key)` → empty: the key exists (listing reads only these, never values);
//! - `("v", key, n)` → the `n`th chunk of the key's value (values over FoundationDB's
//!   100 kB limit span several chunks, read back with one range read);
//! - `("version",)` → a little-endian counter bumped (atomic add) by every commit: what
//!   other nodes watch;
//! - `("log",)` + versionstamp → which keys one commit changed, and by which node, so a
//!   watching node knows what to invalidate;
//! - `("commit", id)` → the outcome of one commit, so a retry after
//!   `commit_unknown_result` learns whether the first attempt landed.

use foundationdb_tuple::{pack, Subspace};

/// FoundationDB's value size limit; values are cut into chunks of at most this.
pub(super) const CHUNK_BYTES: usize = 100_000;
/// FoundationDB's key size limit.
pub(super) const KEY_LIMIT: usize = 10_000;

pub(super) struct Layout {
    keys: Subspace,
    values: Subspace,
    version: Vec<u8>,
    log: Subspace,
    commits: Subspace,
}

/// A key range `[begin, end)`.
pub(super) type Range = (Vec<u8>, Vec<u8>);

impl Layout {
    pub(super) fn new(prefix: &str) -> Self {
        let root = Subspace::from(prefix);
        Layout {
            keys: root.subspace(&"k"),
            values: root.subspace(&"v"),
            version: root.pack(&"version"),
            log: root.subspace(&"log"),
            commits: root.subspace(&"commit"),
        }
    }

    /// The index entry listing finds `key` by.
    pub(super) fn key(&self, key: &str) -> Vec<u8> {
        self.keys.pack(&key)
    }

    /// Every chunk of `key`'s value.
    pub(super) fn value_range(&self, key: &str) -> Range {
        self.values.subspace(&key).range()
    }

    pub(super) fn chunk(&self, key: &str, n: usize) -> Vec<u8> {
        self.values.pack(&(key, n as u64))
    }

    /// The chunk number of a key in [`Layout::value_range`].
    pub(super) fn chunk_number(&self, key: &str, chunk_key: &[u8]) -> Option<u64> {
        self.values
            .unpack::<(String, u64)>(chunk_key)
            .ok()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| n)
    }

    /// Index entries of every key that starts with `prefix`: its tuple encoding is
    /// `0x02`, the escaped bytes, `0x00`; escaping maps bytes one by one, so the
    /// encodings of the keys that start with `prefix` are exactly those that start
    /// with the escaped prefix, and none has `0xff` next (it is not UTF-8).
    pub(super) fn list_range(&self, prefix: &str) -> Range {
        let mut begin = self.keys.bytes().to_vec();
        let encoded = pack(&prefix);
        begin.extend_from_slice(&encoded[..encoded.len() - 1]);
        let mut end = begin.clone();
        end.push(0xff);
        (begin, end)
    }

    /// The storage key an index entry stands for.
    pub(super) fn listed_key(&self, index_key: &[u8]) -> Option<String> {
        self.keys.unpack::<String>(index_key).ok()
    }

    pub(super) fn version(&self) -> &[u8] {
        &self.version
    }

    /// The log's prefix, to which FoundationDB appends a commit's versionstamp.
    pub(super) fn log_prefix(&self) -> &[u8] {
        self.log.bytes()
    }

    /// Log entries committed after read version `version`.
    pub(super) fn log_after(&self, version: i64) -> Range {
        let mut begin = self.log.bytes().to_vec();
        begin.extend_from_slice(&(version.saturating_add(1)).to_be_bytes());
        let mut end = self.log.bytes().to_vec();
        end.push(0xff);
        (begin, end)
    }

    /// Log entries committed at or before version `version`.
    pub(super) fn log_until(&self, version: i64) -> Range {
        let begin = self.log.bytes().to_vec();
        let mut end = begin.clone();
        end.extend_from_slice(&(version.saturating_add(1)).to_be_bytes());
        (begin, end)
    }

    pub(super) fn commit_marker(&self, id: &[u8; 16]) -> Vec<u8> {
        self.commits.pack(&id.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_do_not_overlap_even_when_one_prefix_starts_the_other() {
        let a = Layout::new("a");
        let ab = Layout::new("ab");
        let (begin, end) = a.list_range("");
        for key in [ab.key("x"), ab.chunk("x", 0), ab.version().to_vec()] {
            assert!(!(begin <= key && key < end));
        }
    }

    #[test]
    fn a_listing_range_holds_exactly_the_keys_with_its_prefix() {
        let layout = Layout::new("t");
        let (begin, end) = layout.list_range("a/");
        let inside = |k: &str| {
            let key = layout.key(k);
            begin <= key && key < end
        };
        for k in ["a/", "a/b", "a/\u{0}", "a/\u{10ffff}"] {
            assert!(inside(k), "{k:?}");
        }
        for k in ["a", "a0", "b/", "", "a\u{0}/"] {
            assert!(!inside(k), "{k:?}");
        }
        assert_eq!(
            layout.listed_key(&layout.key("a/\u{0}b")).as_deref(),
            Some("a/\u{0}b")
        );
    }

    #[test]
    fn chunks_of_one_key_are_in_its_range_and_only_its() {
        let layout = Layout::new("t");
        let (begin, end) = layout.value_range("k");
        let chunk = layout.chunk("k", 7);
        assert!(begin <= chunk && chunk < end);
        assert_eq!(layout.chunk_number("k", &chunk), Some(7));
        let other = layout.chunk("k\u{0}", 0);
        assert!(!(begin <= other && other < end));
        assert_eq!(layout.chunk_number("k", &other), None);
    }
}
