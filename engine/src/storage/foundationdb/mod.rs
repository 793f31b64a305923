//! The FoundationDB backend: the keyspace in a FoundationDB cluster, so several nodes
//! serve one keyspace (only barrier ciphertext and opaque keys are written).
//!
//! The algorithms here run over a small transaction trait ([`txn`]): the product
//! implements it with the `foundationdb` crate (feature `fdb`), the tests with an
//! in-process model of FoundationDB's semantics. What they do about FoundationDB's rules:
//! - Limits: values over 100 kB are cut into chunks read back with one range read (so in
//!   one snapshot); keys over 10 kB are refused; a batch that alone would not fit one
//!   transaction (kept well under 10 MB) is refused, and [`Storage`](super::Storage)
//!   closes a group of batches before it outgrows one ([`Backend::transaction_capacity`]).
//!   The reads of a group's conditions go out at once, one round trip, which keeps a
//!   transaction far under FoundationDB's 5 s; one that is too old anyway
//!   (`transaction_too_old`) is retried like any retryable error.
//! - Retries: every transaction runs in FoundationDB's retry loop (`on_error`), bounded in
//!   time; a retried `apply` reads its conditions again, so a conflict with another node
//!   becomes a failed condition (the batch's `Conflict`) or a clean second attempt.
//! - Unknown results: every commit also writes its outcome under a fresh id; after
//!   `commit_unknown_result` the retry first reads that id (a read that conflicts with the
//!   first attempt, should it land late) and answers what landed instead of applying twice.
//!   Each node clears its earlier ids in its next commit.
//! - Invalidation: every commit bumps a version key (atomic add: commits of disjoint keys
//!   on several nodes do not conflict over it) and logs the keys it changed under its
//!   versionstamp; each node watches the version key (and polls it every
//!   [`WATCH_POLL`], the bound on coherence should a watch fail) and raises on
//!   [`Invalidations`] what the other nodes' log entries name, or everything when
//!   entries it has not seen were already trimmed.

#[cfg(feature = "fdb")]
mod client;
mod layout;
mod status;
mod txn;
mod watch;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use self::layout::{Layout, CHUNK_BYTES, KEY_LIMIT};
use self::txn::{Database, KeyValue, Transaction, TxError};
use super::{
    off_the_workers, Applied, Backend, Batch, ClusterSummary, Conflict, Invalidations, Op,
    StorageError,
};

#[cfg(feature = "fdb")]
pub use self::client::{open, FdbCluster, FdbConfig};

/// The most a batch group may put in one transaction, by [`cost`]: FoundationDB refuses
/// transactions over 10 MB (mutations and conflict ranges); the estimate is generous,
/// and the rest leaves room for the version, log and outcome entries.
const TRANSACTION_BUDGET: usize = 8_000_000;
/// Per entry, beyond its key and value: the tuple prefix and FoundationDB's own overhead.
const ENTRY_OVERHEAD: usize = 64;
/// How long a call keeps retrying retryable errors before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(10);
/// How often a node rereads the version key even when its watch has not fired.
pub const WATCH_POLL: Duration = Duration::from_secs(1);
/// How long the change log keeps an entry, in FoundationDB versions (about a million a
/// second): a node that has not looked for longer invalidates everything.
const LOG_RETENTION_VERSIONS: i64 = 60_000_000;
/// Beyond this many keys (or bytes of keys), a log entry names their common prefix.
const LOG_MAX_KEYS: usize = 64;
const LOG_MAX_BYTES: usize = 16 * 1024;

/// The backend over any [`Database`].
pub(crate) struct FdbStore<D: Database> {
    db: Arc<D>,
    layout: Arc<Layout>,
    /// Written into log entries, so a node skips its own changes.
    node: [u8; 16],
    /// Outcome ids of this node's earlier commits, cleared by its next commit.
    stale_markers: Mutex<Vec<Vec<u8>>>,
    /// Tells the watcher thread to end.
    stopped: Arc<AtomicBool>,
}

/// Why one attempt stopped: retry it, or give up.
enum Step {
    Retry(TxError),
    Fail(StorageError),
}

impl From<TxError> for Step {
    fn from(e: TxError) -> Self {
        Step::Retry(e)
    }
}

fn failed(context: &'static str) -> impl FnOnce(TxError) -> StorageError {
    move |e| StorageError::FoundationDb {
        context,
        code: e.code,
        message: e.message,
    }
}

