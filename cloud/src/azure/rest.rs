//! The calls a sync makes: Entra ID's token endpoint, then the vault's keys API (list a
//! key's versions, create a KEK version, import), each failure carrying Azure's own words.

use engine::cloud_exports::{ProviderRef, SyncError};
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use rsa::pkcs8::EncodePublicKey;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{TAG_KEY_ID, TAG_KEY_VERSION};
use crate::http::{self, Reply};

const API_VERSION: &str = "7.4";
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";

/// The KEK's size: the largest the specification lists (its own example's).
const KEK_BITS: u32 = 4096;

/// A bound on `nextLink` pages (25 versions each), so a misbehaving endpoint cannot keep
/// a sync paging forever.
const MAX_PAGES: usize = 400;

/// An app registration's client credentials, zeroized when dropped.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase")]
pub(super) struct Credentials {
    tenant_id: String,
    client_id: String,
    client_secret: String,
}

impl Credentials {
    pub(super) fn parse(json: &str) -> Result<Credentials, SyncError> {
        let credentials: Credentials = serde_json::from_str(json).map_err(|_| {
            SyncError::permanent(
                "the saved credentials are not an Azure app's tenantId, clientId and clientSecret",
            )
        })?;
        check_tenant(&credentials.tenant_id).map_err(SyncError::permanent)?;
        Ok(credentials)
    }
}

/// A tenant is a directory id (a GUID) or one of its domain names; it becomes a path
/// segment of the token endpoint.
pub(super) fn check_tenant(tenant: &str) -> Result<(), String> {
    let fits = !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "credentials.tenantId must be a directory (tenant) id or domain name: {tenant:?}"
        ))
    }
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct TokenReply {
    access_token: String,
}

/// Entra ID's error body: `error_description` starts with the AADSTS code and says what
/// is wrong in Microsoft's words.
#[derive(Deserialize)]
struct EntraError {
    error: Option<String>,
    error_description: Option<String>,
}

/// A bearer token for the vault, by the client-credentials grant.
pub(super) async fn token(
    http: &Client,
    authority: &Url,
    credentials: &Credentials,
) -> Result<Zeroizing<String>, SyncError> {
    let url = http::join(
        authority,
        &[credentials.tenant_id.as_str(), "oauth2", "v2.0", "token"],
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", credentials.client_id.as_str()),
        ("client_secret", credentials.client_secret.as_str()),
        ("scope", VAULT_SCOPE),
    ];
    let reply = http::send(http.post(url).form(&form), "Azure sign-in").await?;
    if !reply.status.is_success() {
        let message = match serde_json::from_slice::<EntraError>(&reply.body) {
            Ok(EntraError {
                error_description: Some(description),
                ..
            }) => description,
            Ok(EntraError {
                error: Some(error), ..
            }) => error,
            _ => format!("Azure sign-in: HTTP {}: {}", reply.status, reply.text()),
        };
        return Err(reply.failure(message));
    }
    let mut answer: TokenReply = reply.json("Azure sign-in")?;
    Ok(Zeroizing::new(std::mem::take(&mut answer.access_token)))
}

/// Key Vault's error body (`KeyVaultError`): codes nested from the general (`Forbidden`)
/// to the precise (`ForbiddenByRbac`).
#[derive(Deserialize)]
struct VaultErrorBody {
    error: Option<VaultError>,
}

#[derive(Deserialize)]
struct VaultError {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<VaultError>>,
}

/// Azure's words for a failed vault call: the most precise code, then the message
/// (`ForbiddenByRbac: Caller is not authorized to perform action on resource. ...`).
fn vault_failure(reply: &Reply, what: &str) -> SyncError {
    let parsed = serde_json::from_slice::<VaultErrorBody>(&reply.body)
        .ok()
        .and_then(|b| b.error);
    let message = match parsed {
        Some(error) => {
            let mut code = error.code.clone();
            let mut inner = error.innererror.as_deref();
            while let Some(e) = inner {
                if e.code.is_some() {
                    code = e.code.clone();
                }
                inner = e.innererror.as_deref();
            }
            match (code, error.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => format!("{what}: {code} (HTTP {})", reply.status),
                (None, Some(message)) => message,
                (None, None) => format!("{what}: HTTP {}: {}", reply.status, reply.text()),
            }
        }
        None => format!("{what}: HTTP {}: {}", reply.status, reply.text()),
    };
    reply.failure(message)
}

