//! The mount table: which secrets engine answers below which path.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::kv::KvEngine;
use crate::transit::{TransitEngine, TransitSettings};

pub(crate) const MOUNTS_PATH: &str = "core/mounts";
/// Paths that belong to the appliance itself and cannot hold a secrets engine.
const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/", "api/", "ui/"];

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Kv,
    Transit,
}

impl EngineKind {
    /// Vault's engine type names; `kv-v2` is the CLI's shorthand for kv version 2, and
    /// `kv` without a version is version 1, as in Vault.
    pub fn parse(kind: &str, options: &mut BTreeMap<String, String>) -> Result<EngineKind> {
        match kind {
            "kv" | "kv-v2" => {
                if kind == "kv-v2" {
                    options.insert("version".into(), "2".into());
                }
                // Without a version the mount is version 1 and, as in Vault, says none.
                match options.get("version").map(String::as_str) {
                    None | Some("1") | Some("2") => {}
                    Some("") => {
                        options.remove("version");
                    }
                    Some(other) => {
                        return Err(EngineError::bad(format!(
                            "invalid kv version {other:?}: use 1 or 2"
                        )))
                    }
                }
                Ok(EngineKind::Kv)
            }
            "transit" => Ok(EngineKind::Transit),
            other => Err(EngineError::bad(format!(
                "plugin not found in the catalog: {other}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Kv => "kv",
            EngineKind::Transit => "transit",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountConfig {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub listing_visibility: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    pub path: String,
    pub kind: EngineKind,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    pub options: BTreeMap<String, String>,
    pub config: MountConfig,
    pub local: bool,
    pub seal_wrap: bool,
}

impl MountEntry {
    pub fn storage_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }
}

/// The engine behind a mount.
pub enum Backend {
    Kv(KvEngine),
    /// Shared so a tune keeps the same engine, with its key cache and write locks.
    Transit(Arc<TransitEngine>),
}

/// A mounted engine, ready to serve.
pub struct Mounted {
    pub entry: MountEntry,
    pub backend: Backend,
}

/// A routed mount as a front door holds it: which engine, at which path, to name in an
/// operation; the engine itself is reachable only by the operation.
#[derive(Clone)]
pub struct MountRef(Arc<Mounted>);

impl MountRef {
    pub(crate) fn new(m: Arc<Mounted>) -> Self {
        MountRef(m)
    }

    pub fn kind(&self) -> EngineKind {
        self.0.entry.kind
    }

    /// The mount's path, with its trailing slash.
    pub fn path(&self) -> &str {
        &self.0.entry.path
    }

    /// A kv mount's version: 2, or 1 (unversioned entries) when the mount names none.
    pub fn kv_version(&self) -> u8 {
        match self.0.entry.options.get("version").map(String::as_str) {
            Some("2") => 2,
            _ => 1,
        }
    }

    pub(crate) fn kv(&self) -> Result<&KvEngine> {
        match &self.0.backend {
            Backend::Kv(kv) => Ok(kv),
            Backend::Transit(_) => Err(EngineError::internal(
                "kv operation routed to a transit mount",
            )),
        }
    }

    pub(crate) fn transit(&self) -> Result<&Arc<TransitEngine>> {
        match &self.0.backend {
            Backend::Transit(t) => Ok(t),
            Backend::Kv(_) => Err(EngineError::internal(
                "transit operation routed to a kv mount",
            )),
        }
    }
}

pub struct Mounts {
    barrier: Arc<Barrier>,
    transit: TransitSettings,
    table: RwLock<BTreeMap<String, Arc<Mounted>>>,
    /// Held across a reload's read and swap, and while a commit's table is taken up.
    taking_up: parking_lot::Mutex<()>,
    write_lock: tokio::sync::Mutex<()>,
}

/// Holds `table`, just stored in place of `before`, unless a reload took up the stored
/// table between the commit and here: that one holds this change or a newer one, and
/// putting this one back would hide the newer change until the next.
pub(crate) fn hold_committed<T>(
    held: &RwLock<BTreeMap<String, Arc<T>>>,
    taking_up: &parking_lot::Mutex<()>,
    before: &BTreeMap<String, Arc<T>>,
    table: BTreeMap<String, Arc<T>>,
) {
    let _taking_up = taking_up.lock();
    let mut held = held.write();
    let unchanged = held.len() == before.len()
        && held
            .iter()
            .zip(before)
            .all(|((p, a), (q, b))| p == q && Arc::ptr_eq(a, b));
    if unchanged {
        *held = table;
    }
}

/// Normalises a mount path to Vault's form: no leading slash, one trailing slash.
pub fn normalize_mount_path(path: &str) -> Result<String> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(EngineError::bad("invalid mount path"));
    }
    Ok(format!("{p}/"))
}

impl Mounts {
    pub fn new(barrier: Arc<Barrier>, transit: TransitSettings) -> Self {
        Mounts {
            barrier,
            transit,
            table: RwLock::new(BTreeMap::new()),
            taking_up: parking_lot::Mutex::new(()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn mounted(&self, entry: MountEntry) -> Arc<Mounted> {
        let prefix = entry.storage_prefix();
        let backend = match entry.kind {
            EngineKind::Kv => Backend::Kv(KvEngine::new(self.barrier.clone(), prefix)),
            EngineKind::Transit => Backend::Transit(Arc::new(TransitEngine::new(
                self.barrier.clone(),
                prefix,
                self.transit,
            ))),
        };
        Arc::new(Mounted { entry, backend })
    }

    pub fn load(&self) -> Result<()> {
        let entries: Vec<MountEntry> = self.barrier.get_json(MOUNTS_PATH)?.unwrap_or_default();
        let table = entries
            .into_iter()
            .map(|e| (e.path.clone(), self.mounted(e)))
            .collect();
        *self.table.write() = table;
        Ok(())
    }

    /// Forgets the table; key material cached by the engines is dropped with it.
    pub fn clear(&self) {
        let table = std::mem::take(&mut *self.table.write());
        for m in table.values() {
            m.backend.forget_keys();
        }
    }

    pub fn list(&self) -> Vec<Arc<Mounted>> {
        self.table.read().values().cloned().collect()
    }

    /// The engine mounted at the longest prefix of `path`, and the rest of the path.
    pub fn route(&self, path: &str) -> Option<(Arc<Mounted>, String)> {
        let table = self.table.read();
        let mut best: Option<&Arc<Mounted>> = None;
        for (prefix, m) in table.iter() {
            let matches = path.starts_with(prefix.as_str()) || path == prefix.trim_end_matches('/');
            if matches && best.is_none_or(|b| b.entry.path.len() < prefix.len()) {
                best = Some(m);
            }
        }
        best.map(|m| {
            let rest = path.get(m.entry.path.len()..).unwrap_or("").to_string();
            (m.clone(), rest)
        })
    }

    pub fn get(&self, path: &str) -> Option<Arc<Mounted>> {
        self.table.read().get(path).cloned()
    }

    /// Writes `table` in place of `before`, only if the stored table is still `before`:
    /// when another node changed it meanwhile, nothing is written and the caller is told
    /// to try again (by then this node has taken the other's table up).
    async fn persist(
        &self,
        before: &BTreeMap<String, Arc<Mounted>>,
        table: &BTreeMap<String, Arc<Mounted>>,
    ) -> Result<()> {
        let expected = table_json(before)?;
        let entries = table_json(table)?;
        self.barrier
            .transact(|tx| {
                let stored: serde_json::Value = tx
                    .get_json(MOUNTS_PATH)?
                    .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
                if stored != expected {
                    return Err(EngineError::Conflict(
                        "the mount table was changed on another node meanwhile; try again".into(),
                    ));
                }
                tx.put_json(MOUNTS_PATH, &entries)?;
                Ok(())
            })
            .await
    }

    /// Takes up the table another node wrote: entries this node has too keep what they
    /// hold (an engine's caches, a method's login throttle), new ones are built, and
    /// removed or changed ones are dropped.
    pub fn reload(&self) -> Result<()> {
        let _taking_up = self.taking_up.lock();
        let entries: Vec<MountEntry> = self.barrier.get_json(MOUNTS_PATH)?.unwrap_or_default();
        let before = self.table.read().clone();
        let table = rebuild_table(
            &before,
            entries,
            |e| &e.path,
            |m| &m.entry,
            |e| self.mounted(e),
        );
        for (path, old) in &before {
            if !table.get(path).is_some_and(|m| Arc::ptr_eq(m, old)) {
                old.backend.forget_keys();
            }
        }
        *self.table.write() = table;
        Ok(())
    }

    pub async fn mount(
        &self,
        path: &str,
        kind: &str,
        description: String,
        mut options: BTreeMap<String, String>,
        config: MountConfig,
    ) -> Result<MountEntry> {
        let path = normalize_mount_path(path)?;
        if RESERVED.iter().any(|r| path.starts_with(r)) {
            return Err(EngineError::bad(format!(
                "cannot mount at reserved path {path:?}"
            )));
        }
        let kind = EngineKind::parse(kind, &mut options)?;
        let _w = self.write_lock.lock().await;
        let before = self.table.read().clone();
        let mut table = before.clone();
        if let Some(existing) = table
            .keys()
            .find(|p| p.starts_with(path.as_str()) || path.starts_with(p.as_str()))
        {
            return Err(EngineError::bad(format!(
                "path is already in use at {existing}"
            )));
        }
        let uuid = uuid::Uuid::new_v4().to_string();
        let entry = MountEntry {
            path: path.clone(),
            kind,
            description,
            accessor: format!("{}_{}", kind.as_str(), &uuid[..8]),
            uuid,
            options,
            config,
            local: false,
            seal_wrap: false,
        };
        table.insert(path, self.mounted(entry.clone()));
        self.persist(&before, &table).await?;
        hold_committed(&self.table, &self.taking_up, &before, table);
        Ok(entry)
    }

    /// Removes a mount and every value stored below it.
    pub async fn unmount(&self, path: &str) -> Result<()> {
        let path = normalize_mount_path(path)?;
        let _w = self.write_lock.lock().await;
        let before = self.table.read().clone();
        let mut table = before.clone();
        let Some(removed) = table.remove(&path) else {
            return Err(EngineError::bad(format!("no matching mount at {path:?}")));
        };
        // The table goes first: once it is persisted nothing routes to the old data, so a
        // crash midway leaves only unreachable ciphertext, never a half-empty mount.
        self.persist(&before, &table).await?;
        hold_committed(&self.table, &self.taking_up, &before, table);
        removed.backend.forget_keys();
        let prefix = removed.entry.storage_prefix();
        let keys: Vec<String> = self
            .barrier
            .list(&prefix)?
            .into_iter()
            .map(|k| format!("{prefix}{k}"))
            .collect();
        for chunk in keys.chunks(1000) {
            let mut batch = self.barrier.batch()?;
            for k in chunk {
                batch.delete(k);
            }
            self.barrier.commit(batch).await?;
        }
        Ok(())
    }

    pub async fn tune(
        &self,
        path: &str,
        description: Option<String>,
        config: impl FnOnce(&mut MountConfig),
        options: BTreeMap<String, String>,
    ) -> Result<()> {
        let path = normalize_mount_path(path)?;
        let _w = self.write_lock.lock().await;
        let before = self.table.read().clone();
        let mut table = before.clone();
        let Some(current) = table.get(&path) else {
            return Err(EngineError::bad(format!("no mount at {path:?}")));
        };
        let mut entry = current.entry.clone();
        if let Some(d) = description {
            entry.description = d;
        }
        config(&mut entry.config);
        for (k, v) in options {
            if k == "version" && entry.kind == EngineKind::Kv {
                let current = entry
                    .options
                    .get("version")
                    .map(String::as_str)
                    .unwrap_or("1");
                match (current, v.as_str()) {
                    (c, n) if c == n => {}
                    ("1", "2") => {
                        return Err(EngineError::bad(
                            "upgrading a kv version 1 mount to version 2 is not supported: \
                             enable a new kv-v2 mount and copy the secrets into it",
                        ))
                    }
                    ("2", "1") => {
                        return Err(EngineError::bad(
                            "cannot downgrade mount from versioned to unversioned",
                        ))
                    }
                    _ => {
                        return Err(EngineError::bad(format!(
                            "invalid kv version {v:?}: use 1 or 2"
                        )))
                    }
                }
            }
            entry.options.insert(k, v);
        }
        let mounted = match &current.backend {
            // The same engine keeps serving: a second one would have its own key locks.
            Backend::Transit(t) => Arc::new(Mounted {
                entry,
                backend: Backend::Transit(t.clone()),
            }),
            Backend::Kv(_) => self.mounted(entry),
        };
        table.insert(path, mounted);
        self.persist(&before, &table).await?;
        hold_committed(&self.table, &self.taking_up, &before, table);
        Ok(())
    }
}

impl Backend {
    /// Drops cached key material (seal, unmount).
    fn forget_keys(&self) {
        if let Backend::Transit(t) = self {
            t.clear_cache();
        }
    }

    /// Periodic work of the engine: scheduled key rotations, returned as (key, new
    /// version) for the audit log.
    pub async fn tick(&self) -> Result<Vec<(String, u64)>> {
        if let Backend::Transit(t) = self {
            return t.rotate_due().await.map_err(EngineError::from);
        }
        Ok(Vec::new())
    }
}

/// A table's entries as stored.
fn table_json(table: &BTreeMap<String, Arc<Mounted>>) -> Result<serde_json::Value> {
    let entries: Vec<&MountEntry> = table.values().map(|m| &m.entry).collect();
    serde_json::to_value(entries).map_err(EngineError::internal)
}

/// The table `entries` describe: a mounted entry of `before` whose entry is unchanged is
/// kept with what it holds (an engine's caches, a method's login throttle); the others
/// are built.
pub(crate) fn rebuild_table<E: Serialize, M>(
    before: &BTreeMap<String, Arc<M>>,
    entries: Vec<E>,
    path: impl Fn(&E) -> &String,
    entry: impl Fn(&M) -> &E,
    build: impl Fn(E) -> Arc<M>,
) -> BTreeMap<String, Arc<M>> {
    let mut table = BTreeMap::new();
    for e in entries {
        let p = path(&e).clone();
        let kept = before
            .get(&p)
            .filter(|m| serde_json::to_value(entry(m)).ok() == serde_json::to_value(&e).ok())
            .cloned();
        table.insert(p, kept.unwrap_or_else(|| build(e)));
    }
    table
}
