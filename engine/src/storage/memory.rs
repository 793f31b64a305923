use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Applied, Backend, Batch, Conflict, Invalidations, Op, StorageError};

/// An in-memory backend for unit tests; nothing survives the process.
#[derive(Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
    invalidations: RwLock<Option<Arc<Invalidations>>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored value, for tests that look for plaintext where only ciphertext belongs.
    pub fn raw_values(&self) -> Vec<Vec<u8>> {
        self.map.read().values().cloned().collect()
    }

    /// Applies `batch` as another node sharing this keyspace would (unconditionally, not
    /// through `Storage`), and raises each key it wrote, as a shared backend would.
    pub fn write_as_other_node(&self, batch: &Batch) {
        apply_ops(&mut self.map.write(), batch);
        if let Some(hub) = self.invalidations.read().clone() {
            for op in &batch.ops {
                let (Op::Put(key, _) | Op::Delete(key)) = op;
                hub.raise(key);
            }
        }
    }
}

/// The map operations, shared with the test cluster's keyspace.
impl MemoryBackend {
    pub(crate) fn get_in(
        map: &BTreeMap<String, Vec<u8>>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(map.get(key).cloned())
    }

    pub(crate) fn list_in(
        map: &BTreeMap<String, Vec<u8>>,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        Ok(map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    pub(crate) fn apply_in(
        map: &mut BTreeMap<String, Vec<u8>>,
        batches: &[Batch],
    ) -> Result<Applied, StorageError> {
        let mut applied = Vec::with_capacity(batches.len());
        for batch in batches {
            // Batches are applied one after the other, so each sees the ones before it.
            match batch.failed_check(|k| Ok(map.get(k).cloned()))? {
                Some(key) => applied.push(Err(Conflict {
                    key: key.to_string(),
                })),
                None => {
                    apply_ops(map, batch);
                    applied.push(Ok(()));
                }
            }
        }
        Ok(applied)
    }
}

fn apply_ops(map: &mut BTreeMap<String, Vec<u8>>, batch: &Batch) {
    for op in &batch.ops {
        match op {
            Op::Put(k, v) => {
                map.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                map.remove(k);
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Self::get_in(&self.map.read(), key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Self::list_in(&self.map.read(), prefix)
    }

    fn apply(&self, batches: &[Batch]) -> Result<Applied, StorageError> {
        Self::apply_in(&mut self.map.write(), batches)
    }
    fn kind(&self) -> &'static str {
        "inmem"
    }

    /// Other nodes exist only as [`MemoryBackend::write_as_other_node`], which takes no
    /// leases.
    fn shared(&self) -> bool {
        false
    }

    fn watch(&self, invalidations: Arc<Invalidations>) {
        *self.invalidations.write() = Some(invalidations);
    }
}
