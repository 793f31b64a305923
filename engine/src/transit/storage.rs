//! How keys are kept under the barrier, below the mount's storage prefix:
//!
//! ```text
//! policy/<name>        the key: its configuration and every version it still holds
//! auto-rotate/<name>   present while the key has an auto_rotate_period (empty value)
//! ```
//!
//! The second is an index, written in the same batch as the key, so that the periodic
//! check reads only the keys that rotate themselves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::{TransitError, TransitResult};
use super::key_policy::{Key, KeyConfig, Version};
use super::material::SecretBytes;
use crate::barrier::Barrier;
use crate::error::EngineError;

const POLICY_DIR: &str = "policy/";
const AUTO_ROTATE_DIR: &str = "auto-rotate/";

#[derive(Serialize)]
struct StoredKeyOut<'a> {
    config: &'a KeyConfig,
    versions: BTreeMap<u32, StoredVersionOut<'a>>,
}

#[derive(Serialize)]
struct StoredVersionOut<'a> {
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    key: &'a SecretBytes,
    hmac_key: &'a SecretBytes,
}

#[derive(Deserialize)]
struct StoredKeyIn {
    config: KeyConfig,
    versions: BTreeMap<u32, StoredVersionIn>,
}

#[derive(Deserialize)]
struct StoredVersionIn {
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    key: SecretBytes,
    hmac_key: SecretBytes,
}

pub(crate) struct KeyStore {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl KeyStore {
    pub fn new(barrier: Arc<Barrier>, prefix: String) -> Self {
        KeyStore { barrier, prefix }
    }

    fn policy_path(&self, name: &str) -> String {
        format!("{}{POLICY_DIR}{name}", self.prefix)
    }

    fn rotate_path(&self, name: &str) -> String {
        format!("{}{AUTO_ROTATE_DIR}{name}", self.prefix)
    }

    pub fn names(&self) -> TransitResult<Vec<String>> {
        Ok(self.barrier.list(&format!("{}{POLICY_DIR}", self.prefix))?)
    }

    pub fn auto_rotating(&self) -> TransitResult<Vec<String>> {
        Ok(self
            .barrier
            .list(&format!("{}{AUTO_ROTATE_DIR}", self.prefix))?)
    }

    /// Reads and parses a key; parsing builds every version's material.
    pub fn load(&self, name: &str) -> TransitResult<Option<Key>> {
        let path = self.policy_path(name);
        let Some(plain) = self.barrier.get(&path)? else {
            return Ok(None);
        };
        let stored: StoredKeyIn = serde_json::from_slice(&plain)
            .map_err(|_| TransitError::Engine(EngineError::Corrupt(path.clone())))?;
        let config = stored.config;
        let mut versions = BTreeMap::new();
        for (n, v) in stored.versions {
            let version = Version::build(&config, n, v.created, v.key, v.hmac_key)?;
            versions.insert(n, Arc::new(version));
        }
        Ok(Some(Key {
            config,
            versions,
            phantom: false,
        }))
    }

    /// Writes a key and its auto-rotation index entry in one atomic batch; returns once
    /// the write is durable.
    pub async fn persist(&self, key: &Key) -> TransitResult<()> {
        let name = key.name();
        let stored = StoredKeyOut {
            config: &key.config,
            versions: key
                .versions
                .iter()
                .map(|(n, v)| {
                    (
                        *n,
                        StoredVersionOut {
                            created: v.created,
                            key: &v.secret,
                            hmac_key: &v.hmac_key,
                        },
                    )
                })
                .collect(),
        };
        let mut batch = self.barrier.batch()?;
        batch.put_json(&self.policy_path(name), &stored)?;
        if key.config.auto_rotate_period > 0 {
            batch.put(&self.rotate_path(name), b"")?;
        } else {
            batch.delete(&self.rotate_path(name));
        }
        self.barrier.commit(batch).await?;
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> TransitResult<()> {
        let mut batch = self.barrier.batch()?;
        batch.delete(&self.policy_path(name));
        batch.delete(&self.rotate_path(name));
        self.barrier.commit(batch).await?;
        Ok(())
    }

    /// Drops a stale auto-rotation index entry (its key is gone or no longer rotates).
    pub async fn forget_rotation(&self, name: &str) -> TransitResult<()> {
        Ok(self.barrier.delete(&self.rotate_path(name)).await?)
    }
}
