//! Scaleway Key Manager (v1alpha1): AES-256 key material imported into keys of origin
//! `external`, authenticated by the API key's secret in `X-Auth-Token`.
//!
//! The protocol, as Scaleway documents it (Key Manager API reference, "Using Bring Your
//! Own Key with the Scaleway API and CLI", and the generated SDKs' v1alpha1 types):
//! - `POST {endpoint}/key-manager/v1alpha1/regions/{region}/keys` with `project_id`,
//!   `name`, `usage: {"symmetric_encryption": "aes_256_gcm"}`, `description`, `tags`
//!   (free strings), `unprotected`, `origin: "external"`; the key starts in
//!   `pending_key_material`.
//! - `POST .../keys/{key_id}/import-key-material` with `key_material` (base64) and an
//!   optional `salt`: Key Manager derives the key from the material and the key becomes
//!   `enabled`. The material travels unwrapped, protected by TLS alone.
//! - `GET .../keys?project_id=...&tags=...` lists keys (`keys`, `total_count`, paged by
//!   `page`/`page_size`).
//! - Only AES-256-GCM keys take imported material ("only AES keys can be imported, as
//!   they are derived from key material"); there is no asymmetric import.
//! - Errors: `{"type": "permissions_denied", "message": "insufficient permissions",
//!   "details": [{"resource": "kms", "action": "write"}]}`, shown as `PermissionsDenied —
//!   insufficient permissions on resource 'kms' (write)`; a bad or expired secret is a
//!   401 `{"type": "denied_authentication", "message": "authentication is denied",
//!   "method": "api_key", "reason": ...}`.
//!
//! Rotation. The documentation says an external key takes material only while it is
//! `pending_key_material`: a second `import-key-material` answers *precondition
//! failed*, and `delete-key-material` before re-importing destroys the previous
//! rotation (older ciphertexts no longer decrypt). So each appliance version becomes its
//! own Scaleway key, tagged `ironseal-key-id=<uuid>` and `ironseal-key-version=<n>` and
//! named `<keyName>-v<n>`; the previous versions' keys stay usable.
//!
//! Idempotency: a sync first lists the project's keys carrying both tags. A key left in
//! `pending_key_material` (a crash between create and import) receives the material; an
//! `enabled` one is the answer. Two syncs of one export running at once on two appliances
//! can still both create a key before either is listed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::cloud_exports::{ProviderRef, SyncError, SyncFuture, SyncRequest};
use engine::managed_keys::Algorithm;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fields::check_fields;
use crate::{boundary, http, ProviderClient};

const DEFAULT_ENDPOINT: &str = "https://api.scaleway.com";
const TAG_KEY_ID: &str = "ironseal-key-id=";
const TAG_KEY_VERSION: &str = "ironseal-key-version=";
const PAGE_SIZE: usize = 100;

pub(crate) struct Scaleway;

impl Scaleway {
    pub(crate) fn new() -> Self {
        Scaleway
    }
}

/// Where the export goes, from its validated `providerMetadata`.
struct Destination {
    project_id: String,
    /// `{endpoint}/key-manager/v1alpha1/regions/{region}/keys`.
    keys: Url,
    key_name: Option<String>,
}

impl Destination {
    fn from_metadata(metadata: &Map<String, Value>) -> Result<Self, String> {
        let text = |name: &str| metadata.get(name).and_then(Value::as_str);
        let project_id = text("projectId").ok_or("providerMetadata.projectId is required")?;
        let region = text("region").ok_or("providerMetadata.region is required")?;
        for (field, value) in [("projectId", project_id), ("region", region)] {
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "providerMetadata.{field} may hold letters, digits, '-' and '_' only: {value:?}"
                ));
            }
        }
        let endpoint = http::location(metadata, "endpoint", DEFAULT_ENDPOINT)?;
        Ok(Destination {
            project_id: project_id.to_string(),
            keys: http::join(
                &endpoint,
                &["key-manager", "v1alpha1", "regions", region, "keys"],
            ),
            key_name: text("keyName").map(str::to_string),
        })
    }

    fn key(&self, id: &str, verb: &str) -> Url {
        http::join(&self.keys, &[id, verb])
    }
}

