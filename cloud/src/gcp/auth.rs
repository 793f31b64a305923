//! The service-account flow: a JWT signed RS256 with the key file's `private_key`,
//! exchanged at the key file's `token_uri` for an access token (RFC 7523).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use engine::cloud_exports::SyncError;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::http;

/// What Cloud KMS needs; the narrower `cloudkms` scope rather than `cloud-platform`.
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google accepts assertions that live at most an hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// The fields of a service-account key file this flow uses (the file has more).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
pub(super) struct ServiceAccount {
    pub(super) client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    pub(super) token_uri: String,
}

impl ServiceAccount {
    /// Parses the key file and checks what the flow needs, so that a bad file is refused
    /// when the export is created rather than at its first sync. Messages name `field`.
    pub(super) fn parse(field: &str, json: &str) -> Result<Self, String> {
        let account: ServiceAccount = serde_json::from_str(json).map_err(|e| {
            format!(
                "{field} is not a service-account key file (JSON with private_key, \
                 client_email and token_uri): {e}"
            )
        })?;
        if account.client_email.trim().is_empty() {
            return Err(format!("{field}: client_email is empty"));
        }
        http::parse_location(&format!("{field}: token_uri"), &account.token_uri)?;
        account.signing_key(field)?;
        Ok(account)
    }

    fn signing_key(&self, field: &str) -> Result<SigningKey<Sha256>, String> {
        RsaPrivateKey::from_pkcs8_pem(&self.private_key)
            .map(SigningKey::<Sha256>::new)
            .map_err(|_| format!("{field}: private_key is not a PEM PKCS#8 RSA private key"))
    }

    /// The signed assertion: `iss` the account, `aud` the token endpoint it names.
    fn assertion(&self, now: u64) -> Result<Zeroizing<String>, String> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = Value::String(kid.clone());
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signing_key("serviceAccountJson")?
            .sign(signing_input.as_bytes());
        Ok(Zeroizing::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )))
    }
}

/// An access token for Cloud KMS. An expired or revoked key answers `invalid_grant`,
/// which no retry fixes.
pub(super) async fn access_token(
    client: &reqwest::Client,
    account: &ServiceAccount,
) -> Result<Zeroizing<String>, SyncError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let assertion = account.assertion(now).map_err(SyncError::permanent)?;
    let request = client.post(&account.token_uri).form(&[
        ("grant_type", GRANT_TYPE),
        ("assertion", assertion.as_str()),
    ]);
    let reply = http::send(request, "GCP token endpoint").await?;
    let body = Zeroizing::new(reply.text());
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if reply.status.is_success() {
        return parsed["access_token"]
            .as_str()
            .map(|t| Zeroizing::new(t.to_string()))
            .ok_or_else(|| {
                SyncError::retryable("the GCP token endpoint answered without an access_token")
            });
    }
    // OAuth's error shape: {"error": "invalid_grant", "error_description": "..."}.
    let message = match (
        parsed["error"].as_str(),
        parsed["error_description"].as_str(),
    ) {
        (Some(error), Some(description)) => format!("{error}: {description}"),
        (Some(error), None) => error.to_string(),
        _ => format!(
            "the GCP token endpoint answered {}: {}",
            reply.status,
            body.as_str()
        ),
    };
    Err(reply.failure(message))
}
