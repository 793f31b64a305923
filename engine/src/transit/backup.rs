//! `backup/:name` and `restore(/:name)`: a key with every version it holds, in Vault's
//! own format, so that a backup taken here restores on Vault or OpenBao and theirs
//! restore here: standard base64 of the JSON of keysutil's `KeyData`, the policy with its
//! current versions in `keys` and every version from `min_available_version` on in
//! `archived_keys` (Vault moves versions below `min_decryption_version` there).
//!
//! Go writes `big.Int`s (RSA and EC key parts) as bare JSON numbers of any length; they
//! are read and written as raw JSON text, never through a float. A backup holds key
//! material in plaintext: it is only made for, and only restored as, a key that is
//! `exportable` with `allow_plaintext_backup`. Vault restores a hand-made backup without
//! those flags; this appliance refuses it, so that a key that was ever out in plaintext
//! always says so.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::BigUint;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::error::{TransitError, TransitResult};
use super::key_policy::{Key, KeyConfig, Version};
use super::keytype::{KeyType, HMAC_MAX_KEY_SIZE, HMAC_MIN_KEY_SIZE};
use super::material::{EcKey, Ed25519Key, Material, SecretBytes};
use crate::crypto::ecdsa::Curve;
use crate::crypto::rsa::RsaKey;

/// keysutil's `KeyType` numbers.
const VAULT_TYPES: [(i64, KeyType); 11] = [
    (0, KeyType::Aes256Gcm96),
    (1, KeyType::EcdsaP256),
    (2, KeyType::Ed25519),
    (3, KeyType::Rsa2048),
    (4, KeyType::Rsa4096),
    (5, KeyType::ChaCha20Poly1305),
    (6, KeyType::EcdsaP384),
    (8, KeyType::Aes128Gcm96),
    (9, KeyType::Rsa3072),
    (10, KeyType::Hmac),
    (11, KeyType::XChaCha20Poly1305),
];
const VAULT_P521: i64 = 7;
const VAULT_EXTERNAL: i64 = 10000;
/// keysutil's `Kdf_hkdf_sha256`, the only derivation this appliance does.
const KDF_HKDF_SHA256: i64 = 1;
/// The convergent nonce scheme this appliance implements (Vault's current one).
const CONVERGENT_VERSION: i64 = 3;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

#[derive(Serialize, Deserialize)]
struct KeyData {
    policy: Policy,
    archived_keys: Option<Archive>,
}

#[derive(Serialize, Deserialize, Default)]
struct Archive {
    #[serde(default)]
    keys: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Info {
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    version: i64,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Policy {
    name: String,
    #[serde(skip_serializing_if = "is_zero")]
    key_size: i64,
    keys: BTreeMap<String, Entry>,
    derived: bool,
    kdf: i64,
    convergent_encryption: bool,
    exportable: bool,
    min_decryption_version: i64,
    min_encryption_version: i64,
    latest_version: i64,
    archive_version: i64,
    archive_min_version: i64,
    min_available_version: i64,
    deletion_allowed: bool,
    convergent_version: i64,
    #[serde(rename = "type")]
    kind: i64,
    backup_info: Option<Info>,
    restore_info: Option<Info>,
    allow_plaintext_backup: bool,
    version_template: String,
    storage_prefix: String,
    /// Nanoseconds (Go's `time.Duration`).
    auto_rotate_period: i64,
    #[serde(rename = "Imported")]
    imported: bool,
    #[serde(rename = "AllowImportedKeyRotation")]
    allow_imported_key_rotation: bool,
    soft_deleted: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// keysutil's `KeyEntry`.
#[derive(Serialize, Deserialize)]
#[serde(default)]
struct Entry {
    key: Option<SecretBytes>,
    hmac_key: Option<SecretBytes>,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    ec_x: Option<Box<RawValue>>,
    ec_y: Option<Box<RawValue>>,
    ec_d: Option<Box<RawValue>>,
    rsa_key: Option<GoRsaPrivateKey>,
    rsa_public_key: Option<GoRsaPublicKey>,
    public_key: String,
    convergent_version: i64,
    creation_time: i64,
    certificate_chain: Option<Box<RawValue>>,
    external_key_ref: String,
}

/// Go's zero `time.Time`, which Vault writes for the unused archive slot of version 0.
fn go_zero_time() -> OffsetDateTime {
    time::macros::datetime!(0001-01-01 00:00 UTC)
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            key: None,
            hmac_key: None,
            time: go_zero_time(),
            ec_x: None,
            ec_y: None,
            ec_d: None,
            rsa_key: None,
            rsa_public_key: None,
            public_key: String::new(),
            convergent_version: 0,
            creation_time: 0,
            certificate_chain: None,
            external_key_ref: String::new(),
        }
    }
}

/// Go's JSON of `*rsa.PrivateKey`.
#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct GoRsaPrivateKey {
    N: Box<RawValue>,
    E: u64,
    D: Box<RawValue>,
    Primes: Vec<Box<RawValue>>,
    #[serde(default)]
    Precomputed: Option<GoRsaPrecomputed>,
}

