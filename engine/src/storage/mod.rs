//! Where ciphertext lives: a key-value `Backend`, and `Storage`, which group-commits
//! writes so that many concurrent acknowledged writes share one fsync.
//!
//! Read-modify-writes are transactions ([`Storage::transact`]): what a transaction reads
//! becomes a condition of its batch, and the backend applies the batch only if every
//! condition still holds, else answers [`StorageError::Conflict`]; the transaction is
//! then run again from the start, a bounded number of times ([`retry_on_conflict`]).
//!
//! How other backends implement [`Backend::apply`]'s conditions:
//! - FoundationDB (`foundationdb`, feature `fdb`): one optimistic transaction per group;
//!   checking a condition is a read, which adds a read conflict range on the key, so a
//!   write committed by another node after that read makes the commit fail with
//!   `not_committed` (1020). The group then runs again from its reads (FoundationDB's
//!   retry loop), where the changed key fails only the batches that checked it.
//! - PostgreSQL: each batch in a `SERIALIZABLE` transaction (or `REPEATABLE READ` with
//!   `SELECT ... FOR UPDATE` of the checked keys); a failed comparison or SQLSTATE
//!   40001 (serialization failure) is a `Conflict`.
//!
//! Both can also raise [`Invalidations`] for what other nodes wrote (FoundationDB
//! watches, PostgreSQL `LISTEN`/`NOTIFY`), so the caches above storage stay coherent.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(feature = "fdb", test))]
pub mod foundationdb;
mod group_commit;
mod invalidation;
mod memory;
pub mod migrate;
#[cfg(feature = "postgresql")]
pub mod postgresql;
mod redb;
#[cfg(test)]
pub(crate) mod shared_memory;
mod wal;

pub(crate) use self::group_commit::next_group;
pub use self::group_commit::{Storage, Transaction};
pub use self::invalidation::{within, Invalidations};
pub use self::memory::MemoryBackend;
pub use self::redb::RedbBackend;

