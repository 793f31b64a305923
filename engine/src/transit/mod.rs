//! The transit secrets engine: encryption as a service with named, versioned keys, as
//! Vault's `builtin/logical/transit`. HTTP-free: the API layer decodes base64 fields
//! and shapes answers; this module owns keys, their storage and every operation.
//!
//! - `key_policy`: a key's configuration and versions; `keytype`: what each type can do.
//! - `material`: secret bytes and the ciphers/keys parsed from them once.
//! - `encryption` (encrypt, decrypt, rewrap, datakey), `signing`, `hmac`, `export`,
//!   `hash`, `random`: the operations.
//! - `backup` (backup and restore in Vault's format), `import` (BYOK import in Vault's
//!   format and the mount's wrapping key).
//! - `cache`: parsed keys in memory; `storage`: how keys sit under the barrier.
//!
//! Reads take a snapshot `Arc<Key>` from the cache and never wait; writes to one key
//! (create, rotate, config, trim, delete) are serialised by a per-name lock and persisted
//! before the cache is updated and the caller answered.
//!
//! Decrypting under a name that does not exist answers exactly as decrypting with a
//! wrong key does ([`DECRYPT_FAILED`]), after comparable work with a stand-in key, so
//! `decrypt` cannot be used to find out which key names exist.

mod backup;
mod batch;
mod cache;
mod encryption;
pub mod error;
mod export;
pub mod hash;
mod hmac;
pub mod import;
pub mod key_policy;
pub mod keytype;
mod material;
pub mod random;
mod signing;
mod storage;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hsm_bridge::RootOfTrust;
use time::OffsetDateTime;

pub use self::batch::{verify_mode, CipherItem, Encrypted, InputItem, ItemResult, VerifyMode};
pub use self::encryption::parse_ciphertext;
pub use self::error::{TransitError, TransitResult, DECRYPT_FAILED};
pub use self::export::{ExportFormat, ExportType};
pub use self::hash::HashAlgorithm;
pub use self::import::{ImportBoundary, ImportKey, OaepHash};
pub use self::key_policy::{ConfigUpdate, CreateKey, Key, KeyConfig, Version};
pub use self::keytype::KeyType;
pub use self::material::{Marshaling, SecretBytes};
pub use self::signing::{RsaScheme, SaltLength, SignOptions, Signed};

use self::cache::{KeyCache, Lookup};
use self::material::generate_secret;
use self::storage::{HsmWrappingKey, KeyStore};
use crate::barrier::Barrier;
use crate::crypto::rsa::RsaKey;
use crate::storage::{retry_on_conflict, IsConflict};

const LOCK_STRIPES: usize = 64;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 as Vault clients write it: standard, or URL-safe (as the Clever KMS
/// transcript shows ciphertexts), padded or not.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_LENIENT
        .decode(s)
        .or_else(|e| URL_SAFE_LENIENT.decode(s).map_err(|_| e))
}

/// A base64 error worded as Go's (which Vault clients see): "illegal base64 data at
/// input byte N".
pub fn base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        base64::DecodeError::InvalidLength(len) => {
            format!("illegal base64 data at input byte {len}")
        }
        base64::DecodeError::InvalidPadding => "illegal base64 data: invalid padding".into(),
    }
}

/// Vault's key names: word characters, `-`, `.` and `@`, starting and ending with a word
/// character.
pub fn valid_key_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first)
        && word(last)
        && name
            .chars()
            .all(|c| word(c) || c == '-' || c == '.' || c == '@')
}

/// Per-appliance knobs of every transit mount.
#[derive(Debug, Clone, Copy)]
pub struct TransitSettings {
    /// The shortest `auto_rotate_period` accepted, in seconds (Vault: one hour).
    pub min_auto_rotate_period: u64,
    /// The most items a `batch_input` may hold (`max_batch_items` in the server config).
    pub max_batch_items: usize,
}

/// The default of [`TransitSettings::max_batch_items`].
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 1000;

impl Default for TransitSettings {
    fn default() -> Self {
        TransitSettings {
            min_auto_rotate_period: key_policy::DEFAULT_MIN_AUTO_ROTATE_PERIOD,
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
        }
    }
}