#[derive(Deserialize)]
struct KeyList {
    #[serde(default)]
    value: Vec<KeyItem>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct KeyItem {
    kid: String,
    #[serde(default)]
    tags: Map<String, Value>,
}

#[derive(Deserialize)]
struct KeyBundle {
    key: Jwk,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    #[serde(default)]
    key_ops: Vec<String>,
    n: Option<String>,
    e: Option<String>,
}

/// A freshly created key-exchange key.
pub(super) struct Kek {
    /// Its full key identifier, version included: the transfer blob's `header.kid`.
    pub(super) kid: String,
    /// DER SubjectPublicKeyInfo, what the wrap takes.
    pub(super) public_der: Vec<u8>,
}

/// One vault, reached with one token.
pub(super) struct Vault {
    http: Client,
    base: Url,
    token: Zeroizing<String>,
}

impl Vault {
    pub(super) fn new(http: Client, base: Url, token: Zeroizing<String>) -> Vault {
        Vault { http, base, token }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = http::join(&self.base, segments);
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        url
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(self.token.as_str())
    }

    /// The version of `name` tagged with this appliance key id and version, if an earlier
    /// sync imported it.
    pub(super) async fn find_version(
        &self,
        name: &str,
        key_id: &str,
        version: &str,
    ) -> Result<Option<ProviderRef>, SyncError> {
        const WHAT: &str = "Azure Key Vault (list key versions)";
        let mut next = Some(self.url(&["keys", name, "versions"]));
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(SyncError::permanent(format!(
                    "{WHAT}: more than {MAX_PAGES} pages of versions"
                )));
            }
            let reply = http::send(self.authorized(self.http.get(url)), WHAT).await?;
            if reply.status == StatusCode::NOT_FOUND {
                // The key does not exist yet: the first export of it.
                return Ok(None);
            }
            if !reply.status.is_success() {
                return Err(vault_failure(&reply, WHAT));
            }
            let page: KeyList = reply.json(WHAT)?;
            let tagged = |item: &&KeyItem| {
                item.tags.get(TAG_KEY_ID).and_then(Value::as_str) == Some(key_id)
                    && item.tags.get(TAG_KEY_VERSION).and_then(Value::as_str) == Some(version)
            };
            if let Some(item) = page.value.iter().find(tagged) {
                return provider_ref(&item.kid).map(Some);
            }
            next = match page.next_link.filter(|l| !l.is_empty()) {
                Some(link) => Some(self.same_vault(&link, WHAT)?),
                None => None,
            };
        }
        Ok(None)
    }

    /// A `nextLink`, followed only within the vault: the bearer token goes nowhere else.
    fn same_vault(&self, link: &str, what: &str) -> Result<Url, SyncError> {
        let url = Url::parse(link).map_err(|e| {
            SyncError::permanent(format!("{what}: a nextLink that is not a URL ({e})"))
        })?;
        if url.origin() != self.base.origin() {
            return Err(SyncError::permanent(format!(
                "{what}: the nextLink leaves the vault: {link}"
            )));
        }
        Ok(url)
    }

    /// A new version of the KEK key `name` (RSA-HSM, `import` only), with its public key.
    pub(super) async fn create_kek(&self, name: &str) -> Result<Kek, SyncError> {
        const WHAT: &str = "Azure Key Vault (create the key exchange key)";
        let body = json!({
            "kty": "RSA-HSM",
            "key_size": KEK_BITS,
            "key_ops": ["import"],
            "tags": {"ironseal-purpose": "byok-key-exchange-key"},
        });
        let request = self
            .http
            .post(self.url(&["keys", name, "create"]))
            .json(&body);
        let reply = http::send(self.authorized(request), WHAT).await?;
        if !reply.status.is_success() {
            return Err(vault_failure(&reply, WHAT));
        }
        let bundle: KeyBundle = reply.json(WHAT)?;
        let key = bundle.key;
        if !key.key_ops.iter().any(|op| op == "import") {
            return Err(SyncError::permanent(format!(
                "{WHAT}: the vault created {} without the import operation",
                key.kid
            )));
        }
        let public_der = rsa_spki(&key).map_err(|why| {
            SyncError::permanent(format!("{WHAT}: {why} in the answer for {}", key.kid))
        })?;
        Ok(Kek {
            kid: key.kid,
            public_der,
        })
    }

    /// `PUT /keys/{name}`: a new version of `name` from the transfer blob in `body`.
    pub(super) async fn import(&self, name: &str, body: &Value) -> Result<ProviderRef, SyncError> {
        const WHAT: &str = "Azure Key Vault (import the key)";
        let request = self.http.put(self.url(&["keys", name])).json(body);
        let reply = http::send(self.authorized(request), WHAT).await?;
        if !reply.status.is_success() {
            return Err(vault_failure(&reply, WHAT));
        }
        let bundle: KeyBundle = reply.json(WHAT)?;
        provider_ref(&bundle.key.kid)
    }
}

