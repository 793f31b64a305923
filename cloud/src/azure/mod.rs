//! Azure Key Vault: RSA and EC keys imported by Microsoft's BYOK protocol, each appliance
//! version becoming a version of one Azure key.
//!
//! What Microsoft documents, as read for this module:
//! - "Bring your own key specification" (learn.microsoft.com/azure/key-vault/keys/
//!   byok-specification; its source is MicrosoftDocs/azure-security-docs,
//!   articles/key-vault/keys/byok-specification.md):
//!   - the Key Exchange Key (KEK) is an RSA-HSM key of 2048, 3072 or 4096 bits generated in
//!     the vault that receives the key, with `key_ops` ONLY `import`;
//!   - the target's plaintext is PKCS#8 (RFC 5208) around the RSA key (RFC 3447) or the EC
//!     key (RFC 5915); AES (oct) targets are for Managed HSM only, not for vaults;
//!   - `CKM_RSA_AES_KEY_WRAP`: an ephemeral AES key "encrypted with the wrapping RSA key
//!     using RSA-OAEP with SHA1", the target under that AES key with AES Key Wrap with
//!     Padding (RFC 5649), the two concatenated. So the OAEP hash (and MGF1 hash) is SHA-1,
//!     and only SHA-1: [`MECHANISM`];
//!   - the transfer blob is JSON: `{"schema_version": "1.0.0", "header": {"kid": <the KEK's
//!     key identifier>, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}, "ciphertext":
//!     BASE64URL(<the concatenation>), "generator": <tool and HSM, informational>}`;
//!   - it is imported with `PUT {vault}/keys/{name}` and a body `{"key": {"kty": "RSA-HSM" |
//!     "EC-HSM", "crv": ..., "key_ops": [...], "key_hsm": <the blob>}, "attributes":
//!     {"enabled": true}}`.
//! - Key Vault REST API 7.4 (Azure/azure-rest-api-specs, specification/keyvault/
//!   data-plane/Microsoft.KeyVault/stable/7.4/keys.json and common.json): CreateKey
//!   `POST /keys/{name}/create` (`kty`, `key_size`, `key_ops`, `tags`; a new version when
//!   the name exists); ImportKey `PUT /keys/{name}` (likewise a new version, `tags` beside
//!   `key`); `JsonWebKey.key_hsm` is `format: base64url`; GetKeyVersions `GET
//!   /keys/{name}/versions` answers `{"value": [{"kid", "attributes", "tags"}], "nextLink"}`,
//!   at most 25 a page; key names match `^[0-9a-zA-Z-]+$`; errors are `KeyVaultError`
//!   `{"error": {"code", "message", "innererror": {"code", ...}}}` (a missing role:
//!   403 `Forbidden` / `ForbiddenByRbac`).
//! - Microsoft identity platform, OAuth 2.0 client credentials: `POST
//!   {authorityHost}/{tenantId}/oauth2/v2.0/token`, form `grant_type=client_credentials`,
//!   `client_id`, `client_secret`, `scope=https://vault.azure.net/.default`; answers
//!   `{"token_type": "Bearer", "access_token", "expires_in"}`, or `{"error":
//!   "invalid_client", "error_description": "AADSTS7000215: Invalid client secret
//!   provided. ..."}`.
//!
//! The token is fetched once per sync and dropped (zeroized) at its end, never cached
//! between syncs nor logged: syncs are rare (a rotation, a manual sync), and a cached
//! bearer would outlive the credentials' decryption, which the engine confines to the sync.
//!
//! Idempotence: each imported version carries the tags `ironseal-key-id` and
//! `ironseal-key-version`; a sync lists the Azure key's versions first and returns the one
//! tagged with this appliance version, importing nothing. Each import uses a fresh KEK: a
//! new version of the export's own KEK key (`ironseal-kek-<exportId>`).

mod rest;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use engine::cloud_exports::{ExportMaterial, ProviderRef, SyncError, SyncFuture, SyncRequest};
use engine::managed_keys::Algorithm;
use hsm_bridge::WrapMechanism;
use reqwest::Url;
use serde_json::{json, Map, Value};

use crate::fields::check_fields;
use crate::{http, ProviderClient};
use rest::{Credentials, Vault};

/// The wrap format of the BYOK specification: ephemeral AES-256 under RSA-OAEP with
/// SHA-1 (MGF1-SHA-1), the target under it with RFC 5649.
const MECHANISM: WrapMechanism = WrapMechanism::RsaAesKeyWrapSha1;

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

