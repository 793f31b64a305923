//! kv v2 operations: `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/`,
//! `config`, and kv v1's unversioned entries, each on the mount the door routed to.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Access, Context, Decoded, Op};
use crate::core::Core;
use crate::error::Result;
use crate::kv::{KeyMetadata, KvConfig, KvEngine, MetadataUpdate, ReadVersion, VersionMeta};
use crate::mounts::MountRef;
use crate::policy::Operation;

fn kv(mount: &MountRef) -> Result<&KvEngine> {
    mount.kv()
}

/// `data/<path>` read: a version (the newest live one by default). A deleted or
/// destroyed version comes back without data, for the door to answer as Vault does.
pub struct KvRead {
    pub mount: MountRef,
    pub path: String,
    pub version: Decoded<Option<u64>>,
}

impl Op for KvRead {
    type Output = ReadVersion;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<ReadVersion> {
        kv(&self.mount)?.read(&self.path, self.version?)
    }
}

/// A version as written.
pub struct Written {
    pub version: u64,
    pub meta: VersionMeta,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// `data/<path>` write: a new version, `create` on a new path and `update` on an
/// existing one (Vault's existence check).
pub struct KvWrite {
    pub mount: MountRef,
    pub path: String,
    pub data: Decoded<Map<String, Value>>,
    pub cas: Decoded<Option<u64>>,
}

impl Op for KvWrite {
    type Output = Written;

    fn access(&self) -> Access {
        Access::AclCreateOrUpdate
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        kv(&self.mount)?.exists(&self.path)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Written> {
        let (version, meta, key) = kv(&self.mount)?
            .write(&self.path, self.data?, self.cas?)
            .await?;
        Ok(Written {
            version,
            meta,
            custom_metadata: key.custom_metadata,
        })
    }
}

/// `data/<path>` patch: a JSON merge patch of the newest live version.
pub struct KvPatch {
    pub mount: MountRef,
    pub path: String,
    pub patch: Decoded<Map<String, Value>>,
    pub cas: Decoded<Option<u64>>,
}

impl Op for KvPatch {
    type Output = Written;

    fn access(&self) -> Access {
        Access::Acl(Operation::Patch)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Written> {
        let (version, meta, key) = kv(&self.mount)?
            .patch(&self.path, self.patch?, self.cas?)
            .await?;
        Ok(Written {
            version,
            meta,
            custom_metadata: key.custom_metadata,
        })
    }
}

/// `data/<path>` delete: soft-deletes the newest live version.
pub struct KvDeleteLatest {
    pub mount: MountRef,
    pub path: String,
}

impl Op for KvDeleteLatest {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        kv(&self.mount)?.delete_latest(&self.path).await
    }
}

/// What `delete/`, `undelete/` and `destroy/` do to the versions named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAction {
    Delete,
    Undelete,
    Destroy,
}

pub struct KvVersions {
    pub mount: MountRef,
    pub path: String,
    pub action: VersionAction,
    pub versions: Decoded<Vec<u64>>,
}

impl Op for KvVersions {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        let kv = kv(&self.mount)?;
        let versions = self.versions?;
        match self.action {
            VersionAction::Delete => kv.delete_versions(&self.path, &versions).await,
            VersionAction::Undelete => kv.undelete(&self.path, &versions).await,
            VersionAction::Destroy => kv.destroy(&self.path, &versions).await,
        }
    }
}

/// `metadata/<dir>` list: the keys below a directory (empty: none).
pub struct KvList {
    pub mount: MountRef,
    pub dir: String,
}

impl Op for KvList {
    type Output = Vec<String>;

