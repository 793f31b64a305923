use std::collections::BTreeMap;

use parking_lot::RwLock;

use super::{Backend, Batch, Op, StorageError};

/// An in-memory backend for unit tests; nothing survives the process.
#[derive(Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored value, for tests that look for plaintext where only ciphertext belongs.
    pub fn raw_values(&self) -> Vec<Vec<u8>> {
        self.map.read().values().cloned().collect()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .map
            .read()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn apply(&self, batches: &[Batch]) -> Result<(), StorageError> {
        let mut map = self.map.write();
        for op in batches.iter().flat_map(|b| b.ops.iter()) {
            match op {
                Op::Put(k, v) => {
                    map.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    map.remove(k);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}