/// `https://{vault}/keys/{name}/{version}` split into the key's identifier and version.
fn provider_ref(kid: &str) -> Result<ProviderRef, SyncError> {
    match kid.rsplit_once('/') {
        Some((key_id, version)) if key_id.contains("/keys/") && !version.is_empty() => {
            Ok(ProviderRef {
                key_id: key_id.to_string(),
                key_version: Some(version.to_string()),
            })
        }
        _ => Err(SyncError::permanent(format!(
            "Azure Key Vault answered a key identifier without a version: {kid}"
        ))),
    }
}

/// The DER SubjectPublicKeyInfo of an RSA JWK (`n`, `e` in base64url).
fn rsa_spki(key: &Jwk) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let decode = |field: &Option<String>, name: &str| {
        let text = field.as_deref().ok_or(format!("no RSA {name}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("an RSA {name} that is not base64url"))
    };
    let n = decode(&key.n, "modulus (n)")?;
    let e = decode(&key.e, "exponent (e)")?;
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
        .map_err(|e| format!("an unusable RSA key ({e})"))?;
    public
        .to_public_key_der()
        .map(|der| der.as_bytes().to_vec())
        .map_err(|e| format!("an unusable RSA key ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_precise_code_leads_the_message() {
        let body = r#"{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.\r\nAction: 'Microsoft.KeyVault/vaults/keys/import/action'","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let e = vault_failure(&reply(403, body), "x");
        assert!(!e.retryable);
        assert!(
            e.message
                .starts_with("ForbiddenByRbac: Caller is not authorized"),
            "{}",
            e.message
        );
        assert!(e
            .message
            .contains("Action: 'Microsoft.KeyVault/vaults/keys/import/action'"));
    }

    #[test]
    fn a_body_that_is_not_azure_s_is_quoted() {
        let e = vault_failure(&reply(502, "<html>bad gateway</html>"), "step");
        assert!(e.retryable);
        assert_eq!(
            e.message,
            "step: HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[test]
    fn a_kid_splits_into_key_and_version() {
        let r = provider_ref("https://v.vault.azure.net/keys/k/abc123").expect("kid");
        assert_eq!(r.key_id, "https://v.vault.azure.net/keys/k");
        assert_eq!(r.key_version.as_deref(), Some("abc123"));
        assert!(provider_ref("https://v.vault.azure.net/keys/k/").is_err());
    }

    #[test]
    fn tenants_are_ids_or_domains() {
        assert!(check_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47").is_ok());
        assert!(check_tenant("contoso.onmicrosoft.com").is_ok());
        assert!(check_tenant("../x").is_err());
        assert!(check_tenant("").is_err());
    }
}
