//! GCP Cloud KMS: key import through an import job, with a service account's OAuth token.
//!
//! The protocol, as Google documents it (Cloud KMS REST v1 reference, "Importing a key"
//! guide, and "Using OAuth 2.0 for Server to Server Applications"):
//! - Auth: a JWT signed RS256 with the key file's `private_key`, claims `iss`
//!   (`client_email`), `scope` (`https://www.googleapis.com/auth/cloudkms`), `aud`
//!   (the file's `token_uri`), `iat`, `exp` (at most an hour later); POSTed as a form
//!   (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion=<jwt>`) to
//!   `token_uri`, which answers `{"access_token", "expires_in", "token_type": "Bearer"}` or
//!   `{"error": "invalid_grant", "error_description": ...}`.
//! - `POST v1/{keyRing}/importJobs?importJobId=ID` with `importMethod`
//!   (`RSA_OAEP_3072_SHA256_AES_256`, `RSA_OAEP_3072_SHA1_AES_256`, ...) and
//!   `protectionLevel` (`SOFTWARE` | `HSM`, matching the crypto key's). The job starts in
//!   `PENDING_GENERATION`; once `ACTIVE`, `publicKey.pem` is the wrapping key (RSA-3072
//!   for these methods). A job expires after 3 days, so each import makes a fresh one.
//! - `POST v1/{keyRing}/cryptoKeys?cryptoKeyId=ID&skipInitialVersionCreation=true` with
//!   `purpose`, `importOnly: true`, `versionTemplate {algorithm, protectionLevel}`,
//!   `labels` (keys and values: lowercase letters, digits, `_` and `-`, at most 63
//!   characters, keys starting with a letter; at most 64 labels).
//! - `POST v1/{cryptoKey}/cryptoKeyVersions:import` with `algorithm`
//!   (`RSA_SIGN_PKCS1_2048_SHA256`, `RSA_DECRYPT_OAEP_3072_SHA256`, ...), `importJob` (its
//!   name) and `wrappedKey`: base64 of RSA-OAEP(ephemeral AES-256, empty label, MGF1 with
//!   the method's hash) || AES-KWP (RFC 5649) of the PKCS#8 PrivateKeyInfo, which is
//!   `CKM_RSA_AES_KEY_WRAP`'s output. The new version is `PENDING_IMPORT`, then `ENABLED`
//!   or `IMPORT_FAILED` (`importFailureReason`).
//! - Errors: `{"error": {"code": 403, "message": "Permission 'cloudkms.importJobs.create'
//!   denied on resource ...", "status": "PERMISSION_DENIED"}}`, shown as
//!   `PERMISSION_DENIED: Permission ...`.
//!
//! The seed exports RSA keys only to GCP. A key ring is never created here: it cannot be
//! deleted in GCP, so making one is the customer's decision, and a missing one is a
//! permanent error with GCP's message.
//!
//! Idempotency. Crypto key versions carry no labels, so the crypto key does: `ironseal-
//! key-id` (the appliance key), `ironseal-key-version` (the newest version synced) and
//! `ironseal-v<version>` = the GCP version number of each appliance version. A sync looks
//! there first; failing that it compares the public key of every imported version no
//! label names with the appliance version's public key, which finds an import whose
//! label was never written (a crash, or a lost answer, between the import and the
//! PATCH) and an import whose answer was lost. The labels are a shortcut, not the truth:
//! an account with only `roles/cloudkms.importer` cannot PATCH them, and the sync still
//! succeeds. What no look can close: two syncs of the same export running at once on
//! two appliances (the engine runs one per export per process) can both import before
//! either's version is visible, leaving two equal versions; and a version destroyed at
//! GCP is imported again.

mod auth;
mod kms;

use std::collections::HashSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::cloud_exports::{
    ExportMaterial, ExportedKey, ProviderRef, SyncError, SyncFuture, SyncRequest,
};
use engine::managed_keys::{Algorithm, Usage};
use hsm_bridge::WrapMechanism;
use reqwest::{Method, Url};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::RsaPublicKey;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, ZeroizeOnDrop};

use self::auth::ServiceAccount;
use self::kms::{Found, Kms};
use crate::fields::check_fields;
use crate::{boundary, http, ProviderClient};