    fn access(&self) -> Access {
        Access::Acl(Operation::List)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Vec<String>> {
        let dir = if self.dir.is_empty() || self.dir.ends_with('/') {
            self.dir
        } else {
            format!("{}/", self.dir)
        };
        kv(&self.mount)?.list(&dir)
    }
}

pub struct KvMetadataRead {
    pub mount: MountRef,
    pub path: String,
}

impl Op for KvMetadataRead {
    type Output = KeyMetadata;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KeyMetadata> {
        kv(&self.mount)?.metadata(&self.path)
    }
}

/// How a metadata write treats `custom_metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataWrite {
    /// POST: the fields given replace the stored ones (`create` on a new key).
    Replace,
    /// PATCH: merge-patch semantics, custom metadata keys added or replaced, the rest
    /// kept; the key must exist.
    Merge,
}

pub struct KvMetadataWrite {
    pub mount: MountRef,
    pub path: String,
    pub update: Decoded<MetadataUpdate>,
    pub mode: MetadataWrite,
}

impl Op for KvMetadataWrite {
    type Output = ();

    fn access(&self) -> Access {
        match self.mode {
            MetadataWrite::Replace => Access::AclCreateOrUpdate,
            MetadataWrite::Merge => Access::Acl(Operation::Patch),
        }
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        kv(&self.mount)?.exists(&self.path)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        let kv = kv(&self.mount)?;
        if self.mode == MetadataWrite::Merge {
            kv.metadata(&self.path)?;
        }
        let mut update = self.update?;
        if self.mode == MetadataWrite::Merge {
            let current = kv.metadata(&self.path)?;
            if let Some(custom) = update.custom_metadata.take() {
                let mut merged = current.custom_metadata.unwrap_or_default();
                merged.extend(custom);
                update.custom_metadata = Some(merged);
            }
        }
        kv.write_metadata(&self.path, update).await
    }
}

/// `metadata/<path>` delete: the key and every version, outright.
pub struct KvMetadataDelete {
    pub mount: MountRef,
    pub path: String,
}

impl Op for KvMetadataDelete {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        kv(&self.mount)?.delete_metadata(&self.path).await
    }
}

pub struct KvConfigRead {
    pub mount: MountRef,
}

impl Op for KvConfigRead {
    type Output = KvConfig;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KvConfig> {
        kv(&self.mount)?.config()
    }
}

/// `config` write: the fields given replace the mount's defaults, the rest kept.
pub struct KvConfigWrite {
    pub mount: MountRef,
    pub update: Decoded<KvConfigUpdate>,
}

/// The `config` fields a request gives.
pub struct KvConfigUpdate {
    pub max_versions: Option<u64>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<u64>,
}

impl Op for KvConfigWrite {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        let kv = kv(&self.mount)?;
        let update = self.update?;
        let mut c = kv.config()?;
        if let Some(m) = update.max_versions {
            c.max_versions = m;
        }
        if let Some(b) = update.cas_required {
            c.cas_required = b;
        }
        if let Some(d) = update.delete_version_after {
            c.delete_version_after = d;
        }
        kv.set_config(c).await
    }
}

/// kv version 1 `<path>` read: the entry, if any.
pub struct KvV1Read {
    pub mount: MountRef,
    pub path: String,
}

impl Op for KvV1Read {
    type Output = Option<Map<String, Value>>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Option<Map<String, Value>>> {
        kv(&self.mount)?.plain_read(&self.path)
    }
}

/// kv version 1 `<path>` write: replaces the entry (`create` or `update`, by existence).
pub struct KvV1Write {
    pub mount: MountRef,
    pub path: String,
    pub data: Map<String, Value>,
}

impl Op for KvV1Write {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclCreateOrUpdate
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        kv(&self.mount)?.plain_exists(&self.path)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        kv(&self.mount)?.plain_write(&self.path, self.data).await
    }
}

pub struct KvV1Delete {
    pub mount: MountRef,
    pub path: String,
}

impl Op for KvV1Delete {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        kv(&self.mount)?.plain_delete(&self.path).await
    }
}

/// kv version 1 `<dir>` list.
pub struct KvV1List {
    pub mount: MountRef,
    pub dir: String,
}

impl Op for KvV1List {
    type Output = Vec<String>;

    fn access(&self) -> Access {
        Access::Acl(Operation::List)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Vec<String>> {
        kv(&self.mount)?.plain_list(&self.dir)
    }
}
