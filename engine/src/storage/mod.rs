//! Where ciphertext lives: a key-value `Backend`, and `Storage`, which group-commits
//! writes so that many concurrent acknowledged writes share one fsync.

mod group_commit;
mod memory;
mod redb;
mod wal;

pub(crate) use self::group_commit::next_group;
pub use self::group_commit::Storage;
pub use self::memory::MemoryBackend;
pub use self::redb::RedbBackend;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("the storage writer has stopped")]
    WriterGone,
}

/// One change to one key.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

/// Changes that become visible together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
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

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn extend(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }
}

/// A durable key-value store. Only ciphertext (and the non-secret seal configuration)
/// is ever handed to it.
pub trait Backend: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every key that starts with `prefix`, in order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Applies the batches in order, in one transaction, durable before it returns.
    fn apply(&self, batches: &[Batch]) -> Result<(), StorageError>;

    /// A name for `sys/seal-status`'s `storage_type`.
    fn kind(&self) -> &'static str;

    /// The directory holding the backend's files, when it has any: nothing else (an
    /// audit log) may be put there, lest it land on the store or its log.
    fn data_dir(&self) -> Option<&std::path::Path> {
        None
    }
}
