//! Audit devices, as Vault's: every authenticated request is logged before it runs and
//! again with its outcome, secrets HMAC'd under a salt kept behind the barrier, and a
//! request that no enabled device could log is refused (fail closed). Internal events
//! (keyring rotation, key rotation, destruction, sync) are logged the same way. Each file
//! is a hash chain (`chain.rs`) keyed with a secret behind the barrier.
//!
//! Durability: lines go to one writer thread, which appends everything queued so far to
//! each file in one write and syncs it once (group commit, as the storage write-ahead
//! log does); a request waits for its lines to be on disk, so an acknowledged request
//! always has its audit lines. After each sync the chain's head (seq + tag) is recorded
//! in storage, so a file cut short later is found (`verify`, and at the next open).
//!
//! Several nodes on one shared store: the device table is theirs in common, and a node
//! takes up a device another node enabled or disabled when storage raises the change.
//! The chains are each node's own: a file device writes a file per node (the node's
//! name before the file's extension) and each node records its own head, so no node
//! overwrites another's and `verify` checks the file of the node that answers.

pub mod chain;
pub mod entries;
mod file;
mod salt;
mod stream;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use zeroize::Zeroizing;

use self::chain::{ChainKey, Link};
use self::file::FileDevice;
use self::salt::Salt;
use self::stream::StreamDevice;
use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::token::TokenEntry;

pub(crate) const TABLE_PATH: &str = "core/audit";
const SALT_PATH: &str = "core/audit-salt";
const CHAIN_KEY_PATH: &str = "core/audit-chain-key";
/// `core/audit-head/<device path>`: the last synced link of each device's file.
const HEAD_PREFIX: &str = "core/audit-head/";
/// `core/audit-node-head/<node>/<device path>`: the same, per node, on a shared store.
const NODE_HEAD_PREFIX: &str = "core/audit-node-head/";
/// Upper bound on lines folded into one write and sync.
const MAX_GROUP: usize = 1024;

/// One enabled device as `sys/audit` shows and stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfig {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub local: bool,
}

impl DeviceConfig {
    fn file_path(&self) -> Option<&str> {
        self.options
            .get("file_path")
            .or_else(|| self.options.get("path"))
            .map(String::as_str)
    }

    /// Vault HMACs token accessors unless `hmac_accessor=false`.
    fn hmac_accessor(&self) -> bool {
        self.options.get("hmac_accessor").map(String::as_str) != Some("false")
    }
}

struct Device {
    config: DeviceConfig,
    sink: Sink,
}

/// Where a device's lines go.
enum Sink {
    File(FileDevice),
    /// `socket` and `syslog`.
    Stream(StreamDevice),
}

impl Sink {
    fn write_group(
        &self,
        entries: Vec<Map<String, Value>>,
        key: &ChainKey,
    ) -> std::result::Result<Link, String> {
        match self {
            Sink::File(f) => f.write_group(entries, key),
            Sink::Stream(s) => s.write_group(entries, key),
        }
    }

    fn link(&self) -> Link {
        match self {
            Sink::File(f) => f.link(),
            Sink::Stream(s) => s.link(),
        }
    }

    fn reopen(&self, key: &ChainKey) -> std::result::Result<(), String> {
        match self {
            Sink::File(f) => f.reopen(key),
            Sink::Stream(s) => s.reconnect(),
        }
    }
}

/// The device types `sys/audit` enables.
const KINDS: &[&str] = &["file", "socket", "syslog"];

struct Enabled {
    salt: Arc<Salt>,
    key: Arc<ChainKey>,
    devices: Vec<Arc<Device>>,
}

/// One line for the writer thread; `done` hears when it is on disk (events do not wait).
struct Job {
    device: Arc<Device>,
    key: Arc<ChainKey>,
    entry: Map<String, Value>,
    done: Option<oneshot::Sender<std::result::Result<(), String>>>,
}

/// Heads synced but not yet recorded in storage, for the recorder task.
#[derive(Default)]
struct Heads {
    pending: Mutex<BTreeMap<String, Link>>,
    notify: Notify,
}

