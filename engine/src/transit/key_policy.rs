//! A named key as transit keeps it: its configuration (what Vault calls the policy) and
//! its versions. A `Key` is immutable once built; a rotation or a configuration change
//! builds the next `Key` and swaps it into the cache, so readers never wait on writers.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::{TransitError, TransitResult};
use super::keytype::{KeyType, HMAC_MAX_KEY_SIZE, HMAC_MIN_KEY_SIZE};
use super::material::{parse_material, Material, SecretBytes};

/// Vault's floor for `auto_rotate_period`.
pub const DEFAULT_MIN_AUTO_ROTATE_PERIOD: u64 = 3600;

/// Vault's message for a version below `min_decryption_version`.
pub const ERR_TOO_OLD: &str = "ciphertext or signature version is disallowed by policy (too old)";

/// Everything about a key except its versions, stored as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: KeyType,
    pub derived: bool,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub deletion_allowed: bool,
    pub latest_version: u32,
    pub min_decryption_version: u32,
    pub min_encryption_version: u32,
    pub min_available_version: u32,
    /// Seconds; 0 disables automatic rotation.
    pub auto_rotate_period: u64,
    /// Bytes of an `hmac` key; 0 for other types.
    #[serde(default)]
    pub key_size: usize,
    /// Made outside and imported (`keys/:name/import`); a rotation here clears it, as
    /// in Vault.
    #[serde(default)]
    pub imported: bool,
    /// Whether an imported key may be rotated here (`allow_rotation`).
    #[serde(default)]
    pub allow_imported_rotation: bool,
}

/// One version of a key: its secret bytes, the HMAC key every version carries (Vault's
/// `hmac` endpoint works with any key), and the material parsed from them.
pub struct Version {
    pub number: u32,
    pub created: OffsetDateTime,
    pub(crate) secret: SecretBytes,
    pub(crate) hmac_key: SecretBytes,
    pub(crate) material: Material,
    /// The public key as a key read shows it; empty for symmetric keys.
    pub public_key: String,
}

impl Version {
    pub fn build(
        config: &KeyConfig,
        number: u32,
        created: OffsetDateTime,
        secret: SecretBytes,
        hmac_key: SecretBytes,
    ) -> TransitResult<Version> {
        let (material, public_key) = parse_material(config.kind, config.derived, &secret)?;
        Ok(Version {
            number,
            created,
            secret,
            hmac_key,
            material,
            public_key,
        })
    }
}

pub struct Key {
    pub config: KeyConfig,
    pub(crate) versions: BTreeMap<u32, Arc<Version>>,
    /// Stands in for a key that does not exist, so that decrypting under an unknown name
    /// does the same work as under a wrong key, and fails the same way.
    pub(crate) phantom: bool,
}

// Key material stays out of debug output: only the configuration and version numbers.
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("config", &self.config)
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .field("phantom", &self.phantom)
            .finish()
    }
}

/// What `keys/:name` (or an encrypt that creates its key) asks for.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub kind: KeyType,
    pub derived: bool,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub auto_rotate_period: u64,
    pub key_size: Option<usize>,
}

impl Default for CreateKey {
    fn default() -> Self {
        CreateKey {
            kind: KeyType::Aes256Gcm96,
            derived: false,
            convergent_encryption: false,
            exportable: false,
            allow_plaintext_backup: false,
            auto_rotate_period: 0,
            key_size: None,
        }
    }
}

/// `keys/:name/config`: each field is changed only when given.
#[derive(Debug, Clone, Default)]
pub struct ConfigUpdate {
    pub min_decryption_version: Option<i64>,
    pub min_encryption_version: Option<i64>,
    pub deletion_allowed: Option<bool>,
    pub exportable: Option<bool>,
    pub allow_plaintext_backup: Option<bool>,
    pub auto_rotate_period: Option<u64>,
}

pub(crate) fn check_rotate_period(period: u64, min: u64) -> TransitResult<()> {
    if period != 0 && period < min {
        let floor = if min == DEFAULT_MIN_AUTO_ROTATE_PERIOD {
            "an hour".to_string()
        } else {
            format!("{min}s")
        };
        return Err(TransitError::invalid(format!(
            "auto rotate period must be 0 to disable or at least {floor}"
        )));
    }
    Ok(())
}

