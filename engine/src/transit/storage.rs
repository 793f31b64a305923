//! How keys are kept under the barrier, below the mount's storage prefix:
//!
//! ```text
//! policy/<name>        the key: its configuration and every version it still holds
//! auto-rotate/<name>   present while the key has an auto_rotate_period (empty value)
//! wrapping-key         the mount's RSA-4096 BYOK wrapping key (PKCS#8), made once
//! wrapping-key-hsm     with an HSM seal instead: the key made inside the HSM, as the
//!                      blob its root key wrapped, and its public half
//! ```
//!
//! The second is an index, written in the same batch as the key, so that the periodic
//! check reads only the keys that rotate themselves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::cache::KeyCache;
use super::error::{TransitError, TransitResult};
use super::key_policy::{Key, KeyConfig, Version};
use super::material::SecretBytes;
use crate::barrier::{Barrier, BarrierTx};
use crate::error::EngineError;
use crate::storage::{within, IsConflict, StorageError};

const POLICY_DIR: &str = "policy/";
const AUTO_ROTATE_DIR: &str = "auto-rotate/";
const WRAPPING_KEY: &str = "wrapping-key";
const HSM_WRAPPING_KEY: &str = "wrapping-key-hsm";

#[derive(Serialize, Deserialize)]
struct StoredWrappingKey {
    key: SecretBytes,
}

/// A wrapping key made inside the HSM: the blob its root key wrapped, and the public
/// half (PEM) that clients wrap under.
#[derive(Clone, Serialize, Deserialize)]
pub struct HsmWrappingKey {
    pub blob: SecretBytes,
    pub public_pem: String,
}

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

impl StoredKeyIn {
    /// Whether this is the stored form of `key`: every change (rotate, config, trim)
    /// changes the configuration or the versions.
    fn is(&self, key: &Key) -> bool {
        self.config == key.config
            && self.versions.len() == key.versions.len()
            && self
                .versions
                .iter()
                .zip(&key.versions)
                .all(|((n, v), (kn, kv))| n == kn && v.created == kv.created)
    }
}

impl IsConflict for TransitError {
    fn is_conflict(&self) -> bool {
        matches!(self, TransitError::Engine(e) if e.is_conflict())
    }
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

    /// Tells `cache` about keys of this mount that another writer changed.
    pub fn watch(&self, cache: &Arc<KeyCache>) {
        let dir = format!("{}{POLICY_DIR}", self.prefix);
        self.barrier
            .storage()
            .invalidations()
            .subscribe(cache, move |cache, prefix| {
                if let Some(names) = within(prefix, &dir) {
                    cache.invalidate(names);
                }
            });
    }

    /// Whether storage holds `expected` for `name` (`None`: no key), read in `tx`.
    fn holds(
        &self,
        tx: &mut BarrierTx<'_>,
        name: &str,
        expected: Option<&Key>,
    ) -> TransitResult<bool> {
        let stored: Option<StoredKeyIn> = tx.get_json(&self.policy_path(name))?;
        Ok(match (stored, expected) {
            (None, None) => true,
            (Some(stored), Some(key)) => stored.is(key),
            _ => false,
        })
    }

    fn conflict(&self, name: &str) -> TransitError {
        TransitError::Engine(EngineError::Storage(StorageError::Conflict {
            key: self.policy_path(name),
        }))
    }

    /// Writes a key and its auto-rotation index entry in one atomic batch, if storage
    /// still holds `expected` (the key it was derived from; `None` for a new key), else
    /// fails with a conflict; returns once the write is durable.
    pub async fn persist(&self, expected: Option<&Key>, key: &Key) -> TransitResult<()> {
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
        let written = self
            .barrier
            .transact(|tx| {
                if !self.holds(tx, name, expected)? {
                    return Ok(false);
                }
                tx.put_json(&self.policy_path(name), &stored)?;
                if key.config.auto_rotate_period > 0 {
                    tx.put(&self.rotate_path(name), b"")?;
                } else {
                    tx.delete(&self.rotate_path(name));
                }
                Ok::<_, TransitError>(true)
            })
            .await?;
        if written {
            Ok(())
        } else {
            Err(self.conflict(name))
        }
    }