/// What one `apply` attempt found.
enum Attempt {
    /// An earlier attempt of this `apply` landed (its commit's result was unknown).
    Landed(Applied),
    /// The batches are written into the transaction, not yet committed.
    Written { applied: Applied, writes: bool },
}

impl<D: Database> FdbStore<D> {
    pub(crate) fn new(db: D, prefix: &str) -> Self {
        FdbStore {
            db: Arc::new(db),
            layout: Arc::new(Layout::new(prefix)),
            node: rand::random(),
            stale_markers: Mutex::new(Vec::new()),
            stopped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs `body` in FoundationDB's retry loop, without committing: for reads.
    fn read<T>(
        &self,
        context: &'static str,
        mut body: impl FnMut(&mut D::Tx) -> Result<T, Step>,
    ) -> Result<T, StorageError> {
        // Reads come from request handlers, on the async workers.
        off_the_workers(|| {
            let deadline = Instant::now() + RETRY_FOR;
            let mut tx = self.db.begin().map_err(failed(context))?;
            loop {
                match body(&mut tx) {
                    Ok(out) => return Ok(out),
                    Err(Step::Fail(e)) => return Err(e),
                    Err(Step::Retry(e)) => tx = retry(tx, e, deadline, context)?,
                }
            }
        })
    }

    /// One attempt of `apply`: the conditions read in one round trip, then each batch
    /// whose conditions hold written, with the version bump, the log entry and the
    /// outcome under `marker`.
    fn attempt(
        &self,
        tx: &mut D::Tx,
        batches: &[Batch],
        marker: &[u8],
        maybe_landed: bool,
        stale: &[Vec<u8>],
    ) -> Result<Attempt, Step> {
        if maybe_landed {
            if let Some(outcome) = tx.get(marker, false)? {
                return decode_outcome(&outcome)
                    .map(Attempt::Landed)
                    .ok_or_else(|| {
                        Step::Fail(StorageError::Corrupt {
                            key: "a commit outcome".into(),
                            reason: "it does not decode",
                        })
                    });
            }
        }
        let mut checked: Vec<&str> = Vec::new();
        for check in batches.iter().flat_map(|b| &b.checks) {
            if !checked.contains(&check.key.as_str()) {
                checked.push(&check.key);
            }
        }
        let ranges: Vec<_> = checked.iter().map(|k| self.layout.value_range(k)).collect();
        let read = tx.get_ranges(&ranges, false)?;
        // Values as the batches see them: committed, then changed by the applied ones.
        let mut seen: HashMap<&str, Option<Vec<u8>>> = HashMap::new();
        for (key, chunks) in checked.iter().zip(read) {
            let value = assemble(&self.layout, key, chunks).map_err(Step::Fail)?;
            seen.insert(key, value);
        }
        let mut applied = Vec::with_capacity(batches.len());
        let mut changed: Vec<&str> = Vec::new();
        for batch in batches {
            let failed = batch
                .failed_check(|k| Ok(seen.get(k).cloned().flatten()))
                .map_err(Step::Fail)?;
            if let Some(key) = failed {
                applied.push(Err(Conflict {
                    key: key.to_string(),
                }));
                continue;
            }
            for op in &batch.ops {
                let key = match op {
                    Op::Put(key, value) => {
                        self.put(tx, key, value);
                        key
                    }
                    Op::Delete(key) => {
                        tx.clear(&self.layout.key(key));
                        tx.clear_range(&self.layout.value_range(key));
                        key
                    }
                };
                if let Some(slot) = seen.get_mut(key.as_str()) {
                    *slot = match op {
                        Op::Put(_, value) => Some(value.clone()),
                        Op::Delete(_) => None,
                    };
                }
                changed.push(key);
            }
            applied.push(Ok(()));
        }
        // After an unknown result the outcome is committed even when nothing else is: a
        // read-only transaction commits without a conflict check, and only a checked
        // commit proves the first attempt did not land after all.
        if changed.is_empty() && !maybe_landed {
            return Ok(Attempt::Written {
                applied,
                writes: false,
            });
        }
        if !changed.is_empty() {
            // Trim the log first: mutations apply in order, and the range must not take
            // this commit's own entry with it.
            let version = tx.read_version()?;
            let trim_to = version - LOG_RETENTION_VERSIONS;
            if trim_to > 0 {
                tx.clear_range(&self.layout.log_until(trim_to));
            }
            tx.add(self.layout.version(), 1);
            let mut entry = self.node.to_vec();
            entry.extend_from_slice(&foundationdb_tuple::pack(&logged_keys(&changed)));
            tx.set_versionstamped_key(self.layout.log_prefix(), &entry);
        }
        tx.set(marker, &encode_outcome(&applied));
        for old in stale {
            tx.clear(old);
        }
        Ok(Attempt::Written {
            applied,
            writes: true,
        })
    }

    fn put(&self, tx: &mut D::Tx, key: &str, value: &[u8]) {
        tx.set(&self.layout.key(key), b"");
        tx.clear_range(&self.layout.value_range(key));
        if value.is_empty() {
            tx.set(&self.layout.chunk(key, 0), b"");
        }
        for (n, chunk) in value.chunks(CHUNK_BYTES).enumerate() {
            tx.set(&self.layout.chunk(key, n), chunk);
        }
    }
}

/// Hands `tx` to FoundationDB's retry policy, unless the time for retries is up.
fn retry<T: Transaction>(
    tx: T,
    e: TxError,
    deadline: Instant,
    context: &'static str,
) -> Result<T, StorageError> {
    if Instant::now() >= deadline {
        return Err(failed(context)(e));
    }
    tx.on_error(e).map_err(failed(context))
}

/// A value from its chunks, which must be numbered 0, 1, ... without a gap.
fn assemble(
    layout: &Layout,
    key: &str,
    chunks: Vec<KeyValue>,
) -> Result<Option<Vec<u8>>, StorageError> {
    if chunks.is_empty() {
        return Ok(None);
    }
    let mut value = Vec::with_capacity(chunks.iter().map(|(_, v)| v.len()).sum());
    for (n, (chunk_key, chunk)) in chunks.into_iter().enumerate() {
        if layout.chunk_number(key, &chunk_key) != Some(n as u64) {
            return Err(StorageError::Corrupt {
                key: key.to_string(),
                reason: "a chunk of its value is missing",
            });
        }
        value.extend_from_slice(&chunk);
    }
    Ok(Some(value))
}

/// What a log entry names: the keys, or their common prefix when there are many.
fn logged_keys(changed: &[&str]) -> Vec<String> {
    let bytes: usize = changed.iter().map(|k| k.len()).sum();
    if changed.len() <= LOG_MAX_KEYS && bytes <= LOG_MAX_BYTES {
        return changed.iter().map(|k| k.to_string()).collect();
    }
    let mut common = changed.first().copied().unwrap_or_default();
    for key in changed {
        let same = common
            .bytes()
            .zip(key.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        common = prefix_within(common, same);
    }
    // A shorter prefix still covers every key it must.
    vec![prefix_within(common, LOG_MAX_BYTES).to_string()]
}

/// The longest prefix of `s` of at most `bytes` bytes that ends on a character.
fn prefix_within(s: &str, bytes: usize) -> &str {
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn encode_outcome(applied: &Applied) -> Vec<u8> {
    let outcome: Vec<Option<String>> = applied
        .iter()
        .map(|a| a.as_ref().err().map(|c| c.key.clone()))
        .collect();
    foundationdb_tuple::pack(&outcome)
}

fn decode_outcome(bytes: &[u8]) -> Option<Applied> {
    let outcome: Vec<Option<String>> = foundationdb_tuple::unpack(bytes).ok()?;
    Some(
        outcome
            .into_iter()
            .map(|c| match c {
                None => Ok(()),
                Some(key) => Err(Conflict { key }),
            })
            .collect(),
    )
}

impl<D: Database> Backend for FdbStore<D> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let range = self.layout.value_range(key);
        let chunks = self.read("read", |tx| {
            Ok(tx.get_ranges(std::slice::from_ref(&range), false)?)
        })?;
        assemble(&self.layout, key, chunks.into_iter().flatten().collect())
    }

    fn cluster_status(&self) -> Result<Option<ClusterSummary>, StorageError> {
        let document = self.read("status", |tx| Ok(tx.get(status::STATUS_KEY, true)?))?;
        match document {
            Some(d) => status::summarize(&d).map(Some),
            None => Err(StorageError::Corrupt {
                key: "\\xff\\xff/status/json".into(),
                reason: "the cluster gave no status document",
            }),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let range = self.layout.list_range(prefix);
        let entries = self.read("list", |tx| {
            Ok(tx.get_ranges(std::slice::from_ref(&range), false)?)
        })?;
        entries
            .into_iter()
            .flatten()
            .map(|(k, _)| {
                self.layout.listed_key(&k).ok_or(StorageError::Corrupt {
                    key: prefix.to_string(),
                    reason: "a key below it does not decode",
                })
            })
            .collect()
    }

    fn apply(&self, batches: &[Batch]) -> Result<Applied, StorageError> {
        let cost = batches
            .iter()
            .map(|b| self.cost(b))
            .sum::<Result<usize, _>>()?;
        if cost > TRANSACTION_BUDGET {
            return Err(StorageError::TooLarge {
                what: "a group of writes",
                bytes: cost,
                limit: TRANSACTION_BUDGET,
            });
        }
        let id: [u8; 16] = rand::random();
        let marker = self.layout.commit_marker(&id);
        let stale = std::mem::take(&mut *self.stale_markers.lock());
        let deadline = Instant::now() + RETRY_FOR;
        let mut maybe_landed = false;
        // `Ok((applied, committed))`: whether this call's commit (with `marker`) landed.
        let outcome = (|| {
            let mut tx = self.db.begin().map_err(failed("begin"))?;
            loop {
                let error = match self.attempt(&mut tx, batches, &marker, maybe_landed, &stale) {
                    Ok(Attempt::Landed(applied)) => return Ok((applied, true)),
                    Ok(Attempt::Written {
                        applied,
                        writes: false,
                    }) => return Ok((applied, false)),
                    Ok(Attempt::Written {
                        applied,
                        writes: true,
                    }) => match tx.commit() {
                        Ok(()) => return Ok((applied, true)),
                        Err((back, e)) => {
                            tx = back;
                            e
                        }
                    },
                    Err(Step::Fail(e)) => return Err(e),
                    Err(Step::Retry(e)) => e,
                };
                maybe_landed |= error.is_maybe_committed();
                tx = retry(tx, error, deadline, "commit")?;
            }
        })();
        let mut markers = self.stale_markers.lock();
        match outcome {
            Ok((applied, true)) => {
                markers.push(marker);
                Ok(applied)
            }
            Ok((applied, false)) => {
                markers.extend(stale);
                Ok(applied)
            }
            // Unknown: the old ids may still be there, and this one too.
            Err(e) => {
                markers.extend(stale);
                if maybe_landed {
                    markers.push(marker);
                }
                Err(e)
            }
        }
    }

    fn kind(&self) -> &'static str {
        "foundationdb"
    }

    fn transaction_capacity(&self) -> usize {
        TRANSACTION_BUDGET
    }

    fn cost(&self, batch: &Batch) -> Result<usize, StorageError> {
        let mut cost = 0;
        for op in &batch.ops {
            let (key, value) = match op {
                Op::Put(key, value) => (key, value.len()),
                Op::Delete(key) => (key, 0),
            };
            // The chunk keys are the longest: the key, its tuple framing, the chunk number.
            let longest = self.layout.chunk(key, value / CHUNK_BYTES).len();
            if longest > KEY_LIMIT {
                return Err(StorageError::TooLarge {
                    what: "a storage key",
                    bytes: key.len(),
                    limit: KEY_LIMIT.saturating_sub(longest - key.len()),
                });
            }
            // The index entry, the chunks, and a conflict range (two keys) for each.
            let entries = 2 + value.div_ceil(CHUNK_BYTES);
            cost += entries * 3 * (ENTRY_OVERHEAD + key.len()) + value;
        }
        for check in &batch.checks {
            cost += 2 * (ENTRY_OVERHEAD + check.key.len());
        }
        if cost > TRANSACTION_BUDGET {
            return Err(StorageError::TooLarge {
                what: "a write",
                bytes: cost,
                limit: TRANSACTION_BUDGET,
            });
        }
        Ok(cost)
    }

    fn watch(&self, invalidations: Arc<Invalidations>) {
        watch::spawn(
            self.db.clone(),
            self.layout.clone(),
            self.node,
            invalidations,
            self.stopped.clone(),
        );
    }
}

impl<D: Database> Drop for FdbStore<D> {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}
