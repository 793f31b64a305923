//! A test fixture: one in-memory keyspace that several [`Backend`] handles open, as
//! several nodes open one shared store. Each handle raises, on its own
//! [`Invalidations`], the keys the other handles change, as a real shared backend's
//! watch (FoundationDB watches, PostgreSQL `LISTEN`/`NOTIFY`) does; a handle's own
//! writes are not raised to it. Two engine cores on two handles behave as two nodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{Applied, Backend, Batch, Invalidations, MemoryBackend, Op, StorageError};

#[derive(Default)]
pub(crate) struct SharedKeyspace {
    /// The keyspace, behind one lock: a group commit is atomic across nodes, as a
    /// serializable transaction is.
    map: RwLock<BTreeMap<String, Vec<u8>>>,
    /// Every node's hub, by node index; `None` until its `Storage` watches.
    hubs: Mutex<Vec<Option<Arc<Invalidations>>>>,
}

impl SharedKeyspace {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A new node's handle on the keyspace.
    pub(crate) fn node(self: &Arc<Self>) -> Arc<NodeBackend> {
        let mut hubs = self.hubs.lock();
        hubs.push(None);
        Arc::new(NodeBackend {
            keyspace: self.clone(),
            index: hubs.len() - 1,
        })
    }

    /// Every stored value, to look for plaintext where only ciphertext belongs.
    pub(crate) fn raw_values(&self) -> Vec<Vec<u8>> {
        self.map.read().values().cloned().collect()
    }

    /// Tells every node but `from` which keys changed, after the commit, outside the
    /// keyspace lock, as a watch fires after the transaction.
    fn raise_to_others(&self, from: usize, keys: &[String]) {
        let others: Vec<Arc<Invalidations>> = self
            .hubs
            .lock()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != from)
            .filter_map(|(_, hub)| hub.clone())
            .collect();
        for hub in others {
            for key in keys {
                hub.raise(key);
            }
        }
    }
}

/// One node's handle on a [`SharedKeyspace`].
pub(crate) struct NodeBackend {
    keyspace: Arc<SharedKeyspace>,
    index: usize,
}

impl Backend for NodeBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        MemoryBackend::get_in(&self.keyspace.map.read(), key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        MemoryBackend::list_in(&self.keyspace.map.read(), prefix)
    }

    fn apply(&self, batches: &[Batch]) -> Result<Applied, StorageError> {
        let mut changed = Vec::new();
        let applied = {
            let mut map = self.keyspace.map.write();
            let applied = MemoryBackend::apply_in(&mut map, batches)?;
            for (batch, outcome) in batches.iter().zip(&applied) {
                if outcome.is_ok() {
                    changed.extend(batch.ops.iter().map(|op| match op {
                        Op::Put(k, _) | Op::Delete(k) => k.clone(),
                    }));
                }
            }
            applied
        };
        self.keyspace.raise_to_others(self.index, &changed);
        Ok(applied)
    }

    fn kind(&self) -> &'static str {
        "inmem-shared"
    }

    fn watch(&self, invalidations: Arc<Invalidations>) {
        if let Some(slot) = self.keyspace.hubs.lock().get_mut(self.index) {
            *slot = Some(invalidations);
        }
    }
}
