//! Copying a keyspace from one storage to another, offline (`ironseal operator migrate`):
//! every key is copied as it is (ciphertext stays ciphertext) in batches, and each batch
//! is read back from the target and compared before the next. Each batch also records a
//! checkpoint in the target, so a copy cut short (killed, a power cut) continues where
//! it stopped when run again; the checkpoint is removed once the copy is complete.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Batch, Storage, StorageError};
use crate::lease;

/// Where the target records how far a copy got. Its presence also means "a copy into
/// this storage is under way": such a target is resumed, not refused as non-empty.
pub const CHECKPOINT_KEY: &str = "core/migrate-checkpoint";

/// Keys per batch, and the bytes after which a batch is cut short of that.
const BATCH_KEYS: usize = 256;
const BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Error)]
pub enum MigrateError {
    #[error("the target storage is not empty (it holds {key}): point -to at an empty storage, or pass -force to copy over what it holds")]
    TargetNotEmpty { key: String },
    #[error("{which} storage is in use by a running node ({node} holds its periodic-task lease): stop every daemon on it first")]
    InUse { which: &'static str, node: String },
    #[error("{key} read back from the target differs from the source: the target is not to be trusted; run the copy again")]
    Mismatch { key: String },
    #[error("{key} disappeared from the source during the copy: the source must not be in use")]
    SourceChanged { key: String },
    #[error("the target's checkpoint is unreadable: remove {CHECKPOINT_KEY} from it, or start over with an empty target")]
    BadCheckpoint,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    /// Every source key up to this one (in order) is copied and verified.
    last_key: String,
}

/// How far a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Keys copied and verified, those of earlier runs included.
    pub done: usize,
    pub total: usize,
}

/// What a finished copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub keys: usize,
    /// Keys an earlier, interrupted run had already copied.
    pub resumed_after: usize,
}

/// Keys that belong to the running nodes of a storage, not to its keyspace.
fn migrated(key: &str) -> bool {
    !key.starts_with(lease::PREFIX) && key != CHECKPOINT_KEY
}

/// Refuses a shared storage that a node is serving: it holds the periodic-task lease
/// while unsealed. (A storage only one process can open is locked by that process.)
fn refuse_in_use(
    storage: &std::sync::Arc<Storage>,
    which: &'static str,
) -> Result<(), MigrateError> {
    if !storage.shared() {
        return Ok(());
    }
    let lease = lease::Lease::new(
        storage.clone(),
        crate::core::PERIODIC_LEASE,
        "operator-migrate",
        crate::core::PERIODIC_LEASE_TTL,
    );
    match lease.holder()? {
        Some(h) => Err(MigrateError::InUse {
            which,
            node: h.holder,
        }),
        None => Ok(()),
    }
}