#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct GoRsaPrecomputed {
    Dp: Option<Box<RawValue>>,
    Dq: Option<Box<RawValue>>,
    Qinv: Option<Box<RawValue>>,
    #[serde(default)]
    CRTValues: Vec<Box<RawValue>>,
}

#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct GoRsaPublicKey {
    N: Box<RawValue>,
    E: u64,
}

fn bad(msg: impl Into<String>) -> TransitError {
    TransitError::invalid(msg)
}

/// A non-negative integer as a bare JSON number.
fn number(n: &BigUint) -> TransitResult<Box<RawValue>> {
    RawValue::from_string(n.to_str_radix(10)).map_err(TransitError::internal)
}

fn number_from_bytes(be: &[u8]) -> TransitResult<Box<RawValue>> {
    number(&BigUint::from_bytes_be(be))
}

/// A bare JSON number read as a non-negative integer.
fn integer(raw: &RawValue, what: &str) -> TransitResult<BigUint> {
    BigUint::parse_bytes(raw.get().as_bytes(), 10).ok_or_else(|| {
        bad(format!(
            "invalid backup: {what} is not a non-negative integer"
        ))
    })
}

/// `n` big-endian, left-padded to `len` bytes.
fn fixed_bytes(n: &BigUint, len: usize, what: &str) -> TransitResult<Zeroizing<Vec<u8>>> {
    let be = Zeroizing::new(n.to_bytes_be());
    if be.len() > len {
        return Err(bad(format!("invalid backup: {what} is too large")));
    }
    let mut out = Zeroizing::new(vec![0u8; len - be.len()]);
    out.extend_from_slice(&be);
    Ok(out)
}

fn vault_type(kind: KeyType) -> i64 {
    VAULT_TYPES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(n, _)| *n)
        .unwrap_or_default()
}

fn key_type(n: i64) -> TransitResult<KeyType> {
    if let Some((_, k)) = VAULT_TYPES.iter().find(|(v, _)| *v == n) {
        return Ok(*k);
    }
    Err(bad(match n {
        VAULT_P521 => {
            "keys of type ecdsa-p521 cannot be restored here: this appliance does not support P-521"
                .to_string()
        }
        VAULT_EXTERNAL => {
            "keys of type external-key cannot be restored: their material is not in the backup"
                .to_string()
        }
        other => format!("invalid backup: unknown key type {other}"),
    }))
}

fn curve(kind: KeyType) -> Curve {
    if kind == KeyType::EcdsaP384 {
        Curve::P384
    } else {
        Curve::P256
    }
}