const TAG_KEY_ID: &str = "ironseal-key-id";
const TAG_KEY_VERSION: &str = "ironseal-key-version";

/// The seed's reason, for a post-quantum key that reached a provider's check.
const POST_QUANTUM: &str = "Post-quantum algorithms (ML-KEM, ML-DSA) cannot be exported because cloud KMS providers do not yet support them.";

const AES_REFUSED: &str = "Azure Key Vault does not import AES keys: its BYOK takes RSA and EC keys into a vault (symmetric keys only into a Managed HSM). Export an RSA or EC key, or this AES key to AWS KMS or Scaleway.";

pub(crate) struct Azure;

impl Azure {
    pub(crate) fn new() -> Self {
        Azure
    }
}

impl ProviderClient for Azure {
    fn validate(
        &self,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        _allow_unwrapped_export: bool,
    ) -> Result<(), String> {
        import_type(algorithm)?;
        check_fields(
            "providerMetadata",
            metadata,
            &["vaultName"],
            &["keyName", "vaultUrl", "authorityHost", http::CA_CERT_FIELD],
        )?;
        Destination::read(metadata)?;
        http::extra_anchors(metadata)?;
        if !metadata.contains_key("vaultUrl") {
            metadata.insert("vaultUrl".into(), default_vault_url(metadata)?.into());
        }
        if !metadata.contains_key("authorityHost") {
            metadata.insert("authorityHost".into(), DEFAULT_AUTHORITY.into());
        }
        if let Some(credentials) = credentials {
            check_fields(
                "credentials",
                credentials,
                &["tenantId", "clientId", "clientSecret"],
                &[],
            )?;
            if let Some(Value::String(tenant)) = credentials.get("tenantId") {
                rest::check_tenant(tenant)?;
            }
        }
        Ok(())
    }

    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a> {
        Box::pin(sync(request))
    }
}

/// Where an export goes, from its validated metadata.
struct Destination {
    vault: Url,
    authority: Url,
    key_name: Option<String>,
}

impl Destination {
    fn read(metadata: &Map<String, Value>) -> Result<Destination, String> {
        let vault_name = metadata
            .get("vaultName")
            .and_then(Value::as_str)
            .ok_or("providerMetadata.vaultName is required")?;
        check_vault_name(vault_name)?;
        let key_name = metadata
            .get("keyName")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(name) = &key_name {
            check_key_name(name).map_err(|why| format!("providerMetadata.keyName {why}"))?;
        }
        Ok(Destination {
            vault: http::location(metadata, "vaultUrl", &default_vault_url(metadata)?)?,
            authority: http::location(metadata, "authorityHost", DEFAULT_AUTHORITY)?,
            key_name,
        })
    }
}

fn default_vault_url(metadata: &Map<String, Value>) -> Result<String, String> {
    let name = metadata
        .get("vaultName")
        .and_then(Value::as_str)
        .ok_or("providerMetadata.vaultName is required")?;
    Ok(format!("https://{name}.vault.azure.net"))
}

/// Azure's vault names: 3 to 24 letters, digits and hyphens (the name becomes a host name).
fn check_vault_name(name: &str) -> Result<(), String> {
    let fits = (3..=24).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "providerMetadata.vaultName must be 3 to 24 letters, digits and hyphens: {name:?}"
        ))
    }
}

/// Azure's key names: `^[0-9a-zA-Z-]+$`, at most 127 characters.
fn check_key_name(name: &str) -> Result<(), String> {
    let fits = (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to 127 letters, digits and hyphens (Azure's rule for key names): {name:?}"
        ))
    }
}

/// The JWK key type (and curve) an appliance algorithm is imported as.
fn import_type(algorithm: Algorithm) -> Result<(&'static str, Option<&'static str>), String> {
    match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => Ok(("RSA-HSM", None)),
        Algorithm::EcP256 => Ok(("EC-HSM", Some("P-256"))),
        Algorithm::EcP384 => Ok(("EC-HSM", Some("P-384"))),
        Algorithm::Aes256 => Err(AES_REFUSED.into()),
        Algorithm::MlDsa65 | Algorithm::MlKem768 => Err(POST_QUANTUM.into()),
    }
}

/// The operations the imported key allows: what the appliance's key type can do.
fn key_ops(kty: &str) -> &'static [&'static str] {
    if kty == "EC-HSM" {
        &["sign", "verify"]
    } else {
        &[
            "sign",
            "verify",
            "encrypt",
            "decrypt",
            "wrapKey",
            "unwrapKey",
        ]
    }
}