/// Copies every key of `from` into `to`, verifying each, and calls `progress` after each
/// batch. Continues an interrupted copy from the target's checkpoint; refuses a target
/// that holds anything else unless `force`.
pub async fn copy_keyspace(
    from: &std::sync::Arc<Storage>,
    to: &std::sync::Arc<Storage>,
    force: bool,
    mut progress: impl FnMut(Progress),
) -> Result<Copied, MigrateError> {
    refuse_in_use(from, "the source")?;
    refuse_in_use(to, "the target")?;
    let keys: Vec<String> = from.list("")?.into_iter().filter(|k| migrated(k)).collect();
    let start = match to.get(CHECKPOINT_KEY)? {
        Some(raw) => {
            let checkpoint: Checkpoint =
                serde_json::from_slice(&raw).map_err(|_| MigrateError::BadCheckpoint)?;
            keys.partition_point(|k| *k <= checkpoint.last_key)
        }
        None => {
            if !force {
                if let Some(key) = to.list("")?.into_iter().find(|k| migrated(k)) {
                    return Err(MigrateError::TargetNotEmpty { key });
                }
            }
            0
        }
    };
    let total = keys.len();
    progress(Progress { done: start, total });
    let mut done = start;
    let mut rest = &keys[start..];
    let mut batches = 0usize;
    while !rest.is_empty() {
        let mut batch = Batch::new();
        let mut values = Vec::new();
        let mut bytes = 0;
        for key in rest {
            if values.len() == BATCH_KEYS || (bytes >= BATCH_BYTES && !values.is_empty()) {
                break;
            }
            let value = from
                .get(key)?
                .ok_or_else(|| MigrateError::SourceChanged { key: key.clone() })?;
            bytes += value.len();
            batch.put(key.clone(), value.clone());
            values.push((key, value));
        }
        let (chunk, after) = rest.split_at(values.len());
        let last_key = chunk[chunk.len() - 1].clone();
        let checkpoint =
            serde_json::to_vec(&Checkpoint { last_key }).map_err(|e| StorageError::Io {
                context: "encoding the migration checkpoint",
                source: e.into(),
            })?;
        batch.put(CHECKPOINT_KEY, checkpoint);
        to.commit(batch).await?;
        for (key, value) in &values {
            if to.get(key)?.as_deref() != Some(value.as_slice()) {
                return Err(MigrateError::Mismatch {
                    key: (*key).clone(),
                });
            }
        }
        done += chunk.len();
        batches += 1;
        progress(Progress { done, total });
        crate::failpoint::crash_at(&format!("migrate:batch-{batches}"));
        rest = after;
    }
    let mut finish = Batch::new();
    finish.delete(CHECKPOINT_KEY);
    to.commit(finish).await?;
    Ok(Copied {
        keys: total,
        resumed_after: start,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{Backend, MemoryBackend};

    async fn filled(n: usize) -> (Arc<Storage>, Arc<MemoryBackend>) {
        let mem = Arc::new(MemoryBackend::new());
        let storage = Storage::new(mem.clone());
        let mut batch = Batch::new();
        for i in 0..n {
            batch.put(format!("k/{i:05}"), vec![i as u8; 10 + i % 7]);
        }
        batch.put("core/lease/periodic", b"node".to_vec());
        storage.commit(batch).await.unwrap();
        (storage, mem)
    }

    fn same_keyspace(a: &MemoryBackend, b: &MemoryBackend) {
        let keys = a.list("k/").unwrap();
        assert_eq!(keys, b.list("k/").unwrap());
        for k in keys {
            assert_eq!(a.get(&k).unwrap(), b.get(&k).unwrap(), "{k}");
        }
    }

    #[tokio::test]
    async fn copies_every_key_verified_and_leaves_no_checkpoint_or_lease() {
        let (from, from_mem) = filled(1000).await;
        let to_mem = Arc::new(MemoryBackend::new());
        let to = Storage::new(to_mem.clone());
        let mut seen = Vec::new();
        let copied = copy_keyspace(&from, &to, false, |p| seen.push(p))
            .await
            .unwrap();
        assert_eq!(
            copied,
            Copied {
                keys: 1000,
                resumed_after: 0
            }
        );
        assert_eq!(
            seen.first(),
            Some(&Progress {
                done: 0,
                total: 1000
            })
        );
        assert_eq!(
            seen.last(),
            Some(&Progress {
                done: 1000,
                total: 1000
            })
        );
        same_keyspace(&from_mem, &to_mem);
        assert_eq!(to_mem.get(CHECKPOINT_KEY).unwrap(), None);
        assert_eq!(to_mem.get("core/lease/periodic").unwrap(), None);
        // Now the target holds data: a second copy is refused unless forced.
        let again = copy_keyspace(&from, &to, false, |_| {}).await;
        assert!(
            matches!(again, Err(MigrateError::TargetNotEmpty { .. })),
            "{again:?}"
        );
        copy_keyspace(&from, &to, true, |_| {}).await.unwrap();
    }

    #[tokio::test]
    async fn a_copy_cut_short_continues_from_its_checkpoint() {
        let (from, from_mem) = filled(700).await;
        let to_mem = Arc::new(MemoryBackend::new());
        let to = Storage::new(to_mem.clone());
        // What a run killed after its first batch leaves: those keys and the checkpoint.
        let keys = from.list("k/").unwrap();
        let mut first = Batch::new();
        for k in &keys[..BATCH_KEYS] {
            first.put(k.clone(), from.get(k).unwrap().unwrap());
        }
        first.put(
            CHECKPOINT_KEY,
            serde_json::to_vec(&Checkpoint {
                last_key: keys[BATCH_KEYS - 1].clone(),
            })
            .unwrap(),
        );
        to.commit(first).await.unwrap();
        let copied = copy_keyspace(&from, &to, false, |_| {}).await.unwrap();
        assert_eq!(copied.resumed_after, BATCH_KEYS);
        same_keyspace(&from_mem, &to_mem);
        assert_eq!(to_mem.get(CHECKPOINT_KEY).unwrap(), None);
    }
}