use std::future::Future;
use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage I/O failed: {context}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the embedded database failed")]
    Redb(#[source] Box<::redb::Error>),
    /// A condition of the batch no longer held: another writer changed `key` since it
    /// was read. Running the transaction again from its reads may succeed.
    #[error("a concurrent write changed {key}")]
    Conflict { key: String },
    /// The write-ahead log and the database may disagree: writes are refused until the
    /// log is replayed (at the next write that can open the storage again, or start).
    #[error("storage is inconsistent until its log is replayed")]
    Inconsistent(#[source] Arc<StorageError>),
    /// The group commit this write was part of failed.
    #[error("the storage commit failed")]
    Commit(#[source] Arc<StorageError>),
    #[error("the storage writer has stopped")]
    WriterGone,
    /// FoundationDB answered an error its retry policy does not retry, or kept answering
    /// retryable ones for too long.
    #[error("FoundationDB {context} failed: {message} (error {code})")]
    FoundationDb {
        context: &'static str,
        code: i32,
        message: &'static str,
    },
    /// More than the backend can store in one piece.
    #[error("{what} of {bytes} bytes is over the storage backend's limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        limit: usize,
    },
    /// What the backend holds at `key` cannot be read back as it was written.
    #[error("storage holds an unreadable record at {key}: {reason}")]
    Corrupt { key: String, reason: &'static str },
    /// The storage configuration cannot be used as written.
    #[error("invalid storage configuration: {message}")]
    InvalidConfig { message: String },
    /// A shared store (a database server) failed or could not be reached.
    #[error("the {backend} storage failed while {context}")]
    Remote {
        backend: &'static str,
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection was lost while the commit was in flight and the store could not
    /// be asked whether it landed: the write may or may not have been applied.
    #[error("the storage commit may or may not have been applied (the connection was lost); read back to know")]
    CommitUnknown {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store holds something this program did not write.
    #[error("storage holds foreign data: {context}")]
    ForeignData { context: &'static str },
    /// A shared store did not answer in time (a stalled or unreachable server): nothing
    /// was applied, and the request may be sent again.
    #[error("the {backend} storage is unreachable: it did not answer within {} s while {context}; nothing was written, try again later", waited.as_secs())]
    Unavailable {
        backend: &'static str,
        context: &'static str,
        waited: std::time::Duration,
    },
    /// A shared store's server refused or dropped the connection for as long as the
    /// backend kept reconnecting (a stopped server, a host gone): nothing was applied,
    /// and the request may be sent again once it is back.
    #[error("the {backend} storage is unreachable: the server refused or dropped the connection while {context}; nothing was written, try again later")]
    Unreachable {
        backend: &'static str,
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
        move |source| StorageError::Io { context, source }
    }

    /// What the operator must fix when the cause is the storage volume itself (full or
    /// read-only), in words a caller may see; None for any other failure, whose detail
    /// stays in the log.
    pub fn volume_fault(&self) -> Option<&'static str> {
        let io = match self {
            StorageError::Io { source, .. } => source,
            StorageError::Redb(e) => match &**e {
                ::redb::Error::Io(io) => io,
                _ => return None,
            },
            StorageError::Inconsistent(cause) | StorageError::Commit(cause) => {
                return cause.volume_fault()
            }
            _ => return None,
        };
        match io.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Some(
                "storage is full: writes are refused until space is freed on the storage volume",
            ),
            std::io::ErrorKind::ReadOnlyFilesystem => Some(
                "storage is read-only: writes are refused until the storage volume is writable \
                 again",
            ),
            _ => None,
        }
    }
}

impl StorageError {
    /// A store that could not be reached or did not answer, directly or as the cause of
    /// a failed group commit: the caller may try again later (503), unlike a failure of
    /// the appliance.
    pub fn unavailable(&self) -> Option<&StorageError> {
        match self {
            StorageError::Unavailable { .. } | StorageError::Unreachable { .. } => Some(self),
            StorageError::Commit(inner) => inner.unavailable(),
            _ => None,
        }
    }
}

/// Runs `wait`, which blocks its thread on a shared store's round trips. On a worker of
/// a multi-thread runtime, the worker first hands its other tasks to another thread
/// (`block_in_place`), so a slow or stalled database delays only the requests that wait
/// for it, not `sys/health` or unseal queued behind them on the same worker. Elsewhere
/// (the commit thread, the blocking pool, a current-thread runtime) it simply blocks.
#[cfg(any(feature = "postgresql", feature = "fdb", test))]
pub(crate) fn off_the_workers<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

impl From<::redb::Error> for StorageError {
    fn from(e: ::redb::Error) -> Self {
        StorageError::Redb(Box::new(e))
    }
}

/// Errors that may say "another writer got there first; try again".
pub trait IsConflict {
    fn is_conflict(&self) -> bool;
}

impl IsConflict for StorageError {
    fn is_conflict(&self) -> bool {
        matches!(self, StorageError::Conflict { .. })
    }
}

impl IsConflict for crate::error::EngineError {
    fn is_conflict(&self) -> bool {
        matches!(self, crate::error::EngineError::Storage(e) if e.is_conflict())
    }
}

/// Attempts a transaction gets before its conflict is reported to the caller. Writers of
/// one key on one node are serialised above storage, so a conflict means another node
/// (or a rare unserialised writer) won the race; a few attempts suffice.
pub const MAX_ATTEMPTS: usize = 16;

/// Runs `attempt` again while it fails with a conflict, at most [`MAX_ATTEMPTS`] times
/// in all; any other outcome is returned as it is. Each attempt must redo its reads.
pub async fn retry_on_conflict<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: IsConflict,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_conflict() && tries < MAX_ATTEMPTS => {
                tries += 1;
                // Let the writer that won commit and its waiters move on first.
                tokio::task::yield_now().await;
            }
            other => return other,
        }
    }
}

/// One change to one key.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A condition of a batch: `key` holds `expected` (`None`: the key is absent).
#[derive(Debug, Clone)]
pub struct Check {
    pub key: String,
    pub expected: Option<Vec<u8>>,
}

/// Changes that become visible together or not at all, and the conditions under which
/// they may: a batch whose conditions do not all hold is not applied at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
    pub checks: Vec<Check>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put(key.into(), value));
        self
    }

    pub fn delete(&mut self, key: impl Into<String>) -> &mut Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }

    /// Applies the batch only if `key` still holds `expected` when it commits.
    pub fn check(&mut self, key: impl Into<String>, expected: Option<Vec<u8>>) -> &mut Self {
        self.checks.push(Check {
            key: key.into(),
            expected,
        });
        self
    }

    /// Writes nothing (whatever it checks).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn extend(&mut self, other: Batch) {
        self.ops.extend(other.ops);
        self.checks.extend(other.checks);
    }

    /// The first condition that does not hold, where `current` gives a key's value as
    /// the batch would see it.
    pub(crate) fn failed_check<F>(&self, mut current: F) -> Result<Option<&str>, StorageError>
    where
        F: FnMut(&str) -> Result<Option<Vec<u8>>, StorageError>,
    {
        for check in &self.checks {
            if current(&check.key)? != check.expected {
                return Ok(Some(&check.key));
            }
        }
        Ok(None)
    }
}