impl Key {
    /// Vault's backup of this key (standard base64 of the JSON), refused unless the key
    /// is `exportable` with `allow_plaintext_backup`.
    pub fn backup(&self) -> TransitResult<Zeroizing<String>> {
        let c = &self.config;
        if !c.exportable {
            return Err(bad("exporting is disallowed on the policy"));
        }
        if !c.allow_plaintext_backup {
            return Err(bad("plaintext backup is disallowed on the policy"));
        }
        let mut keys = BTreeMap::new();
        let mut archive = Vec::new();
        if c.min_available_version == 0 {
            archive.push(Entry::default());
        }
        for v in self.versions() {
            archive.push(self.entry(v)?);
            if v.number >= c.min_decryption_version {
                keys.insert(v.number.to_string(), self.entry(v)?);
            }
        }
        let latest = i64::from(c.latest_version);
        let policy = Policy {
            name: c.name.clone(),
            key_size: if c.kind == KeyType::Hmac {
                c.key_size as i64
            } else {
                0
            },
            keys,
            derived: c.derived,
            kdf: if c.derived { KDF_HKDF_SHA256 } else { 0 },
            convergent_encryption: c.convergent_encryption,
            exportable: c.exportable,
            min_decryption_version: c.min_decryption_version.into(),
            min_encryption_version: c.min_encryption_version.into(),
            latest_version: latest,
            archive_version: latest,
            archive_min_version: c.min_available_version.into(),
            min_available_version: c.min_available_version.into(),
            deletion_allowed: c.deletion_allowed,
            // -1: each version records its own scheme, as in new Vault keys.
            convergent_version: if c.convergent_encryption { -1 } else { 0 },
            kind: vault_type(c.kind),
            backup_info: Some(Info {
                time: OffsetDateTime::now_utc(),
                version: latest,
            }),
            restore_info: None,
            allow_plaintext_backup: c.allow_plaintext_backup,
            version_template: String::new(),
            storage_prefix: String::new(),
            auto_rotate_period: i64::try_from(c.auto_rotate_period)
                .unwrap_or(i64::MAX / NANOS_PER_SECOND)
                .saturating_mul(NANOS_PER_SECOND),
            imported: c.imported,
            allow_imported_key_rotation: c.allow_imported_rotation,
            soft_deleted: false,
        };
        let data = KeyData {
            policy,
            archived_keys: Some(Archive { keys: archive }),
        };
        let json = Zeroizing::new(serde_json::to_vec(&data).map_err(TransitError::internal)?);
        Ok(Zeroizing::new(STANDARD.encode(&*json)))
    }

    /// One version as keysutil's `KeyEntry`.
    fn entry(&self, v: &Version) -> TransitResult<Entry> {
        let mut e = Entry {
            time: v.created,
            creation_time: v.created.unix_timestamp(),
            hmac_key: Some(v.hmac_key.clone()),
            convergent_version: if self.config.convergent_encryption {
                CONVERGENT_VERSION
            } else {
                0
            },
            ..Entry::default()
        };
        match &v.material {
            Material::Aead(_) => e.key = Some(v.secret.clone()),
            // An `hmac` key's HMAC key is the key itself, in both fields.
            Material::Hmac => {
                e.key = Some(v.secret.clone());
                e.hmac_key = Some(v.secret.clone());
            }
            Material::Ed25519(k) => {
                e.key = Some(SecretBytes::new(k.go_private_bytes().to_vec()));
                e.public_key = v.public_key.clone();
            }
            Material::Ec(k) => {
                let (x, y) = k.public_key().affine_coordinates();
                e.ec_x = Some(number_from_bytes(&x)?);
                e.ec_y = Some(number_from_bytes(&y)?);
                e.ec_d = Some(number_from_bytes(&k.scalar_bytes())?);
                e.public_key = v.public_key.clone();
            }
            Material::Rsa(k) => {
                let p = &k.private;
                let precomputed = match p.primes() {
                    [first, second] => Some(go_precomputed(p.d(), first, second)?),
                    _ => None,
                };
                e.rsa_key = Some(GoRsaPrivateKey {
                    N: number(p.n())?,
                    E: rsa_exponent(p.e())?,
                    D: number(p.d())?,
                    Primes: p
                        .primes()
                        .iter()
                        .map(number)
                        .collect::<TransitResult<_>>()?,
                    Precomputed: precomputed,
                });
                e.rsa_public_key = Some(GoRsaPublicKey {
                    N: number(k.public.n())?,
                    E: rsa_exponent(k.public.e())?,
                });
            }
        }
        Ok(e)
    }
}

/// Go's CRT values for primes `p` and `q`: `d mod (p-1)`, `d mod (q-1)` and
/// `q^-1 mod p` (by Fermat, `p` being prime).
fn go_precomputed(d: &BigUint, p: &BigUint, q: &BigUint) -> TransitResult<GoRsaPrecomputed> {
    let one = BigUint::from(1u8);
    let two = BigUint::from(2u8);
    let dp = d % &(p - &one);
    let dq = d % &(q - &one);
    let qinv = q.modpow(&(p - &two), p);
    Ok(GoRsaPrecomputed {
        Dp: Some(number(&dp)?),
        Dq: Some(number(&dq)?),
        Qinv: Some(number(&qinv)?),
        CRTValues: Vec::new(),
    })
}

