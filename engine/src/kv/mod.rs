//! The kv v2 secrets engine, HTTP-free: versioned secrets with soft delete, undelete,
//! destroy, check-and-set and metadata, stored under the barrier below its mount's
//! storage prefix.
//!
//! One deliberate difference from Vault, from the Clever KMS contract (seeds/clever-kms.md):
//! reading or deleting without a version addresses the newest *live* version (neither
//! deleted nor destroyed), so two deletes in a row remove two versions and a read then
//! finds nothing. Reads of an explicit version behave as in Vault.

mod metadata;
mod plain;

pub use metadata::{KeyMetadata, KvConfig, MetadataUpdate, VersionMeta};

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::barrier::{Barrier, BarrierTx};
use crate::error::{EngineError, Result};

/// Vault's default number of versions kept per key.
pub const DEFAULT_MAX_VERSIONS: u64 = 10;
const LOCK_STRIPES: usize = 64;

pub struct KvEngine {
    barrier: Arc<Barrier>,
    prefix: String,
    locks: Vec<tokio::sync::Mutex<()>>,
}

/// A secret version as read: its data (None once deleted or destroyed) and metadata.
pub struct ReadVersion {
    pub data: Option<Map<String, Value>>,
    pub version: u64,
    pub meta: VersionMeta,
    pub custom_metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// A kv path: relative, no leading or trailing slash, no empty or dot segments.
pub fn validate_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(EngineError::bad("missing secret path"));
    }
    if path.ends_with('/') {
        return Err(EngineError::bad("a secret path cannot end with \"/\""));
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(EngineError::bad("invalid secret path"));
    }
    Ok(())
}

fn not_found(path: &str) -> EngineError {
    EngineError::NotFound(format!("no secret at {path}"))
}