pub struct TransitEngine {
    store: KeyStore,
    settings: TransitSettings,
    cache: Arc<KeyCache>,
    locks: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
    /// The BYOK wrapping key once loaded (software, or made in the HSM); the mutex
    /// serialises their first making.
    wrapping_key: parking_lot::Mutex<Option<Arc<RsaKey>>>,
    hsm_wrapping_key: parking_lot::Mutex<Option<HsmWrappingKey>>,
    making_wrapping_key: tokio::sync::Mutex<()>,
}

/// The stand-in for keys that do not exist: an AES-256 key no ciphertext was made with.
fn phantom() -> Arc<Key> {
    static PHANTOM: OnceLock<Arc<Key>> = OnceLock::new();
    PHANTOM
        .get_or_init(|| {
            let config = KeyConfig {
                name: String::new(),
                kind: KeyType::Aes256Gcm96,
                derived: false,
                convergent_encryption: false,
                exportable: false,
                allow_plaintext_backup: false,
                deletion_allowed: false,
                latest_version: 1,
                min_decryption_version: 1,
                min_encryption_version: 0,
                min_available_version: 0,
                auto_rotate_period: 0,
                key_size: 0,
                imported: false,
                allow_imported_rotation: false,
            };
            let mut versions = BTreeMap::new();
            let secret = SecretBytes::random(32);
            // Cannot fail for a 32-byte AES key; without a version the phantom still
            // refuses everything, after the decoy work in `decrypt`.
            if let Ok(v) = Version::build(
                &config,
                1,
                OffsetDateTime::now_utc(),
                secret,
                SecretBytes::random(32),
            ) {
                versions.insert(1, Arc::new(v));
            }
            Arc::new(Key {
                config,
                versions,
                phantom: true,
            })
        })
        .clone()
}