fn rsa_exponent(e: &BigUint) -> TransitResult<u64> {
    let bytes = e.to_bytes_be();
    if bytes.len() > 8 {
        return Err(TransitError::internal("RSA public exponent too large"));
    }
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// A backup decoded: the key it holds, under its own name or the one given.
pub(crate) fn parse_backup(backup: &str, rename: Option<&str>) -> TransitResult<Key> {
    let json = Zeroizing::new(
        STANDARD
            .decode(backup.trim())
            .map_err(|e| bad(super::base64_error(&e)))?,
    );
    let data: KeyData =
        serde_json::from_slice(&json).map_err(|e| bad(format!("invalid backup: {e}")))?;
    let p = data.policy;
    let name = rename
        .filter(|n| !n.is_empty())
        .unwrap_or(&p.name)
        .to_string();
    if !super::valid_key_name(&name) {
        return Err(bad(format!("invalid key name {name:?}")));
    }
    if !p.exportable || !p.allow_plaintext_backup {
        return Err(bad(
            "the backed-up key is not exportable with allow_plaintext_backup: this appliance restores only keys whose plaintext backup was allowed",
        ));
    }
    if p.soft_deleted {
        return Err(bad("the backed-up key is soft-deleted"));
    }
    if !p.version_template.is_empty() {
        return Err(bad(
            "the backed-up key has a version_template, which this appliance does not support",
        ));
    }
    let kind = key_type(p.kind)?;
    if p.derived && p.kdf != KDF_HKDF_SHA256 {
        return Err(bad(
            "the backed-up key derives with the legacy hmac-sha256-counter KDF, which this appliance does not support",
        ));
    }
    let version = |v: i64, what: &str| {
        u32::try_from(v).map_err(|_| bad(format!("invalid backup: {what} {v}")))
    };
    let latest = version(p.latest_version, "latest_version")?;
    let min_available = version(p.min_available_version, "min_available_version")?;
    let min_decryption = version(p.min_decryption_version, "min_decryption_version")?.max(1);
    let min_encryption = version(p.min_encryption_version, "min_encryption_version")?;
    if latest == 0 || min_decryption > latest || min_encryption > latest {
        return Err(bad("invalid backup: inconsistent key versions"));
    }
    let auto_rotate_period = u64::try_from(p.auto_rotate_period / NANOS_PER_SECOND)
        .map_err(|_| bad("invalid backup: negative auto_rotate_period"))?;
    let config = KeyConfig {
        name,
        kind,
        derived: p.derived,
        convergent_encryption: p.convergent_encryption,
        exportable: p.exportable,
        allow_plaintext_backup: p.allow_plaintext_backup,
        deletion_allowed: p.deletion_allowed,
        latest_version: latest,
        min_decryption_version: min_decryption,
        min_encryption_version: min_encryption,
        min_available_version: min_available,
        auto_rotate_period,
        key_size: 0,
        imported: p.imported,
        allow_imported_rotation: p.allow_imported_key_rotation,
    };
    let archive = data.archived_keys.unwrap_or_default().keys;
    let archive_min = version(p.archive_min_version, "archive_min_version")?;
    let mut current = p.keys;
    let mut archive: BTreeMap<u32, Entry> = archive
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| Some((archive_min.checked_add(u32::try_from(i).ok()?)?, e)))
        .collect();
    let mut key = Key {
        config,
        versions: BTreeMap::new(),
        phantom: false,
    };
    let mut key_size = 0;
    for n in min_available.max(1)..=latest {
        let entry = current
            .remove(&n.to_string())
            .or_else(|| archive.remove(&n))
            .ok_or_else(|| bad(format!("invalid backup: version {n} is missing")))?;
        let version = restore_entry(&key.config, n, entry, p.convergent_version)?;
        key_size = version.secret.len();
        key.versions.insert(n, std::sync::Arc::new(version));
    }
    if kind == KeyType::Hmac {
        key.config.key_size = key_size;
    }
    Ok(key)
}