const DEFAULT_ENDPOINT: &str = "https://cloudkms.googleapis.com";
const LABEL_KEY_ID: &str = "ironseal-key-id";
const LABEL_KEY_VERSION: &str = "ironseal-key-version";
const VERSION_LABEL_PREFIX: &str = "ironseal-v";
/// GCP allows 64 labels on a resource; the customer's own keep the rest. Older versions
/// past this many are still found by their public key.
const MAX_VERSION_LABELS: usize = 48;
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Import-job key generation and version import take seconds at GCP; the engine bounds
/// the whole sync anyway.
const POLL_LIMIT: Duration = Duration::from_secs(45);

pub(crate) struct Gcp;

impl Gcp {
    pub(crate) fn new() -> Self {
        Gcp
    }
}

/// Where the export goes, from its validated `providerMetadata`.
struct Destination {
    key_ring: String,
    key_name: Option<String>,
    endpoint: Url,
}

impl Destination {
    fn from_metadata(metadata: &Map<String, Value>) -> Result<Self, String> {
        let text = |name: &str| metadata.get(name).and_then(Value::as_str);
        let mut segments = Vec::new();
        for name in ["projectId", "location", "keyRing"] {
            let value = text(name).ok_or_else(|| format!("providerMetadata.{name} is required"))?;
            check_resource_id(&format!("providerMetadata.{name}"), value)?;
            segments.push(value);
        }
        let key_name = text("keyName").map(str::to_string);
        if let Some(name) = &key_name {
            check_crypto_key_id("providerMetadata.keyName", name)?;
        }
        Ok(Destination {
            key_ring: format!(
                "projects/{}/locations/{}/keyRings/{}",
                segments[0], segments[1], segments[2]
            ),
            key_name,
            endpoint: http::location(metadata, "endpoint", DEFAULT_ENDPOINT)?,
        })
    }
}

/// Project ids, locations and key ring ids go into URL paths as they are.
fn check_resource_id(field: &str, value: &str) -> Result<(), String> {
    let fits = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{field} may hold letters, digits, '-', '_', '.' and ':' only: {value:?}"
        ))
    }
}

/// GCP's rule for crypto key ids: `[a-zA-Z0-9_-]{1,63}`.
fn check_crypto_key_id(field: &str, value: &str) -> Result<(), String> {
    let fits = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{field} must be 1 to 63 letters, digits, '-' or '_' (GCP's rule for crypto key ids): {value:?}"
        ))
    }
}

/// The appliance key's name as a crypto key id: other characters become `-`.
fn default_crypto_key_id(key: &ExportedKey) -> String {
    let id: String = key
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if id.is_empty() {
        format!("ironseal-{}", key.key_id)
    } else {
        id
    }
}

fn rsa_bits(algorithm: Algorithm) -> Option<u32> {
    match algorithm {
        Algorithm::Rsa2048 => Some(2048),
        Algorithm::Rsa3072 => Some(3072),
        Algorithm::Rsa4096 => Some(4096),
        _ => None,
    }
}

fn refuse_algorithm(algorithm: Algorithm) -> String {
    format!(
        "GcpKms exports take RSA keys only (RSA_2048, RSA_3072, RSA_4096); a {} key cannot \
         be exported to GCP Cloud KMS",
        algorithm.as_str()
    )
}

/// The saved credentials of a GCP export.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct Credentials {
    #[serde(rename = "serviceAccountJson")]
    service_account_json: String,
}

impl ProviderClient for Gcp {
    fn validate(
        &self,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        _allow_unwrapped_export: bool,
    ) -> Result<(), String> {
        check_fields(
            "providerMetadata",
            metadata,
            &["projectId", "location", "keyRing"],
            &["keyName", "endpoint", "caCertPem"],
        )?;
        Destination::from_metadata(metadata)?;
        http::extra_anchors(metadata)?;
        metadata
            .entry("endpoint")
            .or_insert_with(|| Value::String(DEFAULT_ENDPOINT.into()));
        if let Some(credentials) = credentials {
            check_fields("credentials", credentials, &["serviceAccountJson"], &[])?;
            let json = credentials
                .get("serviceAccountJson")
                .and_then(Value::as_str)
                .unwrap_or_default();
            ServiceAccount::parse("credentials.serviceAccountJson", json)?;
        }
        rsa_bits(algorithm)
            .map(|_| ())
            .ok_or_else(|| refuse_algorithm(algorithm))
    }

    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a> {
        Box::pin(sync(request))
    }
}

