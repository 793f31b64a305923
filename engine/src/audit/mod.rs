//! Audit devices, as Vault's: every authenticated request is logged before it runs and
//! again with its outcome, secrets HMAC'd under a salt kept behind the barrier, and a
//! request that no enabled device could log is refused (fail closed). Internal events
//! (keyring rotation, key rotation, destruction, sync) are logged the same way. Each file
//! is a hash chain (`chain.rs`) that `ironseal audit verify` checks offline.

pub mod chain;
mod file;
mod salt;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use self::file::FileDevice;
use self::salt::Salt;
use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::token::TokenEntry;

const TABLE_PATH: &str = "core/audit";
const SALT_PATH: &str = "core/audit-salt";

/// One enabled device as `sys/audit` shows and stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    sink: FileDevice,
}

struct Enabled {
    salt: Arc<Salt>,
    devices: Vec<Arc<Device>>,
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
    enabled: RwLock<Option<Arc<Enabled>>>,
    /// Serialises changes to the device table.
    write_lock: tokio::sync::Mutex<()>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl AuditBroker {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        AuditBroker {
            barrier,
            enabled: RwLock::new(None),
            write_lock: tokio::sync::Mutex::new(()),
        }
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
    /// enabled and refuses writes, so requests fail closed until it is fixed.
    pub async fn load(&self) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let salt = self.load_salt().await?;
        let table: Vec<DeviceConfig> = self.barrier.get_json(TABLE_PATH)?.unwrap_or_default();
        let devices = table
            .into_iter()
            .map(|config| {
                let path = Path::new(config.file_path().unwrap_or_default()).to_path_buf();
                let sink = FileDevice::open(&path).unwrap_or_else(|e| {
                    tracing::error!(device = %config.path, error = %e, "audit device cannot be opened; requests will be refused");
                    FileDevice::broken(&path, e)
                });
                Arc::new(Device { config, sink })
            })
            .collect();
        *self.enabled.write() = Some(Arc::new(Enabled {
            salt: Arc::new(salt),
            devices,
        }));
        Ok(())
    }

    pub fn clear(&self) {
        self.enabled.write().take();
    }

    async fn load_salt(&self) -> Result<Salt> {
        if let Some(bytes) = self.barrier.get(SALT_PATH)? {
            return Ok(Salt::new(bytes));
        }
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        hsm_bridge::fill_random(&mut bytes);
        let mut batch = self.barrier.batch()?;
        batch.put(SALT_PATH, &bytes)?;
        self.barrier.commit(batch).await?;
        Ok(Salt::new(bytes))
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
    /// so a device that cannot write is never enabled.
    pub async fn enable(&self, mut config: DeviceConfig) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let current = self.current()?;
        config.path = normalise(&config.path)?;
        if config.kind != "file" {
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
        let file_path = config
            .file_path()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| EngineError::bad("file_path is required"))?;
        if file_path == "stdout" || file_path == "discard" {
            return Err(EngineError::bad(format!(
                "file_path \"{file_path}\" is not supported: give a file"
            )));
        }
        let sink = FileDevice::open(Path::new(file_path))
            .map_err(|e| EngineError::bad(format!("sys/audit: {e}")))?;
        let mut devices = current.devices.clone();
        devices.push(Arc::new(Device { config, sink }));
        self.store(&devices).await?;
        self.swap(current, devices);
        Ok(())
    }

    pub async fn disable(&self, path: &str) -> Result<bool> {
        let _w = self.write_lock.lock().await;
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
        self.store(&devices).await?;
        self.swap(current, devices);
        Ok(true)
    }

    async fn store(&self, devices: &[Arc<Device>]) -> Result<()> {
        let table: Vec<&DeviceConfig> = devices.iter().map(|d| &d.config).collect();
        self.barrier.put_json(TABLE_PATH, &table).await
    }

    fn swap(&self, current: Arc<Enabled>, devices: Vec<Arc<Device>>) {
        *self.enabled.write() = Some(Arc::new(Enabled {
            salt: current.salt.clone(),
            devices,
        }));
    }

    /// SIGHUP: reopen every file (after log rotation). Returns the failures.
    pub fn reopen(&self) -> Vec<String> {
        let Ok(current) = self.current() else {
            return Vec::new();
        };
        current
            .devices
            .iter()
            .filter_map(|d| d.sink.reopen().err())
            .collect()
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

    /// Logs a request before it runs. An error means no device took it: refuse the
    /// request.
    pub fn log_request(
        &self,
        req: &RequestInfo,
        auth: Option<&TokenEntry>,
        error: Option<&str>,
    ) -> Result<()> {
        self.log("request", req, auth, None, error)
    }

    /// Logs a request's outcome: its HTTP status and, HMAC'd, its response body.
    pub fn log_response(
        &self,
        req: &RequestInfo,
        auth: Option<&TokenEntry>,
        status: u16,
        body: Option<&Value>,
        error: Option<&str>,
    ) -> Result<()> {
        self.log("response", req, auth, Some((status, body)), error)
    }

    fn log(
        &self,
        kind: &str,
        req: &RequestInfo,
        auth: Option<&TokenEntry>,
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
            salt.hash_strings(d);
        }
        let token = (!req.client_token.is_empty()).then(|| salt.hash(req.client_token));
        let response = response.map(|(status, body)| {
            let mut body = body.cloned();
            if let Some(b) = body.as_mut() {
                hash_response(salt, b);
            }
            json!({"status": status, "body": body})
        });
        let failures = enabled.write_each(kind, |device| {
            let accessor = auth.map(|a| {
                if device.config.hmac_accessor() {
                    salt.hash(&a.accessor)
                } else {
                    a.accessor.clone()
                }
            });
            let mut entry = Map::new();
            if let Some(a) = auth {
                entry.insert(
                    "auth".into(),
                    json!({
                        "client_token": token,
                        "accessor": accessor,
                        "display_name": a.display_name,
                        "policies": a.policies,
                        "token_policies": a.policies,
                        "token_type": "service",
                    }),
                );
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
        enabled.write_each("event", |_| {
            let mut entry = Map::new();
            entry.insert("event".into(), event.into());
            entry.insert("data".into(), fields.clone());
            entry
        });
    }
}

impl Enabled {
    /// Writes one entry of type `kind` to every device, `body` giving each its members
    /// beyond `time` and `type`; returns how many devices failed.
    fn write_each(&self, kind: &str, body: impl Fn(&Device) -> Map<String, Value>) -> usize {
        let mut failures = 0;
        for device in &self.devices {
            let mut entry = body(device);
            entry.insert("time".into(), now().into());
            entry.insert("type".into(), kind.into());
            if let Err(e) = device.sink.write(entry) {
                tracing::error!(device = %device.config.path, error = %e, kind, "audit write failed");
                failures += 1;
            }
        }
        failures
    }
}

/// Secrets in a response: everything under `data` and `auth` except the envelope's
/// non-secret bookkeeping fields, which Vault also leaves readable.
fn hash_response(salt: &Salt, body: &mut Value) {
    let Value::Object(map) = body else {
        salt.hash_strings(body);
        return;
    };
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "request_id" | "lease_id" | "renewable" | "lease_duration" | "warnings" | "errors"
            | "mount_type" | "wrap_info" => {}
            _ => salt.hash_strings(v),
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