/// One `KeyEntry` as a version of a key configured as `config`.
fn restore_entry(
    config: &KeyConfig,
    n: u32,
    e: Entry,
    policy_convergent_version: i64,
) -> TransitResult<Version> {
    let kind = config.kind;
    let missing = |what: &str| bad(format!("invalid backup: version {n} has no {what}"));
    if !e.external_key_ref.is_empty() {
        return Err(bad(format!(
            "version {n} refers to an external key, whose material is not in the backup"
        )));
    }
    if e.certificate_chain
        .as_ref()
        .is_some_and(|c| c.get() != "null")
    {
        return Err(bad(format!(
            "version {n} carries a certificate chain, which this appliance does not keep"
        )));
    }
    if config.convergent_encryption {
        let scheme = if policy_convergent_version == -1 {
            e.convergent_version
        } else {
            policy_convergent_version
        };
        if scheme != CONVERGENT_VERSION {
            return Err(bad(format!(
                "version {n} uses convergent encryption version {scheme}; this appliance implements version {CONVERGENT_VERSION} only"
            )));
        }
    }
    let created = if e.time == go_zero_time() {
        OffsetDateTime::from_unix_timestamp(e.creation_time)
            .map_err(|_| bad(format!("invalid backup: version {n} has no creation time")))?
    } else {
        e.time
    };
    let hmac_key = match e.hmac_key {
        Some(k) => k,
        None if kind == KeyType::Hmac => SecretBytes::default(),
        None => return Err(missing("hmac_key")),
    };
    let secret = match kind {
        k if k.is_aead() => {
            let key = e.key.ok_or_else(|| missing("key"))?;
            if key.len() != k.aead_key_len() {
                return Err(bad(format!(
                    "invalid backup: version {n} has a key of {} bytes",
                    key.len()
                )));
            }
            key
        }
        KeyType::Hmac => {
            let key = e.key.ok_or_else(|| missing("key"))?;
            if !(HMAC_MIN_KEY_SIZE..=HMAC_MAX_KEY_SIZE).contains(&key.len()) {
                return Err(bad(format!(
                    "invalid backup: version {n} has an HMAC key of {} bytes",
                    key.len()
                )));
            }
            key
        }
        KeyType::Ed25519 => {
            // Go's private key: the seed and the public key it makes.
            let key = e.key.ok_or_else(|| missing("key"))?;
            let bytes = key.as_slice();
            let seed: [u8; 32] =
                bytes
                    .get(..32)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "invalid backup: version {n} has a short Ed25519 key"
                        ))
                    })?;
            let ours = Ed25519Key {
                signing: ed25519_dalek::SigningKey::from_bytes(&seed),
            };
            if bytes.len() != 64 || *ours.go_private_bytes() != *bytes {
                return Err(bad(format!(
                    "invalid backup: version {n}'s Ed25519 key does not match its public half"
                )));
            }
            SecretBytes::new(seed.to_vec())
        }
        k if k.is_ecdsa() => {
            let d = integer(&e.ec_d.ok_or_else(|| missing("ec_d"))?, "ec_d")?;
            let len = if k == KeyType::EcdsaP384 { 48 } else { 32 };
            let scalar = fixed_bytes(&d, len, "ec_d")?;
            let ec = EcKey::from_scalar(curve(k), &scalar)
                .map_err(|_| bad(format!("invalid backup: version {n} has an invalid EC key")))?;
            if let (Some(x), Some(y)) = (&e.ec_x, &e.ec_y) {
                let (ox, oy) = ec.public_key().affine_coordinates();
                let x = fixed_bytes(&integer(x, "ec_x")?, len, "ec_x")?;
                let y = fixed_bytes(&integer(y, "ec_y")?, len, "ec_y")?;
                let same = x.as_slice() == ox.as_slice() && y.as_slice() == oy.as_slice();
                if !same {
                    return Err(bad(format!(
                        "invalid backup: version {n}'s EC public key does not match its private key"
                    )));
                }
            }
            SecretBytes::new(scalar.to_vec())
        }
        k if k.is_rsa() => {
            let r = e.rsa_key.ok_or_else(|| missing("rsa_key"))?;
            let primes = r
                .Primes
                .iter()
                .map(|p| integer(p, "an RSA prime"))
                .collect::<TransitResult<Vec<_>>>()?;
            let key = RsaKey::from_components(
                integer(&r.N, "N")?,
                BigUint::from(r.E),
                integer(&r.D, "D")?,
                primes,
            )
            .map_err(|_| {
                bad(format!(
                    "invalid backup: version {n} has an invalid RSA key"
                ))
            })?;
            if key.public.size() * 8 != k.rsa_bits() {
                return Err(bad(format!(
                    "invalid backup: version {n} is a {}-bit RSA key in a {k} key",
                    key.public.size() * 8
                )));
            }
            SecretBytes::new(key.to_pkcs8_der().map_err(TransitError::internal)?.to_vec())
        }
        other => return Err(bad(format!("key type {other} cannot be restored"))),
    };
    // An `hmac` key's HMAC key is the key itself: the field is kept empty here.
    let hmac_key = if kind == KeyType::Hmac {
        SecretBytes::default()
    } else {
        hmac_key
    };
    Version::build(config, n, created, secret, hmac_key)
}