/// The format GCP calls `RSA_OAEP_3072_SHA256_AES_256`, else its SHA-1 twin, as far as
/// the boundary holding the key produces it correctly.
fn choose_mechanism(
    material: &dyn ExportMaterial,
) -> Result<(WrapMechanism, &'static str), SyncError> {
    let preferred = [
        (
            WrapMechanism::RsaAesKeyWrapSha256,
            "RSA_OAEP_3072_SHA256_AES_256",
        ),
        (
            WrapMechanism::RsaAesKeyWrapSha1,
            "RSA_OAEP_3072_SHA1_AES_256",
        ),
    ];
    let mut reasons = Vec::new();
    for (mechanism, method) in preferred {
        match boundary::off_reactor(|| material.supports(mechanism)) {
            Ok(()) => return Ok((mechanism, method)),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(SyncError::boundary(format!(
        "the key's boundary cannot produce a GCP import (RSA_OAEP_3072_SHA256_AES_256 or \
         RSA_OAEP_3072_SHA1_AES_256): {}",
        reasons.join("; ")
    )))
}

async fn sync(request: SyncRequest<'_>) -> Result<ProviderRef, SyncError> {
    let key = request.key;
    let destination = Destination::from_metadata(request.metadata).map_err(SyncError::permanent)?;
    let bits = rsa_bits(key.algorithm)
        .ok_or_else(|| SyncError::permanent(refuse_algorithm(key.algorithm)))?;
    let public_key = key
        .public_key_der
        .as_deref()
        .and_then(|der| RsaPublicKey::from_public_key_der(der).ok())
        .ok_or_else(|| {
            SyncError::permanent(format!(
                "version {} of key {} has no RSA public key to check the import against",
                key.version, key.key_id
            ))
        })?;
    let (mechanism, import_method) = choose_mechanism(request.material)?;
    let credentials: Credentials = serde_json::from_str(request.credentials).map_err(|_| {
        SyncError::permanent(
            "the saved credentials are not GcpKms credentials (serviceAccountJson)",
        )
    })?;
    let account = ServiceAccount::parse(
        "credentials.serviceAccountJson",
        &credentials.service_account_json,
    )
    .map_err(SyncError::permanent)?;

    let client = http::client(request.metadata).map_err(SyncError::permanent)?;
    let token = auth::access_token(&client, &account).await?;
    let kms = Kms::new(client, destination.endpoint.clone(), token);

    kms.expect(Method::GET, &destination.key_ring, &[], None)
        .await?;
    let crypto_key_id = destination
        .key_name
        .clone()
        .unwrap_or_else(|| default_crypto_key_id(key));
    let key_name = format!("{}/cryptoKeys/{crypto_key_id}", destination.key_ring);
    let crypto_key = ensure_crypto_key(
        &kms,
        &destination.key_ring,
        &crypto_key_id,
        &key_name,
        key,
        bits,
    )
    .await?;
    let mut labels = crypto_key["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(owner) = labels.get(LABEL_KEY_ID).and_then(Value::as_str) {
        if owner != key.key_id.to_string() {
            return Err(SyncError::permanent(format!(
                "crypto key {key_name} holds the versions of another appliance key ({owner}); \
                 give this export another keyName"
            )));
        }
    }
    let algorithm = match crypto_key["purpose"].as_str() {
        Some("ASYMMETRIC_DECRYPT") => format!("RSA_DECRYPT_OAEP_{bits}_SHA256"),
        Some("ASYMMETRIC_SIGN") | None => format!("RSA_SIGN_PKCS1_{bits}_SHA256"),
        Some(other) => {
            return Err(SyncError::permanent(format!(
                "crypto key {key_name} has purpose {other}; an RSA key imports into an \
                 ASYMMETRIC_SIGN or ASYMMETRIC_DECRYPT crypto key"
            )))
        }
    };

    if let Some(version) = find_imported(&kms, &key_name, &labels, key.version, &public_key).await?
    {
        record(&kms, &key_name, &mut labels, key, &version).await;
        return Ok(ProviderRef {
            key_id: key_name,
            key_version: Some(version),
        });
    }

    let protection = crypto_key["versionTemplate"]["protectionLevel"]
        .as_str()
        .unwrap_or("HSM");
    let (job, wrapping_der) =
        import_job(&kms, &destination.key_ring, import_method, protection).await?;
    let wrapped = boundary::off_reactor(|| request.material.wrap(&wrapping_der, mechanism))
        .map_err(SyncError::permanent)?;
    let imported = kms
        .expect(
            Method::POST,
            &format!("{key_name}/cryptoKeyVersions:import"),
            &[],
            Some(&json!({
                "algorithm": algorithm,
                "importJob": job,
                "wrappedKey": STANDARD.encode(&wrapped),
            })),
        )
        .await?;
    let version = settled_version(&kms, imported).await?;
    if version["state"].as_str() != Some("ENABLED") {
        return Err(SyncError::permanent(format!(
            "IMPORT_FAILED: {}",
            version["importFailureReason"]
                .as_str()
                .unwrap_or("GCP did not say why")
        )));
    }
    let version_name = version["name"].as_str().unwrap_or_default().to_string();
    record(&kms, &key_name, &mut labels, key, &version_name).await;
    Ok(ProviderRef {
        key_id: key_name,
        key_version: Some(version_name),
    })
}

/// The crypto key, made import-only (with no first version) when missing.
async fn ensure_crypto_key(
    kms: &Kms,
    key_ring: &str,
    crypto_key_id: &str,
    key_name: &str,
    key: &ExportedKey,
    bits: u32,
) -> Result<Value, SyncError> {
    if let Found::Yes(existing) = kms.get(key_name).await? {
        return Ok(existing);
    }
    let (purpose, algorithm) = match key.usage {
        Usage::SignVerify => ("ASYMMETRIC_SIGN", format!("RSA_SIGN_PKCS1_{bits}_SHA256")),
        Usage::EncryptDecrypt => (
            "ASYMMETRIC_DECRYPT",
            format!("RSA_DECRYPT_OAEP_{bits}_SHA256"),
        ),
    };
    let body = json!({
        "purpose": purpose,
        "importOnly": true,
        "versionTemplate": {
            "algorithm": algorithm,
            "protectionLevel": "HSM",
        },
        "labels": { LABEL_KEY_ID: key.key_id.to_string() },
    });
    let query = [
        ("cryptoKeyId", crypto_key_id),
        ("skipInitialVersionCreation", "true"),
    ];
    let path = format!("{key_ring}/cryptoKeys");
    match kms.expect(Method::POST, &path, &query, Some(&body)).await {
        // Another sync made it between the look and the create.
        Err(e) if e.message.starts_with("ALREADY_EXISTS") => {
            kms.expect(Method::GET, key_name, &[], None).await
        }
        other => other,
    }
}

/// The GCP version already holding this appliance version, if any: by label, else by
/// public key among the imported versions no label names.
async fn find_imported(
    kms: &Kms,
    key_name: &str,
    labels: &Map<String, Value>,
    version: u32,
    public_key: &RsaPublicKey,
) -> Result<Option<String>, SyncError> {
    if let Some(number) = labels.get(&version_label(version)).and_then(Value::as_str) {
        let name = format!("{key_name}/cryptoKeyVersions/{number}");
        if let Found::Yes(found) = kms.get(&name).await? {
            if is_live(&settled_version(kms, found).await?) {
                return Ok(Some(name));
            }
        }
    }
    let labelled: HashSet<&str> = labels
        .iter()
        .filter(|(k, _)| k.starts_with(VERSION_LABEL_PREFIX))
        .filter_map(|(_, v)| v.as_str())
        .collect();
    for candidate in list_versions(kms, key_name).await? {
        let name = candidate["name"].as_str().unwrap_or_default().to_string();
        let number = name.rsplit('/').next().unwrap_or_default();
        if labelled.contains(number) || candidate["importJob"].as_str().is_none() {
            continue;
        }
        let settled = settled_version(kms, candidate).await?;
        if settled["state"].as_str() != Some("ENABLED") {
            continue;
        }
        let Found::Yes(published) = kms.get(&format!("{name}/publicKey")).await? else {
            continue;
        };
        let matches = published["pem"]
            .as_str()
            .and_then(|pem| RsaPublicKey::from_public_key_pem(pem).ok())
            .is_some_and(|k| &k == public_key);
        if matches {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn version_label(version: u32) -> String {
    format!("{VERSION_LABEL_PREFIX}{version}")
}

fn is_live(version: &Value) -> bool {
    matches!(version["state"].as_str(), Some("ENABLED" | "DISABLED"))
}

async fn list_versions(kms: &Kms, key_name: &str) -> Result<Vec<Value>, SyncError> {
    let path = format!("{key_name}/cryptoKeyVersions");
    let mut versions = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut query = vec![("pageSize", "1000")];
        if !page_token.is_empty() {
            query.push(("pageToken", page_token.as_str()));
        }
        let page = kms.expect(Method::GET, &path, &query, None).await?;
        if let Some(list) = page["cryptoKeyVersions"].as_array() {
            versions.extend(list.iter().cloned());
        }
        match page["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => page_token = next.to_string(),
            _ => return Ok(versions),
        }
    }
}

/// `version` once GCP has finished importing it (not `PENDING_IMPORT`).
async fn settled_version(kms: &Kms, mut version: Value) -> Result<Value, SyncError> {
    let deadline = tokio::time::Instant::now() + POLL_LIMIT;
    while version["state"].as_str() == Some("PENDING_IMPORT") {
        if tokio::time::Instant::now() >= deadline {
            return Err(SyncError::retryable(format!(
                "GCP has not finished importing {} yet",
                version["name"].as_str().unwrap_or("the version")
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        let name = version["name"].as_str().unwrap_or_default().to_string();
        version = kms.expect(Method::GET, &name, &[], None).await?;
    }
    Ok(version)
}

/// A fresh import job, once `ACTIVE`: its name and its wrapping key (DER SPKI).
async fn import_job(
    kms: &Kms,
    key_ring: &str,
    import_method: &str,
    protection_level: &str,
) -> Result<(String, Vec<u8>), SyncError> {
    let id = format!("ironseal-{}", uuid::Uuid::new_v4());
    let mut job = kms
        .expect(
            Method::POST,
            &format!("{key_ring}/importJobs"),
            &[("importJobId", id.as_str())],
            Some(&json!({
                "importMethod": import_method,
                "protectionLevel": protection_level,
            })),
        )
        .await?;
    let name = job["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{key_ring}/importJobs/{id}"));
    let deadline = tokio::time::Instant::now() + POLL_LIMIT;
    loop {
        match job["state"].as_str() {
            Some("ACTIVE") => break,
            Some("PENDING_GENERATION") if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL_INTERVAL).await;
                job = kms.expect(Method::GET, &name, &[], None).await?;
            }
            Some("PENDING_GENERATION") => {
                return Err(SyncError::retryable(format!(
                    "GCP has not generated the wrapping key of {name} yet"
                )))
            }
            other => {
                return Err(SyncError::permanent(format!(
                    "import job {name} is {} rather than ACTIVE",
                    other.unwrap_or("in no state")
                )))
            }
        }
    }
    let wrapping_der = job["publicKey"]["pem"]
        .as_str()
        .and_then(|pem| RsaPublicKey::from_public_key_pem(pem).ok())
        .and_then(|key| key.to_public_key_der().ok())
        .ok_or_else(|| {
            SyncError::permanent(format!(
                "import job {name} has no RSA wrapping key (publicKey.pem)"
            ))
        })?;
    Ok((name, wrapping_der.as_bytes().to_vec()))
}

/// Writes the labels that map this appliance version to `version_name`. Best effort:
/// the import has happened, and a later sync finds it by its public key when the
/// account may not update the crypto key.
async fn record(
    kms: &Kms,
    key_name: &str,
    labels: &mut Map<String, Value>,
    key: &ExportedKey,
    version_name: &str,
) {
    let before = labels.clone();
    let number = version_name.rsplit('/').next().unwrap_or_default();
    labels.insert(LABEL_KEY_ID.into(), Value::String(key.key_id.to_string()));
    labels.insert(version_label(key.version), Value::String(number.into()));
    let newest = labels
        .get(LABEL_KEY_VERSION)
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(key.version, |v| v.max(key.version));
    labels.insert(LABEL_KEY_VERSION.into(), Value::String(newest.to_string()));
    let mut versions: Vec<u32> = labels
        .keys()
        .filter_map(|k| k.strip_prefix(VERSION_LABEL_PREFIX))
        .filter_map(|v| v.parse().ok())
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    for old in versions.into_iter().skip(MAX_VERSION_LABELS) {
        labels.remove(&version_label(old));
    }
    if *labels == before {
        return;
    }
    let patched = kms
        .call(
            Method::PATCH,
            key_name,
            &[("updateMask", "labels")],
            Some(&json!({ "labels": labels })),
        )
        .await;
    if let Err(e) = patched {
        tracing::warn!(
            crypto_key = key_name,
            error = %e,
            "the crypto key's labels were not updated; the next sync finds the version by its public key"
        );
    }
}
