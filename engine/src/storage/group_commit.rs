//! Group commit: writers queue their batch and wait; one thread applies everything queued
//! so far in a single durable transaction, so N concurrent writes cost one fsync, and a
//! write is acknowledged only once it is on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::{
    retry_on_conflict, Backend, Batch, Invalidations, IsConflict, Op, StorageError, StorageFigures,
};

/// A batch, its cost (see [`Backend::cost`]) and who waits for it.
type Job = (Batch, usize, oneshot::Sender<Result<(), StorageError>>);

/// The storage handle the engine uses: reads go straight to the backend, writes through
/// the group-commit thread.
pub struct Storage {
    backend: Arc<dyn Backend>,
    tx: mpsc::UnboundedSender<Job>,
    invalidations: Arc<Invalidations>,
    counters: Arc<Counters>,
}

/// Kept by the commit thread.
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    batches: AtomicU64,
    failed_batches: AtomicU64,
    /// How long the last group commit took, in microseconds, plus one (0: none yet).
    last_commit_micros: AtomicU64,
}

/// Upper bound on batches folded into one transaction, so one commit stays short.
const MAX_GROUP: usize = 512;

/// Blocks for the next job, then takes whatever else is already queued (up to `max`
/// in all) without waiting: one group, so one write and one sync serve every waiter
/// in it. `None` once every sender is gone.
pub(crate) fn next_group<T>(rx: &mut mpsc::UnboundedReceiver<T>, max: usize) -> Option<Vec<T>> {
    next_group_within(rx, max, usize::MAX, |_| 0, &mut None)
}

