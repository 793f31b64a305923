//! Managed keys (`/api/v1/keys`): named, versioned keys whose material never leaves the
//! appliance. With an HSM root of trust, RSA/EC/AES versions are generated inside the HSM
//! and stored only as blobs wrapped by the HSM root key; otherwise, and always for
//! ML-DSA/ML-KEM, they are generated in memory and stored under the barrier.
//!
//! Storage (all under the barrier):
//! - `keys/meta/<id>`: the [`ManagedKey`] record (versions, states, public keys);
//! - `keys/material/<id>/<version>`: a version's [`StoredMaterial`];
//! - `keys/name/<name>`: the id, so names stay unique.
//!
//! Destruction is scheduled with a pending window; [`KeyStore::tidy`] (from
//! `Core::tick`) deletes the record, every version's material and the key's cloud exports
//! (their records, credentials and sync jobs) once it has passed.
//!
//! Whether a key may be exported to a cloud provider (`exportable`, and for AES-256
//! `allowUnwrappedExport`) is decided at creation only, so that no later call can move
//! an HSM-bound key out; a rotation queues the new version's auto-syncs in its own
//! transaction (`crate::cloud_exports::outbox`).

pub mod error;
pub mod material;
pub mod model;
pub mod scheme;

use std::collections::HashMap;
use std::sync::Arc;

use hsm_bridge::RootOfTrust;
use parking_lot::RwLock;
use time::OffsetDateTime;
use zeroize::Zeroizing;

pub use error::KeyError;
pub use model::{
    Algorithm, CreateKey, KeyPage, KeyState, KeyVersion, ListKeys, ManagedKey, Origin, Protection,
    StoredMaterial, Usage, VersionState, ALGORITHMS,
};

use crate::barrier::{Barrier, BarrierTx};
use crate::storage::IsConflict;
use material::Loaded;
use scheme::{CipherScheme, SignScheme};

pub(crate) const META_PREFIX: &str = "keys/meta/";
pub(crate) const MATERIAL_PREFIX: &str = "keys/material/";
const NAME_PREFIX: &str = "keys/name/";

/// Largest message to sign or verify, and plaintext to encrypt.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Bounds of the destruction pending window.
pub const MIN_PENDING_WINDOW: u64 = 1;
pub const MAX_PENDING_WINDOW: u64 = 30 * 24 * 3600;
pub const DEFAULT_PENDING_WINDOW: u64 = 7 * 24 * 3600;
/// Parsed keys kept in memory; past this the cache starts over.
const LOADED_MAX: usize = 4096;
pub const MAX_NAME_LEN: usize = 128;
pub const MAX_LABELS: usize = 64;

type Result<T, E = KeyError> = std::result::Result<T, E>;

impl IsConflict for KeyError {
    fn is_conflict(&self) -> bool {
        matches!(self, KeyError::Engine(e) if e.is_conflict())
    }
}

pub struct KeyStore {
    barrier: Arc<Barrier>,
    loaded: RwLock<HashMap<(uuid::Uuid, u32), Arc<Loaded>>>,
    /// Serialises read-modify-write of key records.
    write_lock: tokio::sync::Mutex<()>,
    /// When the next scheduled destruction is due: None until the first scan after
    /// unseal, then Some(earliest, if any), so `tidy` scans only when something is due.
    next_due: parking_lot::Mutex<Option<Option<OffsetDateTime>>>,
}

/// What a signing or encryption answered, and with which version.
pub struct Output {
    pub data: Vec<u8>,
    pub version: u32,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::invalid(
            "INVALID_NAME",
            format!(
                "a key name is 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '-', '_' and '.'"
            ),
        ))
    }
}