impl CreateKey {
    /// The checks Vault makes before creating a key; returns the validated config.
    pub fn into_config(self, name: &str, min_rotate_period: u64) -> TransitResult<KeyConfig> {
        check_rotate_period(self.auto_rotate_period, min_rotate_period)?;
        if self.convergent_encryption && !self.derived {
            return Err(TransitError::invalid(
                "convergent encryption requires derivation to be enabled",
            ));
        }
        let key_size = match self.key_size.filter(|s| *s != 0) {
            Some(_) if self.kind != KeyType::Hmac => {
                return Err(TransitError::invalid(format!(
                    "key_size is not valid for algorithm {}",
                    self.kind
                )))
            }
            Some(s) if !(HMAC_MIN_KEY_SIZE..=HMAC_MAX_KEY_SIZE).contains(&s) => {
                return Err(TransitError::invalid(format!("invalid key_size {s}")))
            }
            Some(s) => s,
            // Vault has no default and fails; 32 bytes matches the HMAC-SHA256 block use.
            None if self.kind == KeyType::Hmac => HMAC_MIN_KEY_SIZE,
            None => 0,
        };
        match self.kind {
            k if k.is_aead() => {}
            KeyType::Ed25519 if self.convergent_encryption => {
                return Err(TransitError::invalid(
                    "convergent encryption not supported for keys of type ed25519",
                ))
            }
            KeyType::Ed25519 => {}
            k if self.derived || self.convergent_encryption => {
                return Err(TransitError::invalid(format!(
                    "key derivation and convergent encryption not supported for keys of type {k}"
                )))
            }
            _ => {}
        }
        Ok(KeyConfig {
            name: name.to_string(),
            kind: self.kind,
            derived: self.derived,
            convergent_encryption: self.convergent_encryption,
            exportable: self.exportable,
            allow_plaintext_backup: self.allow_plaintext_backup,
            deletion_allowed: false,
            latest_version: 0,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            auto_rotate_period: self.auto_rotate_period,
            key_size,
            imported: false,
            allow_imported_rotation: false,
        })
    }
}

impl ConfigUpdate {
    /// Applies the update to a copy of `current`, with Vault's checks and messages.
    /// Returns the new config and a warning, if Vault would give one.
    pub fn apply(
        &self,
        current: &KeyConfig,
        min_rotate_period: u64,
    ) -> TransitResult<(KeyConfig, Option<String>)> {
        let mut c = current.clone();
        let mut warning = None;
        if let Some(v) = self.min_decryption_version {
            if v < 0 {
                return Err(TransitError::invalid(
                    "min decryption version cannot be negative",
                ));
            }
            let v = if v == 0 {
                warning = Some(
                    "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                        .to_string(),
                );
                1
            } else {
                v
            };
            if v != i64::from(c.min_decryption_version) {
                if v > i64::from(c.latest_version) {
                    return Err(TransitError::invalid(format!(
                        "cannot set min decryption version of {v}, latest key version is {}",
                        c.latest_version
                    )));
                }
                c.min_decryption_version = v as u32;
            }
        }
        if let Some(v) = self.min_encryption_version {
            if v < 0 {
                return Err(TransitError::invalid(
                    "min encryption version cannot be negative",
                ));
            }
            if v != i64::from(c.min_encryption_version) {
                if v > i64::from(c.latest_version) {
                    return Err(TransitError::invalid(format!(
                        "cannot set min encryption version of {v}, latest key version is {}",
                        c.latest_version
                    )));
                }
                c.min_encryption_version = v as u32;
            }
        }
        if c.min_encryption_version > 0 && c.min_encryption_version < c.min_decryption_version {
            return Err(TransitError::invalid(format!(
                "cannot set min encryption/decryption values; min encryption version of {} must be greater than or equal to min decryption version of {}",
                c.min_encryption_version, c.min_decryption_version
            )));
        }
        if let Some(d) = self.deletion_allowed {
            c.deletion_allowed = d;
        }
        if c.min_decryption_version == 0 {
            c.min_decryption_version = 1;
        }
        // Once exportable or backed up in plaintext, a key stays so: the material may
        // already be out.
        if self.exportable == Some(true) {
            c.exportable = true;
        }
        if self.allow_plaintext_backup == Some(true) {
            c.allow_plaintext_backup = true;
        }
        if let Some(p) = self.auto_rotate_period {
            check_rotate_period(p, min_rotate_period)?;
            c.auto_rotate_period = p;
        }
        if c.min_available_version > 0 {
            if c.min_available_version > c.min_encryption_version {
                return Err(TransitError::invalid(
                    "min encryption version should not be less than min available version",
                ));
            }
            if c.min_available_version > c.min_decryption_version {
                return Err(TransitError::invalid(
                    "min decryption version should not be less then min available version",
                ));
            }
        }
        Ok((c, warning))
    }
}