    /// Deletes `expected` if storage still holds it, else fails with a conflict.
    pub async fn delete(&self, expected: &Key) -> TransitResult<()> {
        let name = expected.name();
        let deleted = self
            .barrier
            .transact(|tx| {
                if !self.holds(tx, name, Some(expected))? {
                    return Ok(false);
                }
                tx.delete(&self.policy_path(name));
                tx.delete(&self.rotate_path(name));
                Ok::<_, TransitError>(true)
            })
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(self.conflict(name))
        }
    }

    /// The mount's BYOK wrapping key, if it was made.
    pub fn wrapping_key(&self) -> TransitResult<Option<SecretBytes>> {
        let path = format!("{}{WRAPPING_KEY}", self.prefix);
        let Some(plain) = self.barrier.get(&path)? else {
            return Ok(None);
        };
        let stored: StoredWrappingKey = serde_json::from_slice(&plain)
            .map_err(|_| TransitError::Engine(EngineError::Corrupt(path)))?;
        Ok(Some(stored.key))
    }

    /// Stores `key` as the wrapping key unless one is stored already (another node
    /// made it first); returns the one storage holds.
    pub async fn keep_wrapping_key(&self, key: SecretBytes) -> TransitResult<SecretBytes> {
        let path = format!("{}{WRAPPING_KEY}", self.prefix);
        let path = &path;
        let key = &key;
        self.barrier
            .transact(|tx| {
                if let Some(stored) = tx.get_json::<StoredWrappingKey>(path)? {
                    return Ok(stored.key);
                }
                tx.put_json(path, &StoredWrappingKey { key: key.clone() })?;
                Ok::<_, TransitError>(key.clone())
            })
            .await
    }

    /// The mount's BYOK wrapping key made inside the HSM, if it was made.
    pub fn hsm_wrapping_key(&self) -> TransitResult<Option<HsmWrappingKey>> {
        let path = format!("{}{HSM_WRAPPING_KEY}", self.prefix);
        let Some(plain) = self.barrier.get(&path)? else {
            return Ok(None);
        };
        let stored = serde_json::from_slice(&plain)
            .map_err(|_| TransitError::Engine(EngineError::Corrupt(path)))?;
        Ok(Some(stored))
    }

    /// [`Self::keep_wrapping_key`] for a key made inside the HSM.
    pub async fn keep_hsm_wrapping_key(
        &self,
        key: HsmWrappingKey,
    ) -> TransitResult<HsmWrappingKey> {
        let path = format!("{}{HSM_WRAPPING_KEY}", self.prefix);
        let (path, key) = (&path, &key);
        self.barrier
            .transact(|tx| {
                if let Some(stored) = tx.get_json::<HsmWrappingKey>(path)? {
                    return Ok(stored);
                }
                tx.put_json(path, key)?;
                Ok::<_, TransitError>(key.clone())
            })
            .await
    }

    /// Drops a stale auto-rotation index entry (its key is gone or no longer rotates),
    /// unless the key was meanwhile given a rotation period.
    pub async fn forget_rotation(&self, name: &str) -> TransitResult<()> {
        self.barrier
            .transact(|tx| {
                let stored: Option<StoredKeyIn> = tx.get_json(&self.policy_path(name))?;
                if stored.is_none_or(|k| k.config.auto_rotate_period == 0) {
                    tx.delete(&self.rotate_path(name));
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use hsm_bridge::ShamirRoot;

    use super::*;
    use crate::storage::{MemoryBackend, Storage};
    use crate::transit::{CreateKey, KeyType, TransitEngine, TransitSettings};

    const PREFIX: &str = "logical/transit-test/";

    /// Two engines over one barrier stand for two nodes sharing storage.
    async fn two_engines() -> (Arc<Barrier>, TransitEngine, TransitEngine) {
        let barrier = Arc::new(Barrier::new(Storage::new(Arc::new(MemoryBackend::new()))));
        let (root, _) = ShamirRoot::generate(1, 1).unwrap();
        barrier.initialize(&root).await.unwrap();
        let engine =
            || TransitEngine::new(barrier.clone(), PREFIX.into(), TransitSettings::default());
        (barrier.clone(), engine(), engine())
    }

    fn aes() -> CreateKey {
        CreateKey {
            kind: KeyType::Aes256Gcm96,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_rotation_from_a_stale_cache_reloads_instead_of_overwriting() {
        let (_, a, b) = two_engines().await;
        a.create("k", aes()).await.unwrap();
        assert_eq!(a.get("k").unwrap().unwrap().config.latest_version, 1);
        assert_eq!(b.rotate("k").await.unwrap().config.latest_version, 2);
        // `a` still caches version 1: its write conflicts, it reloads and rotates again.
        assert_eq!(a.rotate("k").await.unwrap().config.latest_version, 3);
        let stored = a.store.load("k").unwrap().unwrap();
        assert_eq!(
            stored.versions.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[tokio::test]
    async fn the_key_cache_drops_what_another_writer_changed() {
        let (barrier, a, b) = two_engines().await;
        a.create("k", aes()).await.unwrap();
        assert!(!a.exists("new").unwrap());
        b.rotate("k").await.unwrap();
        b.create("new", aes()).await.unwrap();
        // Not raised yet: `a` answers from its cache.
        assert_eq!(a.get("k").unwrap().unwrap().config.latest_version, 1);
        assert!(!a.exists("new").unwrap());
        let invalidations = barrier.storage().invalidations();
        invalidations.raise(&format!("{PREFIX}{POLICY_DIR}k"));
        assert_eq!(a.get("k").unwrap().unwrap().config.latest_version, 2);
        invalidations.raise(&format!("{PREFIX}{POLICY_DIR}"));
        assert!(a.exists("new").unwrap());
        // Another mount's keys are not this cache's business.
        invalidations.raise("logical/other/policy/k");
        assert!(a.exists("k").unwrap());
    }
}
