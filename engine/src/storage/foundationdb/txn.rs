//! The part of FoundationDB's transaction API the backend uses, as a trait: the product
//! implements it with the `foundationdb` crate, the tests with a model of FoundationDB's
//! semantics, so the backend's algorithms are tested without a server.

use std::future::Future;
use std::pin::Pin;

use super::layout::Range;

/// A key and its value, as a range read returns them.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

/// Resolves when the watched key's value changes (or with an error: watch again).
pub(crate) type Watch = Pin<Box<dyn Future<Output = Result<(), TxError>> + Send>>;

/// A FoundationDB error: its code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxError {
    pub code: i32,
    pub message: &'static str,
}

impl TxError {
    /// `commit_unknown_result` and `cluster_version_changed`: the commit may have landed.
    pub(crate) fn is_maybe_committed(&self) -> bool {
        matches!(self.code, 1021 | 1039)
    }
}

pub(crate) trait Database: Send + Sync + 'static {
    type Tx: Transaction;

    fn begin(&self) -> Result<Self::Tx, TxError>;
}

/// One optimistic transaction. Reads that are not `snapshot` add read conflict ranges,
/// writes add write conflict ranges; the commit fails with `not_committed` (1020) when a
/// transaction committed since this one's read version wrote what this one read.
pub(crate) trait Transaction: Sized + Send {
    fn get(&mut self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>, TxError>;

    /// Every pair in each range (read concurrently: one round trip for all of them).
    fn get_ranges(
        &mut self,
        ranges: &[Range],
        snapshot: bool,
    ) -> Result<Vec<Vec<KeyValue>>, TxError>;

    fn read_version(&mut self) -> Result<i64, TxError>;

    fn set(&mut self, key: &[u8], value: &[u8]);

    fn clear(&mut self, key: &[u8]);

    fn clear_range(&mut self, range: &Range);

    /// Atomic little-endian add: no read conflict, so concurrent committers of it do not
    /// conflict with each other.
    fn add(&mut self, key: &[u8], by: i64);

    /// Sets the key `prefix` + the commit's 10-byte versionstamp to `value`.
    fn set_versionstamped_key(&mut self, prefix: &[u8], value: &[u8]);

    /// Watches `key` from this transaction's read version on; armed once the transaction
    /// commits.
    fn watch(&mut self, key: &[u8]) -> Watch;

    /// On failure the transaction comes back with the error, for [`Transaction::on_error`].
    fn commit(self) -> Result<(), (Self, TxError)>;

    /// FoundationDB's retry policy: waits (backing off) and resets the transaction when
    /// `error` is retryable, else hands `error` back.
    fn on_error(self, error: TxError) -> Result<Self, TxError>;
}
