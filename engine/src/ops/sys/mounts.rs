//! `sys/mounts` (list, enable, read, disable, tune) and `sys/internal/ui/mounts`.

use std::collections::BTreeMap;

use crate::error::{EngineError, Result};
use crate::mounts::{normalize_mount_path, MountConfig, MountEntry};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;

fn no_mount(path: &str) -> EngineError {
    EngineError::bad(format!("no mount at {path:?}"))
}

pub struct MountsList;

impl Op for MountsList {
    type Output = Vec<MountEntry>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<MountEntry>> {
        Ok(cx
            .core
            .mounts
            .list()
            .iter()
            .map(|m| m.entry.clone())
            .collect())
    }
}

/// What a new mount is.
pub struct MountSpec {
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub config: MountConfig,
}

pub struct MountEnable {
    pub path: String,
    pub spec: Decoded<MountSpec>,
}

impl Op for MountEnable {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let spec = self.spec?;
        let entry = cx
            .core
            .mounts
            .mount(
                &self.path,
                &spec.kind,
                spec.description,
                spec.options,
                spec.config,
            )
            .await?;
        tracing::info!(path = %entry.path, kind = entry.kind.as_str(), "secrets engine enabled");
        Ok(())
    }
}

/// A mount's entry, by its path as given (normalised once authorised).
pub struct MountRead {
    pub path: String,
}

impl Op for MountRead {
    type Output = MountEntry;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<MountEntry> {
        let path = normalize_mount_path(&self.path)?;
        let m = cx.core.mounts.get(&path).ok_or_else(|| no_mount(&path))?;
        Ok(m.entry.clone())
    }
}

/// Unmounts; a path with nothing mounted is not an error.
pub struct MountDisable {
    pub path: String,
}

impl Op for MountDisable {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let path = normalize_mount_path(&self.path)?;
        if cx.core.mounts.get(&path).is_some() {
            cx.core.mounts.unmount(&path).await?;
            tracing::info!(path = %path, "secrets engine disabled");
        }
        Ok(())
    }
}

/// `sys/mounts/<path>/tune` read; `path` is normalised.
pub struct MountTuneRead {
    pub path: String,
}

impl Op for MountTuneRead {
    type Output = MountEntry;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<MountEntry> {
        let m = cx
            .core
            .mounts
            .get(&self.path)
            .ok_or_else(|| no_mount(&self.path))?;
        Ok(m.entry.clone())
    }
}

/// The fields a tune gives; the rest of the mount's config is kept.
pub struct MountTuneSpec {
    pub default_lease_ttl: Option<u64>,
    pub max_lease_ttl: Option<u64>,
    pub description: Option<String>,
    pub options: BTreeMap<String, String>,
}

pub struct MountTune {
    pub path: String,
    pub spec: Decoded<MountTuneSpec>,
}

impl Op for MountTune {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let spec = self.spec?;
        cx.core
            .mounts
            .tune(
                &self.path,
                spec.description,
                |c| {
                    if let Some(ttl) = spec.default_lease_ttl {
                        c.default_lease_ttl = ttl;
                    }
                    if let Some(ttl) = spec.max_lease_ttl {
                        c.max_lease_ttl = ttl;
                    }
                },
                spec.options,
            )
            .await
    }
}

/// `sys/internal/ui/mounts/<path>`: which mount serves a path, which the CLI's `kv`
/// commands ask first. Any valid token may: the answer reveals no data.
pub struct MountOf {
    pub target: String,
}

impl Op for MountOf {
    type Output = MountEntry;

    fn access(&self) -> Access {
        Access::AnyToken
    }

    async fn run(self, cx: Context<'_>) -> Result<MountEntry> {
        let probe = if self.target.ends_with('/') {
            self.target.clone()
        } else {
            format!("{}/", self.target)
        };
        let (m, _) = cx
            .core
            .mounts
            .route(&probe)
            .ok_or_else(|| no_mount(&self.target))?;
        Ok(m.entry.clone())
    }
}