impl KvEngine {
    pub fn new(barrier: Arc<Barrier>, storage_prefix: String) -> Self {
        KvEngine {
            barrier,
            prefix: storage_prefix,
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn meta_key(&self, path: &str) -> String {
        format!("{}meta/{path}", self.prefix)
    }

    fn version_key(&self, path: &str, version: u64) -> String {
        // Versions are keyed by a digest of the path so a path that is a prefix of
        // another never shares a storage prefix with it.
        let digest = Sha256::digest(path.as_bytes());
        format!(
            "{}ver/{}/{version}",
            self.prefix,
            hex::encode(&digest[..16])
        )
    }

    fn config_key(&self) -> String {
        format!("{}config", self.prefix)
    }

    fn lock_for(&self, path: &str) -> &tokio::sync::Mutex<()> {
        let digest = Sha256::digest(path.as_bytes());
        &self.locks[digest[0] as usize % LOCK_STRIPES]
    }

    pub fn config(&self) -> Result<KvConfig> {
        Ok(self
            .barrier
            .get_json(&self.config_key())?
            .unwrap_or_default())
    }

    pub async fn set_config(&self, config: KvConfig) -> Result<()> {
        self.barrier.put_json(&self.config_key(), &config).await
    }

    pub fn metadata(&self, path: &str) -> Result<KeyMetadata> {
        validate_path(path)?;
        self.barrier
            .get_json(&self.meta_key(path))?
            .ok_or_else(|| not_found(path))
    }

    fn metadata_opt(&self, path: &str) -> Result<Option<KeyMetadata>> {
        self.barrier.get_json(&self.meta_key(path))
    }

    pub fn read(&self, path: &str, version: Option<u64>) -> Result<ReadVersion> {
        validate_path(path)?;
        let meta = self.metadata_opt(path)?.ok_or_else(|| not_found(path))?;
        let now = OffsetDateTime::now_utc();
        let version = match version.filter(|v| *v > 0) {
            Some(v) => v,
            None => meta.latest_live(now).ok_or_else(|| not_found(path))?,
        };
        let vmeta = meta
            .versions
            .get(&version)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        let data = if vmeta.is_live(now) {
            let d: Option<Map<String, Value>> =
                self.barrier.get_json(&self.version_key(path, version))?;
            Some(d.ok_or_else(|| EngineError::Corrupt(format!("{path} version {version}")))?)
        } else {
            None
        };
        Ok(ReadVersion {
            data,
            version,
            meta: vmeta,
            custom_metadata: meta.custom_metadata.clone(),
        })
    }

    /// Whether `path` has metadata: decides between the create and update capabilities.
    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(validate_path(path).is_ok() && self.metadata_opt(path)?.is_some())
    }

    // Every read-modify-write below runs in a barrier transaction: what it read is a
    // condition of its commit, so a concurrent writer that the per-path lock does not
    // see (another node, another engine on the same storage) makes it run again rather
    // than be overwritten. The lock only keeps this node's writers of one path from
    // conflicting with each other.

    pub async fn write(
        &self,
        path: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<(u64, VersionMeta, KeyMetadata)> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        self.barrier
            .transact(|tx| {
                let config = self.config_in(tx)?;
                let existing = tx.get_json(&self.meta_key(path))?;
                self.write_in(tx, path, &data, cas, &config, existing)
            })
            .await
    }

    fn config_in(&self, tx: &mut BarrierTx<'_>) -> Result<KvConfig> {
        Ok(tx.get_json(&self.config_key())?.unwrap_or_default())
    }

    fn write_in(
        &self,
        tx: &mut BarrierTx<'_>,
        path: &str,
        data: &Map<String, Value>,
        cas: Option<u64>,
        config: &KvConfig,
        existing: Option<KeyMetadata>,
    ) -> Result<(u64, VersionMeta, KeyMetadata)> {
        let now = OffsetDateTime::now_utc();
        let mut meta = existing.unwrap_or_else(|| KeyMetadata::new(now));
        let cas_required = meta.cas_required || config.cas_required;
        match cas {
            None if cas_required => {
                return Err(EngineError::bad(
                    "check-and-set parameter required for this call",
                ))
            }
            Some(c) if c != meta.current_version => {
                return Err(EngineError::bad(
                    "check-and-set parameter did not match the current version",
                ))
            }
            _ => {}
        }
        let version = meta.current_version + 1;
        let dva = if meta.delete_version_after > 0 {
            meta.delete_version_after
        } else {
            config.delete_version_after
        };
        let vmeta = VersionMeta {
            created_time: now,
            // A deletion past what a time can hold is no deletion: never a panic.
            deletion_time: (dva > 0)
                .then(|| crate::duration::checked_after(now, dva))
                .flatten(),
            destroyed: false,
        };
        meta.current_version = version;
        meta.updated_time = now;
        meta.versions.insert(version, vmeta.clone());
        if meta.oldest_version == 0 {
            meta.oldest_version = version;
        }
        tx.put_json(&self.version_key(path, version), data)?;
        self.trim_in(tx, path, &mut meta, config)?;
        Ok((version, vmeta, meta))
    }

    /// Drops the versions beyond the key's maximum and writes its metadata.
    fn trim_in(
        &self,
        tx: &mut BarrierTx<'_>,
        path: &str,
        meta: &mut KeyMetadata,
        config: &KvConfig,
    ) -> Result<()> {
        let max = meta.effective_max_versions(config);
        while meta.versions.len() as u64 > max {
            let Some((&oldest, _)) = meta.versions.iter().next() else {
                break;
            };
            meta.versions.remove(&oldest);
            tx.delete(&self.version_key(path, oldest));
        }
        if let Some((&oldest, _)) = meta.versions.iter().next() {
            meta.oldest_version = oldest;
        }
        tx.put_json(&self.meta_key(path), meta)?;
        Ok(())
    }

    /// JSON merge patch (RFC 7386) of the newest live version into a new version.
    pub async fn patch(
        &self,
        path: &str,
        patch: Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<(u64, VersionMeta, KeyMetadata)> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        self.barrier
            .transact(|tx| {
                let config = self.config_in(tx)?;
                let meta: KeyMetadata = tx
                    .get_json(&self.meta_key(path))?
                    .ok_or_else(|| not_found(path))?;
                let now = OffsetDateTime::now_utc();
                let current = meta.current_version;
                let live = meta.versions.get(&current).is_some_and(|v| v.is_live(now));
                if !live {
                    return Err(not_found(path));
                }
                let mut data: Map<String, Value> =
                    tx.get_json(&self.version_key(path, current))?
                        .ok_or_else(|| EngineError::Corrupt(format!("{path} version {current}")))?;
                merge_patch(&mut data, patch.clone());
                self.write_in(tx, path, &data, cas, &config, Some(meta))
            })
            .await
    }

    /// Changes the metadata of the versions `pick` chooses (nothing is written when it
    /// chooses `None`).
    async fn update_versions<P, F>(&self, path: &str, pick: P, mut f: F) -> Result<()>
    where
        P: Fn(&KeyMetadata, OffsetDateTime) -> Option<BTreeSet<u64>>,
        F: FnMut(u64, &mut VersionMeta, &mut BarrierTx<'_>, OffsetDateTime),
    {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        self.barrier
            .transact(|tx| {
                let Some(mut meta) = tx.get_json::<KeyMetadata>(&self.meta_key(path))? else {
                    return Ok(());
                };
                let now = OffsetDateTime::now_utc();
                let Some(wanted) = pick(&meta, now) else {
                    return Ok(());
                };
                for v in wanted {
                    if let Some(vm) = meta.versions.get_mut(&v) {
                        f(v, vm, tx, now);
                    }
                }
                meta.updated_time = now;
                tx.put_json(&self.meta_key(path), &meta)?;
                Ok(())
            })
            .await
    }

    fn listed(
        versions: &[u64],
    ) -> impl Fn(&KeyMetadata, OffsetDateTime) -> Option<BTreeSet<u64>> + '_ {
        |_, _| Some(versions.iter().copied().collect())
    }

    /// Soft-deletes the newest live version (see the module note).
    pub async fn delete_latest(&self, path: &str) -> Result<()> {
        self.update_versions(
            path,
            |meta, now| meta.latest_live(now).map(|v| BTreeSet::from([v])),
            soft_delete,
        )
        .await
    }

    pub async fn delete_versions(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.update_versions(path, Self::listed(versions), soft_delete)
            .await
    }

    pub async fn undelete(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.update_versions(path, Self::listed(versions), |_, vm, _, _| {
            if !vm.destroyed {
                vm.deletion_time = None;
            }
        })
        .await
    }

    /// Removes the data of the given versions for good; their metadata stays, marked.
    pub async fn destroy(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.update_versions(path, Self::listed(versions), |v, vm, tx, _| {
            vm.destroyed = true;
            tx.delete(&self.version_key(path, v));
        })
        .await
    }

    pub async fn write_metadata(&self, path: &str, update: MetadataUpdate) -> Result<()> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        self.barrier
            .transact(|tx| {
                let now = OffsetDateTime::now_utc();
                let mut meta = tx
                    .get_json(&self.meta_key(path))?
                    .unwrap_or_else(|| KeyMetadata::new(now));
                update.clone().apply(&mut meta, now);
                let config = self.config_in(tx)?;
                self.trim_in(tx, path, &mut meta, &config)
            })
            .await
    }

    /// Deletes the key, every version and its metadata.
    pub async fn delete_metadata(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        self.barrier
            .transact(|tx| {
                let Some(meta) = tx.get_json::<KeyMetadata>(&self.meta_key(path))? else {
                    return Ok(());
                };
                for v in meta.versions.keys() {
                    tx.delete(&self.version_key(path, *v));
                }
                tx.delete(&self.meta_key(path));
                Ok(())
            })
            .await
    }

    /// The keys and sub-folders (with a trailing "/") directly under `dir`.
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        let dir = dir.trim_start_matches('/');
        if !dir.is_empty() && !dir.ends_with('/') {
            return Err(EngineError::bad("a folder to list ends with \"/\""));
        }
        let prefix = format!("{}meta/{dir}", self.prefix);
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

fn soft_delete(_: u64, vm: &mut VersionMeta, _: &mut BarrierTx<'_>, now: OffsetDateTime) {
    if !vm.destroyed && vm.deletion_time.is_none_or(|t| t > now) {
        vm.deletion_time = Some(now);
    }
}

fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::Object(p) => {
                let entry = target.entry(k).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k, other);
            }
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