async fn sync(request: SyncRequest<'_>) -> Result<ProviderRef, SyncError> {
    let (kty, crv) = import_type(request.key.algorithm).map_err(SyncError::permanent)?;
    let destination = Destination::read(request.metadata).map_err(SyncError::permanent)?;
    let key_name = match destination.key_name {
        Some(name) => name,
        None => {
            let name = request.key.name.clone();
            check_key_name(&name).map_err(|why| {
                SyncError::permanent(format!(
                    "the key's name {why}; give the export a providerMetadata.keyName"
                ))
            })?;
            name
        }
    };
    request.material.supports(MECHANISM).map_err(|reason| {
        SyncError::boundary(format!(
            "Azure Key Vault's BYOK format needs {}, which this key's boundary cannot produce: {reason}",
            MECHANISM.pkcs11_name()
        ))
    })?;
    let credentials = Credentials::parse(request.credentials)?;
    let http = http::client(request.metadata).map_err(SyncError::permanent)?;
    let token = rest::token(&http, &destination.authority, &credentials).await?;
    drop(credentials);
    let vault = Vault::new(http, destination.vault, token);

    let key_id = request.key.key_id.to_string();
    let version = request.key.version.to_string();
    if let Some(found) = vault.find_version(&key_name, &key_id, &version).await? {
        return Ok(found);
    }

    let kek = vault
        .create_kek(&format!("ironseal-kek-{}", request.export_id))
        .await?;
    let wrapped = wrap(request.material, &kek.public_der).map_err(|e| {
        SyncError::permanent(format!(
            "the key could not be wrapped for Azure Key Vault: {e}"
        ))
    })?;
    let blob = transfer_blob(&kek.kid, &wrapped);
    let mut body = json!({
        "key": {
            "kty": kty,
            "key_ops": key_ops(kty),
            "key_hsm": URL_SAFE_NO_PAD.encode(blob),
        },
        "attributes": {"enabled": true},
        "tags": {TAG_KEY_ID: key_id, TAG_KEY_VERSION: version},
    });
    if let (Some(crv), Some(key)) = (crv, body.get_mut("key").and_then(Value::as_object_mut)) {
        key.insert("crv".into(), crv.into());
    }
    vault.import(&key_name, &body).await
}

/// The material wrapped under the KEK, off the reactor (see [`crate::boundary`]).
fn wrap(material: &dyn ExportMaterial, kek_der: &[u8]) -> Result<Vec<u8>, String> {
    crate::boundary::off_reactor(|| material.wrap(kek_der, MECHANISM))
}

/// The BYOK specification's transfer blob around `wrapped` (the concatenation that
/// `CKM_RSA_AES_KEY_WRAP` produces).
fn transfer_blob(kek_kid: &str, wrapped: &[u8]) -> Vec<u8> {
    json!({
        "schema_version": "1.0.0",
        "header": {
            "kid": kek_kid,
            "alg": "dir",
            "enc": "CKM_RSA_AES_KEY_WRAP",
        },
        "ciphertext": URL_SAFE_NO_PAD.encode(wrapped),
        "generator": concat!("Ironseal ", env!("CARGO_PKG_VERSION"), " (ironseal-cloud)"),
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_has_the_specification_fields() {
        let blob = transfer_blob("https://v.vault.azure.net/keys/kek/0123", &[0xfb, 0xff, 1]);
        let v: Value = serde_json::from_slice(&blob).expect("json");
        assert_eq!(v["schema_version"], "1.0.0");
        assert_eq!(
            v["header"]["kid"],
            "https://v.vault.azure.net/keys/kek/0123"
        );
        assert_eq!(v["header"]["alg"], "dir");
        assert_eq!(v["header"]["enc"], "CKM_RSA_AES_KEY_WRAP");
        assert_eq!(v["ciphertext"], "-_8B");
        assert!(v["generator"]
            .as_str()
            .is_some_and(|g| g.contains("Ironseal")));
    }

    #[test]
    fn names_follow_azure_rules() {
        assert!(check_key_name("prod-signing-2").is_ok());
        assert!(check_key_name("with_underscore").is_err());
        assert!(check_key_name("").is_err());
        assert!(check_key_name(&"a".repeat(128)).is_err());
        assert!(check_vault_name("my-vault").is_ok());
        assert!(check_vault_name("ab").is_err());
        assert!(check_vault_name("evil.example.com/x").is_err());
    }

    #[test]
    fn the_wrap_is_the_specification_s_oaep_sha1() {
        assert!(MECHANISM.is_rsa_aes());
        assert_eq!(MECHANISM.oaep_hash(), hsm_bridge::HashAlg::Sha1);
    }
}
