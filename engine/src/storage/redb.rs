//! The embedded backend: one redb file, fsync'd on every commit.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{Backend, Batch, Op, StorageError};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("ironseal");

pub struct RedbBackend {
    db: Database,
}

fn io<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Io(e.to_string())
}

impl RedbBackend {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::create(path).map_err(io)?;
        // Create the table once so read transactions never meet a missing table.
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(TABLE).map_err(io)?;
        txn.commit().map_err(io)?;
        Ok(RedbBackend { db })
    }
}

impl Backend for RedbBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(io)? {
            let (k, _) = item.map_err(io)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            out.push(k.to_string());
        }
        Ok(out)
    }

    fn apply(&self, batches: &[Batch]) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut table = txn.open_table(TABLE).map_err(io)?;
            for op in batches.iter().flat_map(|b| b.ops.iter()) {
                match op {
                    Op::Put(k, v) => {
                        table.insert(k.as_str(), v.as_slice()).map_err(io)?;
                    }
                    Op::Delete(k) => {
                        table.remove(k.as_str()).map_err(io)?;
                    }
                }
            }
        }
        txn.commit().map_err(io)
    }

    fn kind(&self) -> &'static str {
        "redb"
    }
}