impl Heads {
    fn publish(&self, device: &str, link: Link) {
        self.pending.lock().insert(device.to_string(), link);
        self.notify.notify_one();
    }
}

/// Where `node` (empty on a store no other node opens) records its head for `device`.
fn head_key(node: &str, device: &str) -> String {
    let device = device.trim_end_matches('/');
    if node.is_empty() {
        format!("{HEAD_PREFIX}{device}")
    } else {
        format!("{NODE_HEAD_PREFIX}{node}/{device}")
    }
}

/// The file `node` writes for a device configured with `file_path`: the path itself on a
/// store no other node opens, else the node's name before the extension
/// (`audit.log` -> `audit.NODE.log`), so nodes sharing a directory never share a file.
fn node_file(file_path: &Path, node: &str) -> PathBuf {
    if node.is_empty() {
        return file_path.to_path_buf();
    }
    let stem = file_path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match file_path.extension() {
        Some(ext) => format!("{stem}.{node}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{node}"),
    };
    file_path.with_file_name(name)
}

/// What `sys/audit-verify/:path` answers: the file checked with the chain key, and
/// compared with the head recorded in storage.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub device: String,
    pub file_path: String,
    #[serde(flatten)]
    pub report: chain::Report,
    pub stored_head: Option<Link>,
    /// Whether the chain passes through the stored head (false: the file was cut short
    /// or replaced since that head was recorded).
    pub stored_head_found: bool,
}

/// Who made a request, as its audit lines show it: the token's entry and, for an
/// attenuated Biscuit, the revocation id of its last block, which tells apart the
/// attenuations of one base token.
#[derive(Clone, Copy)]
pub struct AuthInfo<'a> {
    pub entry: &'a TokenEntry,
    pub attenuation: Option<&'a str>,
}

/// What a request looked like, for its audit lines.
pub struct RequestInfo<'a> {
    pub id: &'a str,
    pub operation: &'a str,
    pub path: &'a str,
    pub data: Option<&'a Map<String, Value>>,
    pub client_token: &'a str,
    pub remote_address: Option<&'a str>,
}

pub struct AuditBroker {
    barrier: Arc<Barrier>,
    /// This node's name in its files and heads; empty on a store no other node opens.
    node: String,
    enabled: RwLock<Option<Arc<Enabled>>>,
    /// Serialises changes to the device table.
    write_lock: tokio::sync::Mutex<()>,
    /// Another node changed the table while this node was changing it: taken up once
    /// the change in progress ends.
    table_stale: AtomicBool,
    jobs: mpsc::UnboundedSender<Job>,
    heads: Arc<Heads>,
    recorder: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Lines a device failed to write since start.
    failures: Arc<AtomicU64>,
}

/// The writer thread: takes everything queued, writes each device's share in one write
/// and one sync, then answers the waiters.
fn write_loop(mut rx: mpsc::UnboundedReceiver<Job>, heads: Arc<Heads>, failures: Arc<AtomicU64>) {
    while let Some(jobs) = crate::storage::next_group(&mut rx, MAX_GROUP) {
        type Group = (
            Arc<Device>,
            Arc<ChainKey>,
            Vec<Map<String, Value>>,
            Vec<Job>,
        );
        let mut groups: Vec<Group> = Vec::new();
        for mut job in jobs {
            let entry = std::mem::take(&mut job.entry);
            match groups.iter_mut().find(|g| Arc::ptr_eq(&g.0, &job.device)) {
                Some(g) => {
                    g.2.push(entry);
                    g.3.push(job);
                }
                None => groups.push((job.device.clone(), job.key.clone(), vec![entry], vec![job])),
            }
        }
        for (device, key, entries, waiters) in groups {
            let result = device.sink.write_group(entries, &key);
            match &result {
                Ok(link) => heads.publish(&device.config.path, link.clone()),
                Err(e) => {
                    failures.fetch_add(waiters.len() as u64, Ordering::Relaxed);
                    tracing::error!(device = %device.config.path, error = %e, "audit write failed")
                }
            }
            for w in waiters {
                if let Some(done) = w.done {
                    let _ = done.send(result.clone().map(|_| ()));
                }
            }
        }
    }
}