/// [`next_group`], also closing the group before the `cost`s of its jobs add up to more
/// than `capacity`; the job that did not fit is kept in `held` and opens the next group.
fn next_group_within<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    max: usize,
    capacity: usize,
    cost: impl Fn(&T) -> usize,
    held: &mut Option<T>,
) -> Option<Vec<T>> {
    let first = match held.take() {
        Some(job) => job,
        None => rx.blocking_recv()?,
    };
    let mut total = cost(&first);
    let mut jobs = vec![first];
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => {
                total = total.saturating_add(cost(&job));
                if total > capacity {
                    *held = Some(job);
                    break;
                }
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

impl Storage {
    pub fn new(backend: Arc<dyn Backend>) -> Arc<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let writer = backend.clone();
        let counters = Arc::new(Counters::default());
        let counted = counters.clone();
        let capacity = backend.transaction_capacity();
        let spawned = thread::Builder::new()
            .name("storage-commit".into())
            .spawn(move || {
                let mut held = None;
                while let Some(jobs) =
                    next_group_within(&mut rx, MAX_GROUP, capacity, |job| job.1, &mut held)
                {
                    let (batches, waiters): (Vec<Batch>, Vec<_>) =
                        jobs.into_iter().map(|(b, _, w)| (b, w)).unzip();
                    let n = batches.len() as u64;
                    let started = std::time::Instant::now();
                    let outcome = writer.apply(&batches);
                    let micros = started.elapsed().as_micros() as u64;
                    counted
                        .last_commit_micros
                        .store(micros.saturating_add(1), Ordering::Relaxed);
                    match outcome {
                        // A waiter whose batch has no answer sees `WriterGone`.
                        Ok(applied) => {
                            counted.commits.fetch_add(1, Ordering::Relaxed);
                            counted.batches.fetch_add(n, Ordering::Relaxed);
                            for (w, outcome) in waiters.into_iter().zip(applied) {
                                let _ = w.send(
                                    outcome.map_err(|c| StorageError::Conflict { key: c.key }),
                                );
                            }
                        }
                        Err(e) => {
                            counted.failed_batches.fetch_add(n, Ordering::Relaxed);
                            let e = Arc::new(e);
                            for w in waiters {
                                let _ = w.send(Err(StorageError::Commit(e.clone())));
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the storage commit thread");
        }
        let invalidations = Arc::new(Invalidations::default());
        backend.watch(invalidations.clone());
        Arc::new(Storage {
            backend,
            tx,
            invalidations,
            counters,
        })
    }

    /// Where caches register to hear about keys other writers changed.
    pub fn invalidations(&self) -> &Invalidations {
        &self.invalidations
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.backend.get(key)
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.backend.list(prefix)
    }

    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    pub fn shared(&self) -> bool {
        self.backend.shared()
    }

    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.backend.data_dir()
    }

    pub fn cluster_status(&self) -> Result<Option<super::ClusterSummary>, StorageError> {
        self.backend.cluster_status()
    }

    pub fn figures(&self) -> StorageFigures {
        StorageFigures {
            commits: self.counters.commits.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
            last_commit: match self.counters.last_commit_micros.load(Ordering::Relaxed) {
                0 => None,
                m => Some(std::time::Duration::from_micros(m - 1)),
            },
            backend: self.backend.figures(),
        }
    }

    /// Applies `batch` atomically if its conditions hold (else `Conflict`); returns
    /// once it is durable. A batch that writes nothing commits nothing: its conditions
    /// protect no write. A batch the backend cannot write at all (see
    /// [`Backend::cost`]) is refused before it joins a group.
    pub async fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let cost = self.backend.cost(&batch)?;
        let (done, wait) = oneshot::channel();
        self.tx
            .send((batch, cost, done))
            .map_err(|_| StorageError::WriterGone)?;
        wait.await.map_err(|_| StorageError::WriterGone)?
    }

    /// A transaction whose reads become the conditions of its writes.
    pub fn begin(&self) -> Transaction<'_> {
        Transaction {
            storage: self,
            batch: Batch::new(),
        }
    }

    /// Runs `f` in a transaction and commits what it wrote; when a key it read changed
    /// before the commit, runs it again (see [`retry_on_conflict`]). `f` may run more
    /// than once, so it must not have effects outside the transaction.
    pub async fn transact<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut Transaction<'_>) -> Result<T, E>,
        E: From<StorageError> + IsConflict,
    {
        retry_on_conflict(|| {
            let mut tx = self.begin();
            let out = f(&mut tx);
            let batch = tx.into_batch();
            async move {
                let out = out?;
                self.commit(batch).await?;
                Ok(out)
            }
        })
        .await
    }
}

/// Reads and writes that commit together, only if nothing they read changed meanwhile:
/// each key's first read is recorded as a condition of the batch (as FoundationDB
/// records a read conflict range). Reads see the transaction's own writes.
pub struct Transaction<'s> {
    storage: &'s Storage,
    batch: Batch,
}

impl Transaction<'_> {
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let written = self.batch.ops.iter().rev().find_map(|op| match op {
            Op::Put(k, v) if k == key => Some(Some(v.clone())),
            Op::Delete(k) if k == key => Some(None),
            _ => None,
        });
        if let Some(value) = written {
            return Ok(value);
        }
        if let Some(check) = self.batch.checks.iter().find(|c| c.key == key) {
            return Ok(check.expected.clone());
        }
        let value = self.storage.get(key)?;
        self.batch.check(key, value.clone());
        Ok(value)
    }

    /// Whether the transaction already read or wrote `key`: its answer for it is settled.
    pub fn has_seen(&self, key: &str) -> bool {
        self.batch.checks.iter().any(|c| c.key == key)
            || self.batch.ops.iter().any(|op| match op {
                Op::Put(k, _) | Op::Delete(k) => k == key,
            })
    }

    /// Records `value` as what `key` holds, as a read would, without reading it: for a
    /// caller that knows the stored value already (a cache of it). A stale value only
    /// fails the commit with a conflict.
    pub fn assume(&mut self, key: &str, value: Option<Vec<u8>>) -> &mut Self {
        if !self.has_seen(key) {
            self.batch.check(key, value);
        }
        self
    }

    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) -> &mut Self {
        self.batch.put(key, value);
        self
    }

    /// Writes `value` only if `key` holds `expected` (`None`: absent) at commit.
    pub fn put_if(
        &mut self,
        key: impl Into<String>,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> &mut Self {
        let key = key.into();
        self.batch.check(key.clone(), expected);
        self.batch.put(key, value);
        self
    }

    pub fn delete(&mut self, key: impl Into<String>) -> &mut Self {
        self.batch.delete(key);
        self
    }

    pub fn into_batch(self) -> Batch {
        self.batch
    }
}
