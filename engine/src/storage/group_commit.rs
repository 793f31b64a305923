//! Group commit: writers queue their batch and wait; one thread applies everything queued
//! so far in a single durable transaction, so N concurrent writes cost one fsync, and a
//! write is acknowledged only once it is on disk.

use std::sync::Arc;
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::{Backend, Batch, StorageError};

type Job = (Batch, oneshot::Sender<Result<(), String>>);

/// The storage handle the engine uses: reads go straight to the backend, writes through
/// the group-commit thread.
pub struct Storage {
    backend: Arc<dyn Backend>,
    tx: mpsc::UnboundedSender<Job>,
}

/// Upper bound on batches folded into one transaction, so one commit stays short.
const MAX_GROUP: usize = 512;

/// Blocks for the next job, then takes whatever else is already queued (up to `max`
/// in all) without waiting: one group, so one write and one sync serve every waiter
/// in it. `None` once every sender is gone.
pub(crate) fn next_group<T>(rx: &mut mpsc::UnboundedReceiver<T>, max: usize) -> Option<Vec<T>> {
    let mut jobs = vec![rx.blocking_recv()?];
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

impl Storage {
    pub fn new(backend: Arc<dyn Backend>) -> Arc<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let writer = backend.clone();
        let spawned = thread::Builder::new()
            .name("storage-commit".into())
            .spawn(move || {
                while let Some(jobs) = next_group(&mut rx, MAX_GROUP) {
                    let (batches, waiters): (Vec<Batch>, Vec<_>) = jobs.into_iter().unzip();
                    let result = writer.apply(&batches).map_err(|e| e.to_string());
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the storage commit thread");
        }
        Arc::new(Storage { backend, tx })
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

    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.backend.data_dir()
    }

    /// Applies `batch` atomically; returns once it is durable.
    pub async fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send((batch, done))
            .map_err(|_| StorageError::WriterGone)?;
        wait.await
            .map_err(|_| StorageError::WriterGone)?
            .map_err(StorageError::Io)
    }
}