/// Per batch of a group: applied, or the key whose condition failed.
pub type Applied = Vec<Result<(), Conflict>>;

/// A batch not applied because a condition on `key` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub key: String,
}

/// A backend's own figures; `None` where it has no such thing.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendFigures {
    /// Bytes in the write-ahead log, not yet checkpointed into the database.
    pub wal_bytes: Option<u64>,
    /// Checkpoints since start (the log emptied into the database).
    pub checkpoints: Option<u64>,
    /// The database file's size.
    pub file_bytes: Option<u64>,
    /// Writes are refused until a restart replays the log.
    pub broken: bool,
    /// Whether a shared store's server answered the last time it was asked.
    pub reachable: Option<bool>,
    /// How long the last commit to a shared store took, in microseconds.
    pub last_commit_micros: Option<u64>,
}

/// What a clustered store says of its cluster; a field the cluster did not report is
/// None, never assumed good.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClusterSummary {
    /// The database accepts reads and writes.
    pub available: Option<bool>,
    /// Every part of it is as configured (no data movement for lost replicas).
    pub healthy: Option<bool>,
    pub coordinators_reachable: Option<bool>,
    /// Where the cluster's recovery stands (`fully_recovered` in normal operation).
    pub recovery_state: Option<String>,
    /// `single`, `double`, `triple`, ...
    pub redundancy_mode: Option<String>,
    /// How many fault zones can fail without losing data.
    pub zone_failures_tolerated: Option<i64>,
    pub machines: Option<usize>,
    pub processes: Option<usize>,
    /// The cluster's own warnings, in its words.
    pub messages: Vec<String>,
    /// Why the status could not be read (the details are in the log).
    pub error: Option<String>,
}

/// What storage has done since start, for `sys/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageFigures {
    /// Group commits applied (one durable transaction each).
    pub commits: u64,
    /// Write batches committed, across those groups.
    pub batches: u64,
    /// Batches refused: their group commit failed.
    pub failed_batches: u64,
    /// How long the last group commit took (failed or not), if there was one.
    pub last_commit: Option<std::time::Duration>,
    pub backend: BackendFigures,
}

/// A durable key-value store. Only ciphertext (and the non-secret seal configuration)
/// is ever handed to it.
pub trait Backend: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every key that starts with `prefix`, in order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Applies the batches in order, in one transaction, durable before it returns. A
    /// batch's conditions are checked against the committed state plus the batches
    /// before it in `batches` that were applied; a batch whose conditions fail is left
    /// out (its entry in the answer names the key) and does not fail the others. An
    /// `Err` means nothing is known to be applied.
    fn apply(&self, batches: &[Batch]) -> Result<Applied, StorageError>;

    /// A name for `sys/seal-status`'s `storage_type`.
    fn kind(&self) -> &'static str;

    /// What one transaction can carry, in the units of [`Backend::cost`]: a group of
    /// batches is closed before its costs add up to more.
    fn transaction_capacity(&self) -> usize {
        usize::MAX
    }

    /// The share of one transaction `batch` takes, or why the backend cannot write it at
    /// all (larger than a transaction alone, a key over its limit): refused before it
    /// joins a group, so it fails no other batch.
    fn cost(&self, _batch: &Batch) -> Result<usize, StorageError> {
        Ok(0)
    }

    /// The directory holding the backend's files, when it has any: nothing else (an
    /// audit log) may be put there, lest it land on the store or its log.
    fn data_dir(&self) -> Option<&std::path::Path> {
        None
    }

    /// What the backend can tell of its own state, for `sys/metrics`.
    fn figures(&self) -> BackendFigures {
        BackendFigures::default()
    }

    /// A clustered store's own account of its cluster (FoundationDB's status), for
    /// `sys/appliance` and the console; None where the backend has no such thing. A round
    /// trip to the cluster: not for `sys/health`.
    fn cluster_status(&self) -> Result<Option<ClusterSummary>, StorageError> {
        Ok(None)
    }

    /// Whether other processes may write this keyspace while this one runs (a shared
    /// store). Leases ([`crate::lease`]) held by other holders are honoured until they
    /// expire only then: on a store this process holds alone, such a lease can only be
    /// left over from an earlier run. Shared unless the backend says otherwise, so that a
    /// new shared backend is safe by default.
    fn shared(&self) -> bool {
        true
    }

    /// Where to raise the prefixes of keys that other writers changed. A single-node
    /// backend sees only the writes made through it, which the caches above already
    /// account for, so by default it raises nothing.
    fn watch(&self, _invalidations: Arc<Invalidations>) {}
}

#[cfg(test)]
mod tests;
