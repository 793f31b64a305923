//! The kv v2 secrets engine, HTTP-free: versioned secrets with soft delete, undelete,
//! destroy, check-and-set and metadata, stored under the barrier below its mount's
//! storage prefix.
//!
//! One deliberate difference from Vault, from the Clever KMS contract (seeds/clever-kms.md):
//! reading or deleting without a version addresses the newest *live* version (neither
//! deleted nor destroyed), so two deletes in a row remove two versions and a read then
//! finds nothing. Reads of an explicit version behave as in Vault.

mod metadata;

pub use metadata::{KeyMetadata, KvConfig, MetadataUpdate, VersionMeta};

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::barrier::Barrier;
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

    pub async fn write(
        &self,
        path: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<(u64, VersionMeta, KeyMetadata)> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        let config = self.config()?;
        let existing = self.metadata_opt(path)?;
        self.write_locked(path, data, cas, &config, existing).await
    }

    async fn write_locked(
        &self,
        path: &str,
        data: Map<String, Value>,
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
        let mut batch = self.barrier.batch()?;
        batch.put_json(&self.version_key(path, version), &data)?;
        let max = meta.effective_max_versions(config);
        while meta.versions.len() as u64 > max {
            let Some((&oldest, _)) = meta.versions.iter().next() else {
                break;
            };
            meta.versions.remove(&oldest);
            batch.delete(&self.version_key(path, oldest));
        }
        if let Some((&oldest, _)) = meta.versions.iter().next() {
            meta.oldest_version = oldest;
        }
        batch.put_json(&self.meta_key(path), &meta)?;
        self.barrier.commit(batch).await?;
        Ok((version, vmeta, meta))
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
        let config = self.config()?;
        let meta = self.metadata_opt(path)?.ok_or_else(|| not_found(path))?;
        let now = OffsetDateTime::now_utc();
        let current = meta.current_version;
        let live = meta.versions.get(&current).is_some_and(|v| v.is_live(now));
        if !live {
            return Err(not_found(path));
        }
        let mut data: Map<String, Value> = self
            .barrier
            .get_json(&self.version_key(path, current))?
            .ok_or_else(|| EngineError::Corrupt(format!("{path} version {current}")))?;
        merge_patch(&mut data, patch);
        self.write_locked(path, data, cas, &config, Some(meta))
            .await
    }

    async fn update_versions<F>(&self, path: &str, versions: &[u64], mut f: F) -> Result<()>
    where
        F: FnMut(u64, &mut VersionMeta, &mut crate::barrier::BarrierBatch, OffsetDateTime),
    {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        let Some(mut meta) = self.metadata_opt(path)? else {
            return Ok(());
        };
        let now = OffsetDateTime::now_utc();
        let mut batch = self.barrier.batch()?;
        let wanted: BTreeSet<u64> = versions.iter().copied().collect();
        for v in wanted {
            if let Some(vm) = meta.versions.get_mut(&v) {
                f(v, vm, &mut batch, now);
            }
        }
        meta.updated_time = now;
        batch.put_json(&self.meta_key(path), &meta)?;
        self.barrier.commit(batch).await
    }

    /// Soft-deletes the newest live version (see the module note).
    pub async fn delete_latest(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        let Some(meta) = self.metadata_opt(path)? else {
            return Ok(());
        };
        let Some(latest) = meta.latest_live(OffsetDateTime::now_utc()) else {
            return Ok(());
        };
        self.delete_versions(path, &[latest]).await
    }

    pub async fn delete_versions(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.update_versions(path, versions, |_, vm, _, now| {
            if !vm.destroyed && vm.deletion_time.is_none_or(|t| t > now) {
                vm.deletion_time = Some(now);
            }
        })
        .await
    }

    pub async fn undelete(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.update_versions(path, versions, |_, vm, _, _| {
            if !vm.destroyed {
                vm.deletion_time = None;
            }
        })
        .await
    }

    /// Removes the data of the given versions for good; their metadata stays, marked.
    pub async fn destroy(&self, path: &str, versions: &[u64]) -> Result<()> {
        let keys: Vec<(u64, String)> = versions
            .iter()
            .map(|v| (*v, self.version_key(path, *v)))
            .collect();
        self.update_versions(path, versions, |v, vm, batch, _| {
            vm.destroyed = true;
            if let Some((_, k)) = keys.iter().find(|(kv, _)| *kv == v) {
                batch.delete(k);
            }
        })
        .await
    }

    pub async fn write_metadata(&self, path: &str, update: MetadataUpdate) -> Result<()> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        let now = OffsetDateTime::now_utc();
        let mut meta = self
            .metadata_opt(path)?
            .unwrap_or_else(|| KeyMetadata::new(now));
        update.apply(&mut meta, now);
        let config = self.config()?;
        let mut batch = self.barrier.batch()?;
        let max = meta.effective_max_versions(&config);
        while meta.versions.len() as u64 > max {
            let Some((&oldest, _)) = meta.versions.iter().next() else {
                break;
            };
            meta.versions.remove(&oldest);
            batch.delete(&self.version_key(path, oldest));
        }
        if let Some((&oldest, _)) = meta.versions.iter().next() {
            meta.oldest_version = oldest;
        }
        batch.put_json(&self.meta_key(path), &meta)?;
        self.barrier.commit(batch).await
    }

    /// Deletes the key, every version and its metadata.
    pub async fn delete_metadata(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        let _guard = self.lock_for(path).lock().await;
        let Some(meta) = self.metadata_opt(path)? else {
            return Ok(());
        };
        let mut batch = self.barrier.batch()?;
        for v in meta.versions.keys() {
            batch.delete(&self.version_key(path, *v));
        }
        batch.delete(&self.meta_key(path));
        self.barrier.commit(batch).await
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
mod tests;