/// Why a key cannot go to Scaleway, or `None` when it can.
fn refusal(algorithm: Algorithm, allow_unwrapped_export: bool) -> Option<String> {
    if algorithm != Algorithm::Aes256 {
        return Some(format!(
            "ScalewayKms exports take AES-256 keys only: Scaleway Key Manager's BYOK imports \
             AES-256 key material, sent unwrapped over TLS, and has no import for asymmetric \
             keys, so a {} key cannot be exported there",
            algorithm.as_str()
        ));
    }
    if !allow_unwrapped_export {
        return Some(
            "ScalewayKms takes the AES-256 key material unwrapped, protected by TLS alone, so \
             only keys created with allowUnwrappedExport: true can be exported there"
                .into(),
        );
    }
    None
}

/// The saved credentials of a Scaleway export: an API key. Only the secret authenticates;
/// the access key names it (and is kept so the export says which key it uses).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct Credentials {
    #[serde(rename = "secretKey")]
    secret_key: String,
}

impl ProviderClient for Scaleway {
    fn validate(
        &self,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        allow_unwrapped_export: bool,
    ) -> Result<(), String> {
        check_fields(
            "providerMetadata",
            metadata,
            &["projectId", "region"],
            &["keyName", "endpoint", "caCertPem"],
        )?;
        Destination::from_metadata(metadata)?;
        http::extra_anchors(metadata)?;
        metadata
            .entry("endpoint")
            .or_insert_with(|| Value::String(DEFAULT_ENDPOINT.into()));
        if let Some(credentials) = credentials {
            check_fields("credentials", credentials, &["accessKey", "secretKey"], &[])?;
        }
        match refusal(algorithm, allow_unwrapped_export) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a> {
        Box::pin(sync(request))
    }
}

async fn sync(request: SyncRequest<'_>) -> Result<ProviderRef, SyncError> {
    let key = request.key;
    if let Some(reason) = refusal(key.algorithm, key.allow_unwrapped_export) {
        return Err(SyncError::permanent(reason));
    }
    let destination = Destination::from_metadata(request.metadata).map_err(SyncError::permanent)?;
    let credentials: Credentials = serde_json::from_str(request.credentials).map_err(|_| {
        SyncError::permanent(
            "the saved credentials are not ScalewayKms credentials (accessKey, secretKey)",
        )
    })?;
    let api = Api {
        client: http::client(request.metadata).map_err(SyncError::permanent)?,
        secret_key: Zeroizing::new(credentials.secret_key.clone()),
    };
    let tags = [
        format!("{TAG_KEY_ID}{}", key.key_id),
        format!("{TAG_KEY_VERSION}{}", key.version),
    ];

    let pending = match find_key(&api, &destination, &tags).await? {
        // Enabled, or disabled since by someone at Scaleway: it holds this version.
        Some(found) if found["state"].as_str() != Some("pending_key_material") => {
            return Ok(provider_ref(&found))
        }
        Some(pending) => pending,
        None => {
            let name = format!(
                "{}-v{}",
                destination.key_name.as_deref().unwrap_or(&key.name),
                key.version
            );
            let body = json!({
                "project_id": destination.project_id,
                "name": name,
                "description": format!(
                    "Version {} of Ironseal key {}, imported from the appliance",
                    key.version, key.key_id
                ),
                "usage": {"symmetric_encryption": "aes_256_gcm"},
                "tags": tags,
                "unprotected": false,
                "origin": "external",
            });
            api.send(Method::POST, destination.keys.clone(), &[], Some(&body))
                .await?
        }
    };
    let key_id = pending["id"]
        .as_str()
        .ok_or_else(|| SyncError::retryable("Scaleway answered a new key without its id"))?
        .to_string();

    let material =
        boundary::off_reactor(|| request.material.unwrapped()).map_err(SyncError::permanent)?;
    let imported = api
        .send_secret(
            destination.key(&key_id, "import-key-material"),
            import_body(&material),
        )
        .await?;
    Ok(provider_ref(&imported))
}

fn provider_ref(key: &Value) -> ProviderRef {
    ProviderRef {
        key_id: key["id"].as_str().unwrap_or_default().to_string(),
        // One Scaleway key per appliance version: the key is the version.
        key_version: None,
    }
}

/// The key of this appliance version, if a sync made it before (not one scheduled for
/// deletion, which Scaleway does not list).
async fn find_key(
    api: &Api,
    destination: &Destination,
    tags: &[String; 2],
) -> Result<Option<Value>, SyncError> {
    let page_size = PAGE_SIZE.to_string();
    for page in 1.. {
        let page_number = page.to_string();
        let query = [
            ("project_id", destination.project_id.as_str()),
            ("tags", tags[0].as_str()),
            ("tags", tags[1].as_str()),
            ("page", page_number.as_str()),
            ("page_size", page_size.as_str()),
        ];
        let listing = api
            .send(Method::GET, destination.keys.clone(), &query, None)
            .await?;
        let keys = listing["keys"].as_array().cloned().unwrap_or_default();
        // The tag filter's semantics (all or any) are not documented: check both here.
        let mine = keys.iter().find(|k| {
            let held: Vec<&str> = k["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            tags.iter().all(|t| held.contains(&t.as_str()))
        });
        if let Some(mine) = mine {
            return Ok(Some(mine.clone()));
        }
        if keys.len() < PAGE_SIZE {
            break;
        }
    }
    Ok(None)
}

struct Api {
    client: reqwest::Client,
    secret_key: Zeroizing<String>,
}

impl Api {
    async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, SyncError> {
        let mut request = self.client.request(method, url).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(request).await
    }

    /// A POST whose JSON body holds key material: reqwest sends it from memory that is
    /// cleared when the request is done with it.
    async fn send_secret(&self, url: Url, body: Zeroizing<Vec<u8>>) -> Result<Value, SyncError> {
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes::Bytes::from_owner(SecretBody(body)));
        self.finish(request).await
    }

    async fn finish(&self, request: reqwest::RequestBuilder) -> Result<Value, SyncError> {
        let request = request.header("X-Auth-Token", self.secret_key.as_str());
        let reply = http::send(request, "Scaleway Key Manager").await?;
        if reply.status.is_success() {
            return reply.json("Scaleway Key Manager");
        }
        Err(reply.failure(error_message(reply.status, &reply.text())))
    }
}

/// Scaleway's `type` in the SDKs' spelling (`permissions_denied` → `PermissionsDenied`),
/// then its message, then for a permission error what it lacked.
fn error_message(status: StatusCode, text: &str) -> String {
    let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let Some(message) = parsed["message"].as_str() else {
        return format!("Scaleway Key Manager answered {status}: {text}");
    };
    let kind: String = parsed["type"]
        .as_str()
        .unwrap_or("error")
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let mut out = format!("{kind} — {message}");
    let lacked: Vec<String> = parsed["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .filter_map(|d| {
                    let resource = d["resource"].as_str()?;
                    Some(match d["action"].as_str() {
                        Some(action) => format!("on resource '{resource}' ({action})"),
                        None => format!("on resource '{resource}'"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if !lacked.is_empty() {
        out.push(' ');
        out.push_str(&lacked.join(", "));
    }
    // A refused API key says how it was checked and why: `(api_key: expired)`.
    if let (Some(method), Some(reason)) = (parsed["method"].as_str(), parsed["reason"].as_str()) {
        out.push_str(&format!(" ({method}: {reason})"));
    }
    out
}

/// `{"key_material": "<base64>"}`, built in zeroized memory of its final size (a growing
/// buffer would leave copies behind). No salt: the material is a uniformly random AES
/// key, which is what the salt would make up for otherwise.
fn import_body(material: &[u8]) -> Zeroizing<Vec<u8>> {
    let encoded = Zeroizing::new(STANDARD.encode(material));
    let (head, tail) = (br#"{"key_material":""#, br#""}"#);
    let mut body = Zeroizing::new(Vec::with_capacity(head.len() + encoded.len() + tail.len()));
    body.extend_from_slice(head);
    body.extend_from_slice(encoded.as_bytes());
    body.extend_from_slice(tail);
    body
}

struct SecretBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for SecretBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