/// Reads a file up to a fixed length through its own descriptor, whatever is appended
/// meanwhile.
struct Snapshot {
    file: std::fs::File,
    pos: u64,
    end: u64,
}

impl Read for Snapshot {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A file in the store's directory is refused unless it already is an audit log there
/// (non-empty; `file::open` then checks it ends with a chain line): a new or empty file
/// there may be the store's write-ahead log, emptied at every checkpoint.
fn refuse_in_data_dir(file_path: &Path, data_dir: &Path) -> Result<()> {
    let resolved = match std::fs::canonicalize(file_path) {
        Ok(p) => Some(p),
        // Not there yet: where it would be created.
        Err(_) => match (file_path.parent(), file_path.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::canonicalize(parent).ok().map(|p| p.join(name))
            }
            _ => None,
        },
    };
    let Some(resolved) = resolved else {
        return Ok(()); // opening it fails with its own error
    };
    let empty = std::fs::metadata(&resolved).map_or(true, |m| m.len() == 0);
    if resolved.starts_with(data_dir) && empty {
        return Err(EngineError::bad(format!(
            "sys/audit: {} is in the appliance's data directory {}: give a file outside it",
            file_path.display(),
            data_dir.display()
        )));
    }
    Ok(())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl AuditBroker {
    /// `node`: this node's name on a shared store, empty otherwise.
    pub fn new(barrier: Arc<Barrier>, node: String) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let heads = Arc::new(Heads::default());
        let loop_heads = heads.clone();
        let failures = Arc::new(AtomicU64::new(0));
        let loop_failures = failures.clone();
        let spawned = std::thread::Builder::new()
            .name("audit-write".into())
            .spawn(move || write_loop(rx, loop_heads, loop_failures));
        if let Err(e) = spawned {
            // Every audited request then fails closed, as with a device that cannot write.
            tracing::error!(error = %e, "could not start the audit writer thread");
        }
        AuditBroker {
            barrier,
            node,
            enabled: RwLock::new(None),
            write_lock: tokio::sync::Mutex::new(()),
            table_stale: AtomicBool::new(false),
            jobs,
            heads,
            recorder: Mutex::new(None),
            failures,
        }
    }

    /// Lines a device failed to write since start (each refused a request, unless
    /// another device took it, or lost an event).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Enabled devices; 0 while sealed.
    pub fn device_count(&self) -> usize {
        self.enabled.read().as_ref().map_or(0, |e| e.devices.len())
    }

    /// True when at least one device is enabled: the request path skips all audit work
    /// otherwise.
    pub fn is_active(&self) -> bool {
        self.enabled
            .read()
            .as_ref()
            .is_some_and(|e| !e.devices.is_empty())
    }

    /// Opens the stored devices after unseal. A device whose file cannot be opened stays
    /// enabled and refuses writes, so requests fail closed until it is fixed. A file that
    /// ends before the head recorded in storage (cut short while the appliance was down)
    /// gets an event saying so, so verification keeps reporting it.
    pub async fn load(&self) -> Result<()> {
        let result = self.load_locked().await;
        self.take_up_deferred();
        result
    }