/// The checks of `keys/:name/trim`.
pub fn check_trim(c: &KeyConfig, min_available: i64) -> TransitResult<u32> {
    let err = |m: &str| Err(TransitError::invalid(m));
    if min_available < i64::from(c.min_available_version) {
        return err("minimum available version cannot be decremented");
    }
    if c.min_encryption_version == 0 {
        return err(
            "minimum available version cannot be set when minimum encryption version is not set",
        );
    }
    if c.min_decryption_version == 0 {
        return err(
            "minimum available version cannot be set when minimum decryption version is not set",
        );
    }
    if min_available > i64::from(c.min_encryption_version) {
        return err("minimum available version cannot be greater than minmum encryption version");
    }
    if min_available > i64::from(c.min_decryption_version) {
        return err("minimum available version cannot be greater than minimum decryption version");
    }
    if min_available < 0 {
        return err("minimum available version cannot be negative");
    }
    if min_available == 0 {
        return err("minimum available version should be positive");
    }
    Ok(min_available as u32)
}

impl Key {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> KeyType {
        self.config.kind
    }

    /// Versions still held (at or above `min_available_version`), oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &Arc<Version>> {
        self.versions.values()
    }

    pub fn version(&self, n: u32) -> Option<&Arc<Version>> {
        self.versions.get(&n)
    }

    pub fn latest(&self) -> Option<&Arc<Version>> {
        self.versions.get(&self.config.latest_version)
    }

    /// The version an encrypt, sign or datakey request asks for (0: the latest), with
    /// Vault's checks. `what` is "encryption" or "signing", as in Vault's messages.
    pub(crate) fn version_for_use(&self, requested: i64, what: &str) -> TransitResult<&Version> {
        let latest = i64::from(self.config.latest_version);
        let n = match requested {
            0 => latest,
            v if v < 0 => {
                return Err(TransitError::invalid(format!(
                    "requested version for {what} is negative"
                )))
            }
            v if v > latest => {
                return Err(TransitError::invalid(format!(
                    "requested version for {what} is higher than the latest key version"
                )))
            }
            v if v < i64::from(self.config.min_encryption_version) => {
                return Err(TransitError::invalid(format!(
                    "requested version for {what} is less than the minimum encryption key version"
                )))
            }
            v => v,
        };
        u32::try_from(n)
            .ok()
            .and_then(|n| self.versions.get(&n))
            .map(|v| v.as_ref())
            .ok_or_else(|| TransitError::invalid("no such key version"))
    }

    /// The version named by a ciphertext or signature, if the key allows using it to
    /// decrypt or verify; the error is Vault's message.
    pub(crate) fn version_for_reading(&self, n: u32, what: &str) -> TransitResult<&Version> {
        if n > self.config.latest_version {
            return Err(TransitError::invalid(format!(
                "invalid {what}: version is too new"
            )));
        }
        if self.config.min_decryption_version > 0 && n < self.config.min_decryption_version {
            return Err(TransitError::invalid(ERR_TOO_OLD));
        }
        self.versions
            .get(&n)
            .map(|v| v.as_ref())
            .ok_or_else(|| TransitError::invalid("no such key version"))
    }

    /// The next key: this one's configuration with `config`, versions shared.
    pub(crate) fn with_config(&self, config: KeyConfig) -> Key {
        let versions = self
            .versions
            .range(config.min_available_version.max(1)..)
            .map(|(n, v)| (*n, v.clone()))
            .collect();
        Key {
            config,
            versions,
            phantom: false,
        }
    }

    /// The next key with `version` added as the latest.
    pub(crate) fn with_version(&self, version: Version) -> Key {
        let mut next = self.with_config(self.config.clone());
        next.config.latest_version = version.number;
        if next.config.min_decryption_version == 0 {
            next.config.min_decryption_version = 1;
        }
        next.versions.insert(version.number, Arc::new(version));
        next
    }

    /// The `name` Vault shows beside each public key: the curve as Go names it, or the
    /// key type.
    pub fn public_key_name(&self) -> &'static str {
        match self.config.kind {
            KeyType::EcdsaP256 => "P-256",
            KeyType::EcdsaP384 => "P-384",
            other => other.as_str(),
        }
    }

    /// The public key a read shows for `v`. A derived Ed25519 key has one per context:
    /// the one for `context`, or none without a context.
    pub fn shown_public_key(&self, v: &Version, context: &[u8]) -> TransitResult<String> {
        match &v.material {
            Material::Ed25519(k) if self.config.derived => {
                if context.is_empty() {
                    return Ok(String::new());
                }
                let derived = k.derive(context)?;
                Ok(base64::engine::general_purpose::STANDARD
                    .encode(derived.verifying_key().as_bytes()))
            }
            _ => Ok(v.public_key.clone()),
        }
    }

    /// When the latest version is due to be replaced, for keys that rotate themselves.
    pub fn next_rotation(&self) -> Option<OffsetDateTime> {
        if self.config.auto_rotate_period == 0 {
            return None;
        }
        let created = self.latest()?.created;
        let period = time::Duration::seconds(
            i64::try_from(self.config.auto_rotate_period).unwrap_or(i64::MAX),
        );
        created.checked_add(period)
    }
}