impl KeyStore {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        KeyStore {
            barrier,
            loaded: RwLock::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
            next_due: parking_lot::Mutex::new(None),
        }
    }

    /// Forgets every parsed key and the destruction schedule; called when the appliance
    /// seals, and when another node changed a key (destroyed it, scheduled it).
    pub fn clear(&self) {
        self.loaded.write().clear();
        *self.next_due.lock() = None;
    }

    fn meta_path(id: &uuid::Uuid) -> String {
        format!("{META_PREFIX}{id}")
    }

    fn material_path(id: &uuid::Uuid, version: u32) -> String {
        format!("{MATERIAL_PREFIX}{id}/{version}")
    }

    /// Every stored key, in no particular order.
    fn stored_keys(&self) -> crate::error::Result<Vec<ManagedKey>> {
        let mut keys = Vec::new();
        for id in self.barrier.list(META_PREFIX)? {
            let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
                continue;
            };
            if let Some(key) = self
                .barrier
                .get_json::<ManagedKey>(&Self::meta_path(&uuid))?
            {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Names of the keys with a version held by the HSM (stored wrapped by its root
    /// key): they live only as long as that HSM seal does.
    pub fn hsm_bound(&self) -> crate::error::Result<Vec<String>> {
        Ok(self
            .stored_keys()?
            .into_iter()
            .filter(|key| key.versions.iter().any(|v| v.protection == Protection::Hsm))
            .map(|key| key.name)
            .collect())
    }

    pub fn parse_id(id: &str) -> Result<uuid::Uuid> {
        uuid::Uuid::parse_str(id).map_err(|_| {
            KeyError::invalid("INVALID_KEY_ID", format!("{id:?} is not a key id (a UUID)"))
        })
    }

    pub fn get(&self, id: &uuid::Uuid) -> Result<ManagedKey> {
        self.barrier
            .get_json::<ManagedKey>(&Self::meta_path(id))?
            .ok_or_else(|| KeyError::NotFound(id.to_string()))
    }

    pub async fn create(&self, req: CreateKey, root: Arc<dyn RootOfTrust>) -> Result<ManagedKey> {
        let usage = self.check_create(&req)?;
        let (stored, public, protection) = generate(req.algorithm, req.exportable, root).await?;
        self.insert(req, usage, stored, public, protection, Origin::Generated)
            .await
    }

    /// A new key whose first version is `secret`, brought in from outside (unwrapped or
    /// decapsulated): AES-256 only. It is stored under the barrier as a software version
    /// whatever the root of trust; importing it into an HSM that holds the other keys
    /// would need the HSM to unwrap it, which is not done yet.
    pub async fn import(&self, req: CreateKey, secret: Zeroizing<Vec<u8>>) -> Result<ManagedKey> {
        let usage = self.check_create(&req)?;
        let stored = material::import(req.algorithm, &secret)?;
        self.insert(
            req,
            usage,
            stored,
            None,
            Protection::Software,
            Origin::Imported,
        )
        .await
    }

    /// Checks a creation's name (valid, not taken) and labels; the usage it asks for, or
    /// the default.
    fn check_create(&self, req: &CreateKey) -> Result<Usage> {
        validate_name(&req.name)?;
        if req.exportable && req.algorithm.is_post_quantum() {
            return Err(KeyError::invalid(
                "ALGORITHM_NOT_EXPORTABLE",
                crate::cloud_exports::POST_QUANTUM_NOT_EXPORTABLE,
            ));
        }
        if req.allow_unwrapped_export && !(req.exportable && req.algorithm == Algorithm::Aes256) {
            return Err(KeyError::invalid(
                "INVALID_FIELD",
                "\"allowUnwrappedExport\" is only for AES_256 keys created with \"exportable\": true",
            ));
        }
        if req.labels.len() > MAX_LABELS
            || req
                .labels
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 63 || v.len() > 255)
        {
            return Err(KeyError::invalid(
                "INVALID_LABELS",
                format!("labels: at most {MAX_LABELS}, keys 1 to 63 characters, values up to 255"),
            ));
        }
        let usage = match req.usage {
            Some(u) if !req.algorithm.usages().contains(&u) => {
                return Err(KeyError::invalid(
                    "INVALID_USAGE",
                    format!(
                        "{} keys cannot be used for {}",
                        req.algorithm.as_str(),
                        u.as_str()
                    ),
                ))
            }
            Some(u) => u,
            None => req.algorithm.usages()[0],
        };
        // Checked again when stored; here so that a taken name costs no key generation.
        if self
            .barrier
            .get(&format!("{NAME_PREFIX}{}", req.name))?
            .is_some()
        {
            return Err(KeyError::NameTaken(req.name.clone()));
        }
        Ok(usage)
    }

    /// Stores a new key with its first version.
    async fn insert(
        &self,
        req: CreateKey,
        usage: Usage,
        stored: StoredMaterial,
        public: Option<Vec<u8>>,
        protection: Protection,
        origin: Origin,
    ) -> Result<ManagedKey> {
        let name_path = format!("{NAME_PREFIX}{}", req.name);
        let algorithm = req.algorithm;
        let _w = self.write_lock.lock().await;
        if self.barrier.get(&name_path)?.is_some() {
            return Err(KeyError::NameTaken(req.name));
        }
        let created = now();
        let key = ManagedKey {
            id: uuid::Uuid::new_v4(),
            name: req.name,
            algorithm,
            usage,
            labels: req.labels,
            create_time: created,
            state: KeyState::Enabled,
            destroy_time: None,
            primary_version: 1,
            exportable: req.exportable,
            allow_unwrapped_export: req.allow_unwrapped_export,
            versions: vec![KeyVersion {
                version: 1,
                state: VersionState::Enabled,
                create_time: created,
                protection,
                origin,
                public_key: public,
            }],
        };
        self.barrier
            .transact(|tx| {
                // The name's absence is a condition of the commit: two creates of one
                // name, whichever node they reach, cannot both succeed.
                if tx.get(&name_path)?.is_some() {
                    return Err(KeyError::NameTaken(key.name.clone()));
                }
                tx.put_json(&Self::meta_path(&key.id), &key)?;
                tx.put_json(&Self::material_path(&key.id, 1), &stored)?;
                tx.put(&name_path, key.id.to_string().as_bytes())?;
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %key.id, algorithm = algorithm.as_str(), protection = ?protection, origin = ?origin, "managed key created");
        Ok(key)
    }

    /// Every key, in id order, filtered; `visible` decides per key whether the caller may
    /// see it (a token attenuated to some key names).
    pub fn list(&self, req: &ListKeys, visible: impl Fn(&ManagedKey) -> bool) -> Result<KeyPage> {
        let mut ids = self.barrier.list(META_PREFIX)?;
        ids.sort();
        let mut keys = Vec::new();
        let mut next = None;
        for id in ids {
            if req
                .page_token
                .as_ref()
                .is_some_and(|t| id.as_str() <= t.as_str())
            {
                continue;
            }
            let Some(key) = self
                .barrier
                .get_json::<ManagedKey>(&format!("{META_PREFIX}{id}"))?
            else {
                continue;
            };
            if req
                .name_prefix
                .as_ref()
                .is_some_and(|p| !key.name.starts_with(p.as_str()))
                || req.algorithm.is_some_and(|a| a != key.algorithm)
                || req.state.is_some_and(|s| s != key.state)
                || req
                    .label
                    .as_ref()
                    .is_some_and(|(k, v)| key.labels.get(k) != Some(v))
                || !visible(&key)
            {
                continue;
            }
            if keys.len() == req.page_size {
                next = keys.last().map(|k: &ManagedKey| k.id.to_string());
                break;
            }
            keys.push(key);
        }
        Ok(KeyPage {
            keys,
            next_page_token: next,
        })
    }

    /// Adds a version and makes it the primary; in the same transaction, queues a sync
    /// of it for every export with auto-sync on, on behalf of `operator`.
    pub async fn rotate(
        &self,
        id: &uuid::Uuid,
        root: Arc<dyn RootOfTrust>,
        operator: &str,
    ) -> Result<ManagedKey> {
        let key = self.get(id)?;
        Self::usable(&key)?;
        let (stored, public, protection) = generate(key.algorithm, key.exportable, root).await?;
        let _w = self.write_lock.lock().await;
        let (key, version, syncs) = self
            .barrier
            .transact(|tx| {
                let mut key = Self::get_in(tx, id)?;
                Self::usable(&key)?;
                let version = key.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                key.versions.push(KeyVersion {
                    version,
                    state: VersionState::Enabled,
                    create_time: now(),
                    protection,
                    origin: Origin::Generated,
                    public_key: public.clone(),
                });
                key.primary_version = version;
                tx.put_json(&Self::meta_path(id), &key)?;
                tx.put_json(&Self::material_path(id, version), &stored)?;
                let syncs =
                    crate::cloud_exports::outbox::enqueue_rotation(tx, id, version, operator)?;
                Ok::<_, KeyError>((key, version, syncs))
            })
            .await?;
        tracing::info!(key_id = %id, version, syncs, "managed key rotated");
        Ok(key)
    }

    pub async fn set_version_state(
        &self,
        id: &uuid::Uuid,
        version: u32,
        state: VersionState,
    ) -> Result<ManagedKey> {
        let _w = self.write_lock.lock().await;
        self.update(id, |key| {
            Self::usable(key)?;
            key.version_mut(version)?.state = state;
            Ok(())
        })
        .await
    }

    pub async fn schedule_destruction(
        &self,
        id: &uuid::Uuid,
        window_seconds: u64,
    ) -> Result<ManagedKey> {
        if !(MIN_PENDING_WINDOW..=MAX_PENDING_WINDOW).contains(&window_seconds) {
            return Err(KeyError::invalid(
                "INVALID_PENDING_WINDOW",
                format!(
                    "pendingWindowSeconds must be between {MIN_PENDING_WINDOW} and {MAX_PENDING_WINDOW}"
                ),
            ));
        }
        let _w = self.write_lock.lock().await;
        let due = now() + time::Duration::seconds(window_seconds as i64);
        let key = self
            .update(id, |key| {
                Self::usable(key)?;
                key.state = KeyState::PendingDestruction;
                key.destroy_time = Some(due);
                Ok(())
            })
            .await?;
        let mut next = self.next_due.lock();
        if let Some(known) = next.as_mut() {
            *known = Some(known.map_or(due, |t| t.min(due)));
        }
        tracing::info!(key_id = %id, window_seconds, "managed key scheduled for destruction");
        Ok(key)
    }

    pub async fn cancel_destruction(&self, id: &uuid::Uuid) -> Result<ManagedKey> {
        let _w = self.write_lock.lock().await;
        let key = self
            .update(id, |key| {
                if key.state != KeyState::PendingDestruction {
                    return Err(KeyError::NotPendingDestruction(key.name.clone()));
                }
                key.state = KeyState::Enabled;
                key.destroy_time = None;
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %id, "managed key destruction cancelled");
        Ok(key)
    }

    /// Destroys the keys whose pending window has passed; returns their ids and names.
    pub async fn tidy(&self, root: Option<Arc<dyn RootOfTrust>>) -> Result<Vec<(String, String)>> {
        let now = now();
        if let Some(next) = *self.next_due.lock() {
            if next.is_none_or(|t| t > now) {
                return Ok(Vec::new());
            }
        }
        let mut destroyed = Vec::new();
        let mut earliest: Option<OffsetDateTime> = None;
        for key in self.stored_keys()? {
            let Some(t) = key
                .destroy_time
                .filter(|_| key.state == KeyState::PendingDestruction)
            else {
                continue;
            };
            if t <= now {
                self.destroy(&key.id, root.as_deref()).await?;
                destroyed.push((key.id.to_string(), key.name.clone()));
            } else {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        // A destruction scheduled during the scan may be earlier: keep the minimum.
        let mut next = self.next_due.lock();
        let scheduled = next.flatten();
        *next = Some(match (earliest, scheduled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b.filter(|t| *t > now)),
        });
        Ok(destroyed)
    }

    async fn destroy(&self, id: &uuid::Uuid, root: Option<&dyn RootOfTrust>) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let key = self.get(id)?;
        if key.state != KeyState::PendingDestruction {
            return Ok(());
        }
        if let Some(root) = root {
            for v in &key.versions {
                if let Ok(Loaded::Hsm(w)) = self.load(&key, v).as_deref() {
                    root.forget_key(w);
                }
            }
        }
        let destroyed = self
            .barrier
            .transact(|tx| {
                let key = Self::get_in(tx, id)?;
                // Cancelled meanwhile (here or on another node): the condition on the
                // record read here keeps a cancel from being overridden.
                if key.state != KeyState::PendingDestruction {
                    return Ok(false);
                }
                for v in &key.versions {
                    tx.delete(&Self::material_path(id, v.version));
                }
                tx.delete(&format!("{NAME_PREFIX}{}", key.name));
                tx.delete(&Self::meta_path(id));
                crate::cloud_exports::remove_key_in(tx, &self.barrier, id)?;
                Ok::<_, KeyError>(true)
            })
            .await?;
        if !destroyed {
            return Ok(());
        }
        self.loaded.write().retain(|(k, _), _| k != id);
        tracing::info!(key_id = %id, "managed key destroyed");
        Ok(())
    }

    fn get_in(tx: &mut BarrierTx<'_>, id: &uuid::Uuid) -> Result<ManagedKey> {
        tx.get_json::<ManagedKey>(&Self::meta_path(id))?
            .ok_or_else(|| KeyError::NotFound(id.to_string()))
    }

    /// Changes a key's record in one transaction: `change` sees the stored record, and
    /// the write happens only if nobody changed it meanwhile (else it runs again).
    async fn update<F>(&self, id: &uuid::Uuid, mut change: F) -> Result<ManagedKey>
    where
        F: FnMut(&mut ManagedKey) -> Result<()>,
    {
        self.barrier
            .transact(|tx| {
                let mut key = Self::get_in(tx, id)?;
                change(&mut key)?;
                tx.put_json(&Self::meta_path(id), &key)?;
                Ok(key)
            })
            .await
    }

    fn usable(key: &ManagedKey) -> Result<()> {
        match key.state {
            KeyState::Enabled => Ok(()),
            KeyState::PendingDestruction => Err(KeyError::PendingDestruction(key.name.clone())),
        }
    }

    pub(crate) fn load(&self, key: &ManagedKey, v: &KeyVersion) -> Result<Arc<Loaded>> {
        if let Some(l) = self.loaded.read().get(&(key.id, v.version)) {
            return Ok(l.clone());
        }
        let stored: StoredMaterial = self
            .barrier
            .get_json(&Self::material_path(&key.id, v.version))?
            .ok_or_else(|| KeyError::NotFound(key.id.to_string()))?;
        let loaded = Arc::new(material::load(
            key.algorithm,
            &stored,
            v.public_key.as_deref(),
        )?);
        let mut cache = self.loaded.write();
        if cache.len() >= LOADED_MAX {
            cache.clear();
        }
        cache.insert((key.id, v.version), loaded.clone());
        Ok(loaded)
    }

    /// The version an operation uses: the one asked for, or the primary; it must be
    /// enabled and the key not pending destruction.
    fn pick(key: &ManagedKey, version: Option<u32>) -> Result<KeyVersion> {
        Self::usable(key)?;
        let v = key.version(version.unwrap_or(key.primary_version))?;
        if v.state != VersionState::Enabled {
            return Err(KeyError::VersionDisabled {
                key: key.name.clone(),
                version: v.version,
            });
        }
        Ok(v.clone())
    }

    fn check_usage(key: &ManagedKey, usage: Usage, op: &str) -> Result<()> {
        if key.usage != usage {
            return Err(KeyError::WrongKeyType(format!(
                "key {:?} is a {} key with usage {}: it cannot {op}",
                key.name,
                key.algorithm.as_str(),
                key.usage.as_str()
            )));
        }
        Ok(())
    }

    fn check_size(what: &str, data: &[u8]) -> Result<()> {
        if data.len() > MAX_MESSAGE {
            return Err(KeyError::TooLarge(format!(
                "the {what} is {} bytes; the limit is {MAX_MESSAGE}",
                data.len()
            )));
        }
        Ok(())
    }

    /// Largest ciphertext to decrypt: the largest plaintext and room for any framing.
    fn check_ciphertext_size(ciphertext: &[u8]) -> Result<()> {
        if ciphertext.len() > MAX_MESSAGE + 2048 {
            return Err(KeyError::TooLarge(format!(
                "the ciphertext is {} bytes; the limit is {}",
                ciphertext.len(),
                MAX_MESSAGE + 2048
            )));
        }
        Ok(())
    }

    /// Signs in the key's own format ([`SignScheme::Default`]).
    pub async fn sign(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        message: Vec<u8>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Output> {
        self.sign_with(key, version, SignScheme::Default, message, root)
            .await
    }

    pub async fn verify(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<(bool, u32)> {
        self.verify_with(key, version, SignScheme::Default, message, signature)
            .await
    }

    /// Encrypts in the key's own format ([`CipherScheme::Default`]).
    pub async fn encrypt(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        plaintext: Zeroizing<Vec<u8>>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<Output> {
        self.encrypt_with(key, version, CipherScheme::Default, plaintext, root)
            .await
    }

    pub async fn decrypt(
        &self,
        key: &ManagedKey,
        version: Option<u32>,
        ciphertext: Vec<u8>,
        root: Arc<dyn RootOfTrust>,
    ) -> Result<(Zeroizing<Vec<u8>>, u32)> {
        self.decrypt_with(key, version, CipherScheme::Default, ciphertext, root)
            .await
    }
}

async fn generate(
    algorithm: Algorithm,
    exportable: bool,
    root: Arc<dyn RootOfTrust>,
) -> Result<(StoredMaterial, Option<Vec<u8>>, Protection)> {
    blocking(move || material::generate(algorithm, exportable, root.as_ref())).await
}

/// Key generation and private-key operations run on the compute pool, off the async
/// threads and bounded by the cores.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    crate::compute::run(f).await?
}

/// On the device lane when `device` (the work is the HSM's), else on the compute pool.
async fn on_lane<T: Send + 'static>(
    device: bool,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if device {
        crate::compute::run_on_device(f).await?
    } else {
        blocking(f).await
    }
}

/// An operation with a loaded key, on the lane its holder calls for.
async fn with_loaded<T: Send + 'static>(
    loaded: Arc<Loaded>,
    f: impl FnOnce(&Loaded) -> Result<T> + Send + 'static,
) -> Result<T> {
    on_lane(matches!(*loaded, Loaded::Hsm(_)), move || f(&loaded)).await
}