impl TransitEngine {
    pub fn new(barrier: Arc<Barrier>, storage_prefix: String, settings: TransitSettings) -> Self {
        let store = KeyStore::new(barrier, storage_prefix);
        let cache = Arc::new(KeyCache::default());
        store.watch(&cache);
        TransitEngine {
            store,
            settings,
            cache,
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: Default::default(),
            wrapping_key: parking_lot::Mutex::new(None),
            hsm_wrapping_key: parking_lot::Mutex::new(None),
            making_wrapping_key: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> TransitSettings {
        self.settings
    }

    fn lock_for(&self, name: &str) -> &tokio::sync::Mutex<()> {
        let i = (self.hasher.hash_one(name) as usize) % LOCK_STRIPES;
        &self.locks[i]
    }

    fn ensure_index(&self) -> TransitResult<()> {
        if let Some(generation) = self.cache.needs_index() {
            let names = self.store.names()?;
            self.cache.index(generation, names);
        }
        Ok(())
    }

    /// The key named `name`, parsed and cached on first use.
    pub fn get(&self, name: &str) -> TransitResult<Option<Arc<Key>>> {
        self.ensure_index()?;
        match self.cache.lookup(name) {
            Lookup::Missing => Ok(None),
            Lookup::Loaded(k) => Ok(Some(k)),
            Lookup::Unloaded(generation) => match self.store.load(name)? {
                Some(key) => Ok(self.cache.fill(generation, Arc::new(key))),
                None => Ok(None),
            },
        }
    }

    pub fn exists(&self, name: &str) -> TransitResult<bool> {
        self.ensure_index()?;
        Ok(!matches!(self.cache.lookup(name), Lookup::Missing))
    }

    /// Every key name, sorted.
    pub fn list(&self) -> TransitResult<Vec<String>> {
        self.ensure_index()?;
        Ok(self.cache.names())
    }

    /// The key to decrypt with: the named one, or the phantom when there is none.
    pub fn key_for_decrypt(&self, name: &str) -> TransitResult<Arc<Key>> {
        Ok(self.get(name)?.unwrap_or_else(phantom))
    }

    async fn new_version(config: &KeyConfig, number: u32) -> TransitResult<Version> {
        let (kind, size) = (config.kind, config.key_size);
        let secret = if kind.is_rsa() {
            // Seconds of prime search: on the compute pool, never the request executor.
            crate::compute::run(move || generate_secret(kind, size)).await??
        } else {
            generate_secret(kind, size)?
        };
        // An `hmac` key's HMAC key is the key itself; other types get their own.
        let hmac_key = if kind == KeyType::Hmac {
            SecretBytes::default()
        } else {
            SecretBytes::random(32)
        };
        Version::build(config, number, OffsetDateTime::now_utc(), secret, hmac_key)
    }

    /// Creates `name` unless it exists (Vault's upsert); true when it was created.
    pub async fn create(&self, name: &str, req: CreateKey) -> TransitResult<(Arc<Key>, bool)> {
        if !valid_key_name(name) {
            return Err(TransitError::invalid(format!("invalid key name {name:?}")));
        }
        let config = req.into_config(name, self.settings.min_auto_rotate_period)?;
        let _w = self.lock_for(name).lock().await;
        let config = &config;
        let (key, created) = retry_on_conflict(|| async move {
            if let Some(existing) = self.get(name)? {
                return Ok((existing, false));
            }
            let first = Self::new_version(config, 1).await?;
            let empty = Key {
                config: config.clone(),
                versions: BTreeMap::new(),
                phantom: false,
            };
            let key = self.persist(None, empty.with_version(first)).await?;
            Ok::<_, TransitError>((key, true))
        })
        .await?;
        if !created {
            return Ok((key, false));
        }
        tracing::info!(key = %name, kind = %key.kind(), "transit key created");
        Ok((key, true))
    }

    async fn rotate_locked(&self, current: &Key) -> TransitResult<Arc<Key>> {
        if current.config.imported && !current.config.allow_imported_rotation {
            return Err(TransitError::invalid(format!(
                "imported key {} does not allow rotation within Vault",
                current.name()
            )));
        }
        let next_number = current
            .config
            .latest_version
            .checked_add(1)
            .ok_or_else(|| TransitError::invalid("the key has no versions left"))?;
        let version = Self::new_version(&current.config, next_number).await?;
        // A version made here: the key is no longer only imported material, as in Vault.
        let mut next = current.with_version(version);
        next.config.imported = false;
        self.persist(Some(current), next).await
    }

    /// Writes `next` if storage still holds `expected` (what it was derived from), then
    /// caches it. On a conflict the cached key was stale: it is dropped, so that the
    /// caller's next attempt reloads it.
    async fn persist(&self, expected: Option<&Key>, next: Key) -> TransitResult<Arc<Key>> {
        match self.store.persist(expected, &next).await {
            Ok(()) => {
                let next = Arc::new(next);
                self.cache.put(next.clone());
                Ok(next)
            }
            Err(e) => {
                if e.is_conflict() {
                    self.cache.invalidate(next.name());
                }
                Err(e)
            }
        }
    }

    /// Adds a version and makes it the latest.
    pub async fn rotate(&self, name: &str) -> TransitResult<Arc<Key>> {
        let _w = self.lock_for(name).lock().await;
        let next = retry_on_conflict(|| async move {
            let current = self
                .get(name)?
                .ok_or_else(|| TransitError::invalid("key not found"))?;
            self.rotate_locked(&current).await
        })
        .await?;
        tracing::info!(key = %name, version = next.config.latest_version, "transit key rotated");
        Ok(next)
    }

    /// `keys/:name/config`; returns the key and Vault's warning, if any.
    pub async fn configure(
        &self,
        name: &str,
        update: ConfigUpdate,
    ) -> TransitResult<(Arc<Key>, Option<String>)> {
        let _w = self.lock_for(name).lock().await;
        let update = &update;
        retry_on_conflict(|| async move {
            let current = self.get(name)?.ok_or_else(|| {
                TransitError::invalid(format!("no existing key named {name} could be found"))
            })?;
            let (config, warning) =
                update.apply(&current.config, self.settings.min_auto_rotate_period)?;
            if config == current.config {
                return Ok((current, warning));
            }
            let next = self
                .persist(Some(&current), current.with_config(config))
                .await?;
            Ok((next, warning))
        })
        .await
    }

    /// `keys/:name/trim`: deletes every version below `min_available_version` for good.
    pub async fn trim(&self, name: &str, min_available_version: i64) -> TransitResult<Arc<Key>> {
        let _w = self.lock_for(name).lock().await;
        retry_on_conflict(|| async move {
            let current = self
                .get(name)?
                .ok_or_else(|| TransitError::invalid("invalid key name"))?;
            let min = key_policy::check_trim(&current.config, min_available_version)?;
            let mut config = current.config.clone();
            config.min_available_version = min;
            self.persist(Some(&current), current.with_config(config))
                .await
        })
        .await
    }

    /// Deletes a key whose config allows it; its material leaves memory with the last
    /// request still using it.
    pub async fn delete(&self, name: &str) -> TransitResult<()> {
        let _w = self.lock_for(name).lock().await;
        retry_on_conflict(|| async move {
            let Some(current) = self.get(name)? else {
                return Err(TransitError::invalid(format!(
                    "error deleting policy {name}: could not delete key; not found"
                )));
            };
            if !current.config.deletion_allowed {
                return Err(TransitError::invalid(format!(
                    "error deleting policy {name}: deletion is not allowed for this key"
                )));
            }
            let deleted = self.store.delete(&current).await;
            match &deleted {
                Ok(()) => self.cache.remove(name),
                Err(e) if e.is_conflict() => self.cache.invalidate(name),
                Err(_) => {}
            }
            deleted
        })
        .await?;
        tracing::info!(key = %name, "transit key deleted");
        Ok(())
    }

    /// Rotates every key whose `auto_rotate_period` has passed since its latest version
    /// was made; returns each rotated key with its new version. One key failing does not
    /// stop the others.
    pub async fn rotate_due(&self) -> TransitResult<Vec<(String, u64)>> {
        self.rotate_due_at(OffsetDateTime::now_utc()).await
    }

    /// [`Self::rotate_due`] as if the time were `now`.
    pub async fn rotate_due_at(&self, now: OffsetDateTime) -> TransitResult<Vec<(String, u64)>> {
        let mut rotated = Vec::new();
        for name in self.store.auto_rotating()? {
            let _w = self.lock_for(&name).lock().await;
            let result = match self.get(&name) {
                Ok(Some(key)) => match key.next_rotation() {
                    Some(due) if due <= now => self.rotate_locked(&key).await.map(|k| {
                        rotated.push((name.clone(), u64::from(k.config.latest_version)));
                        tracing::info!(key = %name, version = k.config.latest_version, "transit key rotated on schedule");
                    }),
                    Some(_) => Ok(()),
                    None => self.store.forget_rotation(&name).await,
                },
                Ok(None) => self.store.forget_rotation(&name).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(key = %name, error = %e, "scheduled transit key rotation failed");
            }
        }
        Ok(rotated)
    }

    /// `backup/:name`: the key in Vault's backup format.
    pub fn backup(&self, name: &str) -> TransitResult<zeroize::Zeroizing<String>> {
        let key = self
            .get(name)?
            .ok_or_else(|| TransitError::invalid(format!("key {name:?} not found")))?;
        key.backup()
    }

    /// `restore(/:name)`: the key a backup holds, under its own name or `rename`; an
    /// existing key is replaced only with `force`.
    pub async fn restore(
        &self,
        rename: Option<&str>,
        backup: &str,
        force: bool,
    ) -> TransitResult<Arc<Key>> {
        let restored = backup::parse_backup(backup, rename)?;
        let name = restored.name().to_string();
        let _w = self.lock_for(&name).lock().await;
        let (name, restored) = (&name, &restored);
        let key = retry_on_conflict(|| async move {
            let existing = self.get(name)?;
            if existing.is_some() && !force {
                return Err(TransitError::invalid(format!(
                    "key {name:?} already exists"
                )));
            }
            self.persist(
                existing.as_deref(),
                restored.with_config(restored.config.clone()),
            )
            .await
        })
        .await?;
        tracing::info!(key = %name, version = key.config.latest_version, "transit key restored");
        Ok(key)
    }

    /// The mount's BYOK wrapping key, made on first use.
    pub async fn wrapping_key(&self) -> TransitResult<Arc<RsaKey>> {
        if let Some(k) = self.wrapping_key.lock().clone() {
            return Ok(k);
        }
        let _making = self.making_wrapping_key.lock().await;
        if let Some(k) = self.wrapping_key.lock().clone() {
            return Ok(k);
        }
        let stored = match self.store.wrapping_key()? {
            Some(stored) => stored,
            None => {
                let bits = import::WRAPPING_KEY_BITS;
                let made = crate::compute::run(move || {
                    let key = RsaKey::generate(bits).map_err(TransitError::internal)?;
                    let der = key.to_pkcs8_der().map_err(TransitError::internal)?;
                    Ok::<_, TransitError>(SecretBytes::new(der.to_vec()))
                })
                .await??;
                let kept = self.store.keep_wrapping_key(made).await?;
                tracing::info!("transit BYOK wrapping key made");
                kept
            }
        };
        let key = Arc::new(
            RsaKey::from_pkcs8_der(stored.as_slice())
                .map_err(|_| TransitError::internal("stored wrapping key is invalid"))?,
        );
        *self.wrapping_key.lock() = Some(key.clone());
        Ok(key)
    }

    /// The mount's BYOK wrapping key made inside the HSM, on first use. Another node may
    /// make one at the same time: storage keeps the first, and the other blob (nothing
    /// in the token) is dropped.
    async fn hsm_wrapping_key(&self, root: &Arc<dyn RootOfTrust>) -> TransitResult<HsmWrappingKey> {
        if let Some(k) = self.hsm_wrapping_key.lock().clone() {
            return Ok(k);
        }
        let _making = self.making_wrapping_key.lock().await;
        if let Some(k) = self.hsm_wrapping_key.lock().clone() {
            return Ok(k);
        }
        let key = match self.store.hsm_wrapping_key()? {
            Some(stored) => stored,
            None => {
                let root = root.clone();
                let spec = hsm_bridge::KeySpec::Rsa(import::WRAPPING_KEY_BITS as u32);
                let made = crate::compute::run_on_device(move || root.generate_key(spec))
                    .await?
                    .map_err(|e| TransitError::Engine(e.into()))?;
                let public = made
                    .public
                    .as_deref()
                    .ok_or_else(|| TransitError::internal("the HSM gave no public key"))
                    .and_then(|der| {
                        crate::crypto::rsa::public_from_der(der).map_err(TransitError::internal)
                    })?;
                let made = HsmWrappingKey {
                    blob: SecretBytes::new(made.blob),
                    public_pem: import::wrapping_public_pem(&public)?,
                };
                let kept = self.store.keep_hsm_wrapping_key(made).await?;
                tracing::info!("transit BYOK wrapping key made inside the HSM");
                kept
            }
        };
        *self.hsm_wrapping_key.lock() = Some(key.clone());
        Ok(key)
    }

    /// `wrapping_key`: the public half (PEM) of the key BYOK imports are wrapped under.
    pub async fn wrapping_public_pem(&self, boundary: &ImportBoundary) -> TransitResult<String> {
        match boundary {
            ImportBoundary::Software => {
                import::wrapping_public_pem(&self.wrapping_key().await?.public)
            }
            ImportBoundary::Hsm(root) => Ok(self.hsm_wrapping_key(root).await?.public_pem),
        }
    }

    /// The imported key bytes of a BYOK `ciphertext`.
    async fn unwrap_import(
        &self,
        ciphertext: Vec<u8>,
        hash: OaepHash,
        kind: KeyType,
        boundary: &ImportBoundary,
    ) -> TransitResult<SecretBytes> {
        let target = match boundary {
            ImportBoundary::Software => {
                let wrapping = self.wrapping_key().await?;
                crate::compute::run(move || import::unwrap_target(&wrapping, &ciphertext, hash))
                    .await??
            }
            ImportBoundary::Hsm(root) => {
                let wrapping = self.hsm_wrapping_key(root).await?;
                let root = root.clone();
                crate::compute::run_on_device(move || {
                    import::unwrap_target_in_hsm(
                        root.as_ref(),
                        wrapping.blob.as_slice(),
                        &ciphertext,
                        hash,
                    )
                })
                .await??
            }
        };
        crate::compute::run(move || import::imported_secret(kind, &target)).await?
    }

    /// `keys/:name/import`: a new key whose first version is the wrapped key.
    pub async fn import(
        &self,
        name: &str,
        spec: ImportKey,
        ciphertext: Vec<u8>,
        hash: OaepHash,
        boundary: &ImportBoundary,
    ) -> TransitResult<Arc<Key>> {
        if !valid_key_name(name) {
            return Err(TransitError::invalid(format!("invalid key name {name:?}")));
        }
        let mut config = spec.into_config(name, self.settings.min_auto_rotate_period)?;
        let exists = || {
            TransitError::invalid(
                "the import path cannot be used with an existing key; use import-version to rotate an existing imported key",
            )
        };
        if self.exists(name)? {
            return Err(exists());
        }
        let secret = self
            .unwrap_import(ciphertext, hash, config.kind, boundary)
            .await?;
        if config.kind == KeyType::Hmac {
            config.key_size = secret.len();
        }
        let _w = self.lock_for(name).lock().await;
        let (config, secret) = (&config, &secret);
        let key = retry_on_conflict(|| async move {
            if self.get(name)?.is_some() {
                return Err(exists());
            }
            let first = Self::imported_version(config, 1, secret.clone())?;
            let empty = Key {
                config: config.clone(),
                versions: BTreeMap::new(),
                phantom: false,
            };
            self.persist(None, empty.with_version(first)).await
        })
        .await?;
        tracing::info!(key = %name, kind = %key.kind(), unwrapped_in = boundary.name(), "transit key imported");
        Ok(key)
    }

    fn imported_version(
        config: &KeyConfig,
        number: u32,
        secret: SecretBytes,
    ) -> TransitResult<Version> {
        let hmac_key = if config.kind == KeyType::Hmac {
            SecretBytes::default()
        } else {
            SecretBytes::random(32)
        };
        Version::build(config, number, OffsetDateTime::now_utc(), secret, hmac_key)
    }

    /// `keys/:name/import_version`: the wrapped key as the next version of an imported
    /// key. `version` names an existing version to complete, which Vault allows only
    /// for versions imported as a public key alone, which this appliance does not take:
    /// it is refused with Vault's words.
    pub async fn import_version(
        &self,
        name: &str,
        ciphertext: Vec<u8>,
        hash: OaepHash,
        version: Option<i64>,
        boundary: &ImportBoundary,
    ) -> TransitResult<Arc<Key>> {
        let current = self.get(name)?.ok_or_else(|| {
            TransitError::invalid(format!(
                "no key found with name {name}; to import a new key, use the import/ endpoint"
            ))
        })?;
        if !current.config.imported {
            return Err(TransitError::invalid(
                "the import_version endpoint can only be used with an imported key",
            ));
        }
        if current.config.convergent_encryption {
            return Err(TransitError::invalid(
                "import_version cannot be used on keys with convergent encryption enabled",
            ));
        }
        let kind = current.kind();
        let secret = self.unwrap_import(ciphertext, hash, kind, boundary).await?;
        if let Some(v) = version {
            if u32::try_from(v)
                .ok()
                .and_then(|v| current.version(v))
                .is_none()
            {
                return Err(TransitError::invalid("no such key version"));
            }
            if !kind.is_asymmetric() {
                return Err(TransitError::invalid(
                    "provided type does not support importing key versions",
                ));
            }
            return Err(TransitError::invalid(
                "private key imported, key version cannot be updated",
            ));
        }
        let _w = self.lock_for(name).lock().await;
        let secret = &secret;
        let key = retry_on_conflict(|| async move {
            let current = self.get(name)?.ok_or_else(|| {
                TransitError::invalid(format!(
                    "no key found with name {name}; to import a new key, use the import/ endpoint"
                ))
            })?;
            let number = current
                .config
                .latest_version
                .checked_add(1)
                .ok_or_else(|| TransitError::invalid("the key has no versions left"))?;
            let mut config = current.config.clone();
            if kind == KeyType::Hmac {
                config.key_size = secret.len();
            }
            let version = Self::imported_version(&config, number, secret.clone())?;
            let next = current.with_config(config).with_version(version);
            self.persist(Some(&current), next).await
        })
        .await?;
        tracing::info!(key = %name, version = key.config.latest_version, unwrapped_in = boundary.name(), "transit key imported");
        Ok(key)
    }

    /// Drops every cached key (seal, unmount).
    pub fn clear_cache(&self) {
        self.cache.clear();
        *self.wrapping_key.lock() = None;
        *self.hsm_wrapping_key.lock() = None;
    }
}