    async fn load_locked(&self) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let salt = Salt::new(self.load_secret(SALT_PATH).await?);
        let key = Arc::new(ChainKey::new(self.load_secret(CHAIN_KEY_PATH).await?));
        let table: Vec<DeviceConfig> = self.barrier.get_json(TABLE_PATH)?.unwrap_or_default();
        let mut devices = Vec::new();
        for config in table {
            let stored: Option<Link> =
                self.barrier.get_json(&head_key(&self.node, &config.path))?;
            let sink = if config.kind == "file" {
                self.load_file(&config, stored, &key)
            } else {
                self.stream_sink(&config, stored)
            };
            devices.push(Arc::new(Device { config, sink }));
        }
        *self.enabled.write() = Some(Arc::new(Enabled {
            salt: Arc::new(salt),
            key,
            devices,
        }));
        self.start_recorder();
        Ok(())
    }

    /// A socket or syslog device whose chain goes on from `stored`, the last head
    /// recorded. A receiver that is down now is retried at each write, which fails until
    /// it is back.
    fn stream_sink(&self, config: &DeviceConfig, stored: Option<Link>) -> Sink {
        let link = stored.unwrap_or_else(Link::genesis);
        match StreamDevice::configure(&config.kind, &config.options, link) {
            Ok(device) => {
                if let Err(e) = device.check() {
                    tracing::error!(device = %config.path, error = %e, "audit device cannot deliver; requests will be refused until it can");
                }
                Sink::Stream(device)
            }
            Err(e) => {
                tracing::error!(device = %config.path, error = %e, "audit device is misconfigured; requests will be refused");
                Sink::File(FileDevice::broken(Path::new(""), e))
            }
        }
    }

    /// This node's file for a file device.
    fn local_file(&self, config: &DeviceConfig) -> PathBuf {
        node_file(
            Path::new(config.file_path().unwrap_or_default()),
            &self.node,
        )
    }

    /// Opens a file device's file at unseal, recording there when it ends before the
    /// head kept in storage.
    fn load_file(&self, config: &DeviceConfig, stored: Option<Link>, key: &ChainKey) -> Sink {
        let path = self.local_file(config);
        let sink = match file::open(&path, key, file::Tail::Cut) {
            Ok(opened) => FileDevice::new(&path, opened),
            Err(e) => {
                tracing::error!(device = %config.path, error = %e, "audit device cannot be opened; requests will be refused");
                FileDevice::broken(&path, e)
            }
        };
        let link = sink.link();
        let behind = stored.filter(|s| s.seq > link.seq || (s.seq == link.seq && *s != link));
        if let Some(stored) = behind.filter(|_| sink.is_open()) {
            tracing::error!(device = %config.path, stored_seq = stored.seq, file_seq = link.seq, "the audit file ends before the head recorded in storage: it was cut short or replaced");
            let mut entry = file::with_time(event_entry(
                chain::BEHIND_EVENT,
                json!({"stored_seq": stored.seq, "stored_hash": stored.hash, "file_seq": link.seq, "file_hash": link.hash}),
            ));
            entry.insert("type".into(), "event".into());
            if let Err(e) = sink.write_group(vec![entry], key) {
                tracing::error!(device = %config.path, error = %e, "audit write failed");
            }
        }
        if sink.is_open() {
            self.heads.publish(&config.path, sink.link());
        }
        Sink::File(sink)
    }

    /// Records synced heads in storage, newest per device, as they come.
    fn start_recorder(&self) {
        let heads = self.heads.clone();
        let barrier = self.barrier.clone();
        let node = self.node.clone();
        let task = tokio::spawn(async move {
            loop {
                heads.notify.notified().await;
                let pending = std::mem::take(&mut *heads.pending.lock());
                if pending.is_empty() {
                    continue;
                }
                let committed = async {
                    let mut batch = barrier.batch()?;
                    for (device, link) in &pending {
                        batch.put_json(&head_key(&node, device), link)?;
                    }
                    barrier.commit(batch).await
                };
                if let Err(e) = committed.await {
                    tracing::warn!(error = %e, "could not record the audit chain heads");
                }
            }
        });
        if let Some(old) = self.recorder.lock().replace(task) {
            old.abort();
        }
    }

    pub fn clear(&self) {
        self.enabled.write().take();
        if let Some(task) = self.recorder.lock().take() {
            task.abort();
        }
    }

    /// A 32-byte secret kept behind the barrier, made on first use.
    async fn load_secret(&self, path: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.barrier
            .get_or_create(path, crate::barrier::random_secret)
            .await
    }

    fn current(&self) -> Result<Arc<Enabled>> {
        self.enabled.read().clone().ok_or(EngineError::Sealed)
    }

    pub fn list(&self) -> Result<Vec<DeviceConfig>> {
        Ok(self
            .current()?
            .devices
            .iter()
            .map(|d| d.config.clone())
            .collect())
    }

    /// `sys/audit/:path`: the file is opened (and created) before the device is stored,
    /// so a device that cannot write is never enabled. Only a new or empty file, or an
    /// audit log this appliance wrote, is taken: the daemon can write its own store, log
    /// and keys, and an audit line appended to one of those would corrupt it.
    pub async fn enable(&self, config: DeviceConfig) -> Result<()> {
        let result = self.enable_locked(config).await;
        self.take_up_deferred();
        result
    }

    async fn enable_locked(&self, mut config: DeviceConfig) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.take_up_table()?;
        let current = self.current()?;
        config.path = normalise(&config.path)?;
        if !KINDS.contains(&config.kind.as_str()) {
            return Err(EngineError::bad(format!(
                "unknown backend type: \"{}\"",
                config.kind
            )));
        }
        if current.devices.iter().any(|d| d.config.path == config.path) {
            return Err(EngineError::bad(format!(
                "path already in use: \"{}\"",
                config.path
            )));
        }
        let sink = if config.kind == "file" {
            self.open_new_file(&config, &current.key)?
        } else {
            // Delivered once now, as Vault's test message is: a device that cannot
            // deliver is never enabled.
            let device = StreamDevice::configure(&config.kind, &config.options, Link::genesis())
                .map_err(|e| EngineError::bad(format!("sys/audit: {e}")))?;
            device
                .check()
                .map_err(|e| EngineError::bad(format!("sys/audit: {e}")))?;
            Sink::Stream(device)
        };
        let head = sink.link();
        let mut devices = current.devices.clone();
        let device_path = config.path.clone();
        devices.push(Arc::new(Device { config, sink }));
        self.persist(&current.devices, &devices, &[]).await?;
        // Replaces any head left by an earlier device at this path.
        self.heads.publish(&device_path, head);
        self.swap(current, devices);
        Ok(())
    }

    /// A file device's file, opened (and created) before the device is stored.
    fn open_new_file(&self, config: &DeviceConfig, key: &ChainKey) -> Result<Sink> {
        let file_path = config
            .file_path()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| EngineError::bad("file_path is required"))?;
        if file_path == "stdout" || file_path == "discard" {
            return Err(EngineError::bad(format!(
                "file_path \"{file_path}\" is not supported: give a file"
            )));
        }
        let path = self.local_file(config);
        if let Some(dir) = self.barrier.storage().data_dir() {
            refuse_in_data_dir(&path, dir)?;
        }
        let opened = file::open(&path, key, file::Tail::Refuse)
            .map_err(|e| EngineError::bad(format!("sys/audit: {e}")))?;
        Ok(Sink::File(FileDevice::new(&path, opened)))
    }

    pub async fn disable(&self, path: &str) -> Result<bool> {
        let result = self.disable_locked(path).await;
        self.take_up_deferred();
        result
    }

    async fn disable_locked(&self, path: &str) -> Result<bool> {
        let _w = self.write_lock.lock().await;
        self.take_up_table()?;
        let current = self.current()?;
        let path = normalise(path)?;
        let devices: Vec<_> = current
            .devices
            .iter()
            .filter(|d| d.config.path != path)
            .cloned()
            .collect();
        if devices.len() == current.devices.len() {
            return Ok(false);
        }
        // Every node's head for the device goes with it.
        let mut heads = vec![head_key("", &path)];
        let device = path.trim_end_matches('/');
        for key in self.barrier.list(NODE_HEAD_PREFIX)? {
            if key.split_once('/').is_some_and(|(_, d)| d == device) {
                heads.push(format!("{NODE_HEAD_PREFIX}{key}"));
            }
        }
        self.persist(&current.devices, &devices, &heads).await?;
        self.heads.pending.lock().remove(&path);
        self.swap(current, devices);
        Ok(true)
    }

    /// Writes the table of `devices` in place of `before` (and drops `heads`), only if
    /// the stored table is still `before`: when another node changed it meanwhile,
    /// nothing is written and the caller is told to try again.
    async fn persist(
        &self,
        before: &[Arc<Device>],
        devices: &[Arc<Device>],
        heads: &[String],
    ) -> Result<()> {
        let expected: Vec<&DeviceConfig> = before.iter().map(|d| &d.config).collect();
        let table: Vec<&DeviceConfig> = devices.iter().map(|d| &d.config).collect();
        self.barrier
            .transact(|tx| {
                let stored: Vec<DeviceConfig> = tx.get_json(TABLE_PATH)?.unwrap_or_default();
                if !stored.iter().eq(expected.iter().copied()) {
                    return Err(EngineError::Conflict(
                        "the audit device table was changed on another node meanwhile; try again"
                            .into(),
                    ));
                }
                tx.put_json(TABLE_PATH, &table)?;
                for head in heads {
                    tx.delete(head);
                }
                Ok(())
            })
            .await
    }

    /// Another node changed the device table: takes it up now, or, while a change on
    /// this node is in progress, once it ends.
    pub fn reload(&self) -> Result<()> {
        match self.write_lock.try_lock() {
            Ok(_w) => self.take_up_table(),
            Err(_) => {
                self.table_stale.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    /// Takes up a change another node made while this node's own was in progress. The
    /// flag is only set while the write lock is held, and every holder looks at it
    /// after releasing the lock, so no change is left behind.
    fn take_up_deferred(&self) {
        if self.table_stale.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.reload() {
                tracing::warn!(error = %e, "could not take up the audit devices another node changed");
            }
        }
    }

    /// Makes the enabled devices the stored table's, with the write lock held: devices
    /// this node has too keep their open file and chain, new ones are opened as an
    /// enable opens them (a file that is not this appliance's audit log is refused, and
    /// the device then refuses requests on this node), removed ones are dropped.
    fn take_up_table(&self) -> Result<()> {
        let Some(current) = self.enabled.read().clone() else {
            return Ok(());
        };
        let table: Vec<DeviceConfig> = self.barrier.get_json(TABLE_PATH)?.unwrap_or_default();
        let mut devices = Vec::new();
        for config in table {
            if let Some(kept) = current.devices.iter().find(|d| d.config == config) {
                devices.push(kept.clone());
                continue;
            }
            let sink = if config.kind == "file" {
                self.open_new_file(&config, &current.key)
                    .unwrap_or_else(|e| {
                        tracing::error!(device = %config.path, error = %e, "audit device enabled on another node cannot be opened here; requests will be refused");
                        Sink::File(FileDevice::broken(&self.local_file(&config), e.to_string()))
                    })
            } else {
                self.stream_sink(&config, None)
            };
            if !matches!(&sink, Sink::File(f) if !f.is_open()) {
                self.heads.publish(&config.path, sink.link());
            }
            devices.push(Arc::new(Device { config, sink }));
        }
        for gone in &current.devices {
            if !devices.iter().any(|d| d.config.path == gone.config.path) {
                self.heads.pending.lock().remove(&gone.config.path);
            }
        }
        self.swap(current, devices);
        Ok(())
    }

    fn swap(&self, current: Arc<Enabled>, devices: Vec<Arc<Device>>) {
        *self.enabled.write() = Some(Arc::new(Enabled {
            salt: current.salt.clone(),
            key: current.key.clone(),
            devices,
        }));
    }

    /// SIGHUP: reopen every file (after log rotation). Returns the failures. The head
    /// recorded in storage moves to the reopened file's.
    pub fn reopen(&self) -> Vec<String> {
        let Ok(current) = self.current() else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        for d in &current.devices {
            match d.sink.reopen(&current.key) {
                Ok(_) => self.heads.publish(&d.config.path, d.sink.link()),
                Err(e) => failures.push(e),
            }
        }
        failures
    }

    /// `sys/audit-verify/:path` (an Ironseal extension): checks the device's file with the
    /// chain key, as far as it is synced, and whether it passes through the head recorded
    /// in storage.
    pub async fn verify(&self, path: &str) -> Result<VerifyReport> {
        let current = self.current()?;
        let path = normalise(path)?;
        let device = current
            .devices
            .iter()
            .find(|d| d.config.path == path)
            .cloned()
            .ok_or_else(|| EngineError::bad(format!("unknown audit backend {path}")))?;
        let Sink::File(sink) = &device.sink else {
            return Err(EngineError::bad(format!(
                "audit device {path} sends its lines away: verify the receiver's copy with `ironseal audit verify FILE`"
            )));
        };
        let (file, end) = sink
            .snapshot()
            .map_err(|e| EngineError::Internal(format!("audit device {path}: {e}")))?;
        let stored: Option<Link> = self.barrier.get_json(&head_key(&self.node, &path))?;
        let key = current.key.clone();
        let expected = stored.clone();
        let report = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::new(Snapshot { file, pos: 0, end });
            chain::verify(reader, Some(&key), expected.as_ref())
        })
        .await
        .map_err(EngineError::internal)?
        .map_err(|e| EngineError::Internal(format!("audit device {path}: cannot read: {e}")))?;
        Ok(VerifyReport {
            device: path,
            file_path: sink.path().display().to_string(),
            stored_head_found: stored.is_none() || report.head_found,
            stored_head: stored,
            report,
        })
    }

    /// The device's latest lines matching `query`, newest first (the first enabled
    /// device when the query names none), as far as the file is synced.
    pub async fn entries(&self, query: entries::EntryQuery) -> Result<Vec<entries::Entry>> {
        let current = self.current()?;
        let device = match &query.device {
            Some(p) => {
                let path = normalise(p)?;
                current.devices.iter().find(|d| d.config.path == path)
            }
            None => current.devices.first(),
        }
        .cloned()
        .ok_or_else(|| match &query.device {
            Some(p) => EngineError::bad(format!("unknown audit backend {p}")),
            None => EngineError::bad("no audit device is enabled"),
        })?;
        let path = device.config.path.clone();
        let Sink::File(sink) = &device.sink else {
            return Err(EngineError::bad(format!(
                "audit device {path} sends its lines away: read them where they are received"
            )));
        };
        let (file, end) = sink
            .snapshot()
            .map_err(|e| EngineError::Internal(format!("audit device {path}: {e}")))?;
        tokio::task::spawn_blocking(move || {
            query.read(std::io::BufReader::new(Snapshot { file, pos: 0, end }))
        })
        .await
        .map_err(EngineError::internal)?
        .map_err(|e| EngineError::Internal(format!("audit device {path}: cannot read: {e}")))
    }

    /// `sys/audit-hash/:path`: the HMAC this device writes for `input`.
    pub fn hash(&self, path: &str, input: &str) -> Result<String> {
        let current = self.current()?;
        let path = normalise(path)?;
        if !current.devices.iter().any(|d| d.config.path == path) {
            return Err(EngineError::bad(format!("unknown audit backend {path}")));
        }
        Ok(current.salt.hash(input))
    }

    /// Logs a request before it runs, and returns once the line is on disk. An error
    /// means no device took it: refuse the request.
    pub async fn log_request(
        &self,
        req: &RequestInfo<'_>,
        auth: Option<AuthInfo<'_>>,
        error: Option<&str>,
    ) -> Result<()> {
        self.log("request", req, auth, None, error).await
    }

    /// Logs a request's outcome (its HTTP status and, HMAC'd, its response body), and
    /// returns once the line is on disk.
    pub async fn log_response(
        &self,
        req: &RequestInfo<'_>,
        auth: Option<AuthInfo<'_>>,
        status: u16,
        body: Option<&Value>,
        error: Option<&str>,
    ) -> Result<()> {
        self.log("response", req, auth, Some((status, body)), error)
            .await
    }

    async fn log(
        &self,
        kind: &str,
        req: &RequestInfo<'_>,
        auth: Option<AuthInfo<'_>>,
        response: Option<(u16, Option<&Value>)>,
        error: Option<&str>,
    ) -> Result<()> {
        let Some(enabled) = self.enabled.read().clone() else {
            return Ok(());
        };
        if enabled.devices.is_empty() {
            return Ok(());
        }
        // Everything but the accessor is the same for every device: hash it once.
        let salt = &enabled.salt;
        let mut data = req.data.map(|d| Value::Object(d.clone()));
        if let Some(d) = data.as_mut() {
            salt.hash_leaves(d);
        }
        let token = (!req.client_token.is_empty()).then(|| salt.hash(req.client_token));
        let response = response.map(|(status, body)| {
            let mut body = body.cloned();
            if let Some(b) = body.as_mut() {
                hash_response(salt, b);
            }
            json!({"status": status, "body": body})
        });
        let waiting = self.enqueue(&enabled, kind, true, |device| {
            // The attenuation id names a token as its accessor does (it cannot be used
            // as one), so it is hashed when the accessor is.
            let identify = |s: &str| {
                if device.config.hmac_accessor() {
                    salt.hash(s)
                } else {
                    s.to_string()
                }
            };
            let accessor = auth.map(|a| identify(&a.entry.accessor));
            let mut entry = Map::new();
            if let Some(a) = auth {
                let e = a.entry;
                let mut auth = json!({
                    "client_token": token,
                    "accessor": accessor,
                    "display_name": e.display_name,
                    "policies": e.policies,
                    "token_policies": e.policies,
                    "token_type": "service",
                });
                if let Some(id) = a.attenuation {
                    auth["attenuation_id"] = identify(id).into();
                }
                entry.insert("auth".into(), auth);
            }
            entry.insert(
                "request".into(),
                json!({
                    "id": req.id,
                    "operation": req.operation,
                    "path": req.path,
                    "client_token": token,
                    "client_token_accessor": accessor,
                    "data": data,
                    "remote_address": req.remote_address,
                    "namespace": {"id": "root"},
                }),
            );
            if let Some(r) = &response {
                entry.insert("response".into(), r.clone());
            }
            entry.insert("error".into(), error.unwrap_or_default().into());
            entry
        });
        let mut failures = 0;
        for wait in waiting {
            match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => failures += 1,
                Err(_) => {
                    tracing::error!(kind, "the audit writer is gone");
                    failures += 1;
                }
            }
        }
        if failures == enabled.devices.len() {
            return Err(EngineError::Internal(
                "no audit device could record the request".into(),
            ));
        }
        Ok(())
    }

    /// An internal key event (rotation, destruction, sync), with no caller. Failing to
    /// record one is logged; the event itself has already happened.
    pub fn event(&self, event: &str, fields: Value) {
        let Some(enabled) = self.enabled.read().clone() else {
            return;
        };
        self.enqueue(&enabled, "event", false, |_| {
            event_entry(event, fields.clone())
        });
    }

    /// Queues one entry of type `kind` for every device, `body` giving each its members
    /// beyond `time` and `type`; with `wait`, returns a receiver per device that hears
    /// when its line is on disk (or why not).
    fn enqueue(
        &self,
        enabled: &Enabled,
        kind: &str,
        wait: bool,
        body: impl Fn(&Device) -> Map<String, Value>,
    ) -> Vec<oneshot::Receiver<std::result::Result<(), String>>> {
        let mut waiting = Vec::new();
        for device in &enabled.devices {
            let mut entry = body(device);
            entry.insert("time".into(), now().into());
            entry.insert("type".into(), kind.into());
            // Lines several nodes send to one receiver tell their chains apart.
            if !self.node.is_empty() {
                entry.insert("node".into(), self.node.clone().into());
            }
            let (done, heard) = if wait {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let job = Job {
                device: device.clone(),
                key: enabled.key.clone(),
                entry,
                done,
            };
            // A closed channel drops `done`, so the waiter hears an error: fail closed.
            let _ = self.jobs.send(job);
            waiting.extend(heard);
        }
        waiting
    }
}

/// An internal event's entry, without `time` and `type`.
fn event_entry(event: &str, fields: Value) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("event".into(), event.into());
    entry.insert("data".into(), fields);
    entry
}

/// Secrets in a response: everything under `data` and `auth` except the envelope's
/// non-secret bookkeeping fields, which Vault also leaves readable.
fn hash_response(salt: &Salt, body: &mut Value) {
    let Value::Object(map) = body else {
        salt.hash_leaves(body);
        return;
    };
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "request_id" | "lease_id" | "renewable" | "lease_duration" | "warnings" | "errors"
            | "mount_type" | "wrap_info" => {}
            _ => salt.hash_leaves(v),
        }
    }
}

fn normalise(path: &str) -> Result<String> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.contains("..") {
        return Err(EngineError::bad("a device path is required"));
    }
    Ok(format!("{p}/"))
}
