//! kv version 1: one unversioned entry per path (`<prefix>plain/<path>`), as Vault's
//! original kv engine keeps them. Reads, writes (a write replaces the entry), deletes and
//! folder listings.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{validate_path, KvEngine};
use crate::error::{EngineError, Result};

impl KvEngine {
    fn plain_key(&self, path: &str) -> String {
        format!("{}plain/{path}", self.prefix)
    }

    pub fn plain_read(&self, path: &str) -> Result<Option<Map<String, Value>>> {
        validate_path(path)?;
        self.barrier.get_json(&self.plain_key(path))
    }

    /// Whether an entry exists: decides between the create and update capabilities.
    pub fn plain_exists(&self, path: &str) -> Result<bool> {
        Ok(validate_path(path).is_ok() && self.plain_read(path)?.is_some())
    }

    pub async fn plain_write(&self, path: &str, data: Map<String, Value>) -> Result<()> {
        validate_path(path)?;
        if data.is_empty() {
            return Err(EngineError::bad("missing data fields"));
        }
        self.barrier.put_json(&self.plain_key(path), &data).await
    }

    /// Deleting nothing is not an error, as in Vault.
    pub async fn plain_delete(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        self.barrier.delete(&self.plain_key(path)).await
    }

    /// The keys and sub-folders (with a trailing "/") directly under `dir`.
    pub fn plain_list(&self, dir: &str) -> Result<Vec<String>> {
        let dir = dir.trim_start_matches('/');
        let dir = if dir.is_empty() || dir.ends_with('/') {
            dir.to_string()
        } else {
            format!("{dir}/")
        };
        let prefix = self.plain_key(&dir);
        let mut out = BTreeSet::new();
        for rest in self.barrier.list(&prefix)? {
            match rest.find('/') {
                Some(i) => out.insert(rest[..=i].to_string()),
                None => out.insert(rest),
            };
        }
        Ok(out.into_iter().collect())
    }
}
