//! A client of the daemon's key API under `/api/v1` (managed keys, cloud exports), whose
//! errors are problem objects rather than Vault's `{"errors":[...]}`.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::daemon::{free_port, Daemon};
use crate::vault_client::Body;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An answer from `/api/v1`: its status and its body as JSON (null when it is not JSON).
#[derive(Debug, Clone)]
pub struct KmsReply {
    pub status: u16,
    pub body: Value,
    text: String,
}

impl std::fmt::Display for KmsReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

impl KmsReply {
    /// The body of a 2xx answer; panics with the answer otherwise.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "{self}");
        self.body
    }

    /// Asserts a problem object with `status` and `code`.
    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self}");
        assert_eq!(self.body["code"], code, "{self}");
        assert_eq!(self.body["status"], status, "{self}");
        assert!(
            self.body["type"].is_string() && self.body["title"].is_string(),
            "{self}"
        );
        assert!(
            !self.body["detail"].as_str().unwrap_or("").is_empty(),
            "{self}"
        );
        self.body
    }
}

impl Daemon {
    /// `METHOD /api/v1/PATH` with `token` and an optional JSON body.
    pub fn kms(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> KmsReply {
        let text = body.map(|b| b.to_string());
        let r = self.http(
            method,
            &format!("/api/v1/{path}"),
            Some(token),
            match &text {
                Some(t) => Body::Json(t),
                None => Body::None,
            },
        );
        KmsReply {
            status: r.status,
            body: serde_json::from_str(&r.body).unwrap_or(Value::Null),
            text: format!(
                "{method} {path} -> {}",
                r.body.chars().take(600).collect::<String>()
            ),
        }
    }

    /// Creates managed key `name` (labelled `team=t1`); its JSON.
    pub fn kms_create_key(&self, token: &str, name: &str, algorithm: &str) -> Value {
        self.kms(
            "POST",
            "keys",
            token,
            Some(json!({"name": name, "algorithm": algorithm, "labels": {"team": "t1"}})),
        )
        .ok()
    }

    /// Signs `msg` with managed key `id` (its latest version unless `version`).
    pub fn kms_sign(&self, token: &str, id: &str, msg: &[u8], version: Option<u32>) -> KmsReply {
        let mut body = json!({"message": B64.encode(msg)});
        if let Some(v) = version {
            body["version"] = v.into();
        }
        self.kms("POST", &format!("keys/{id}/sign"), token, Some(body))
    }

    /// Encrypts `plaintext` with managed key `id`.
    pub fn kms_encrypt(&self, token: &str, id: &str, plaintext: &[u8]) -> KmsReply {
        let body = json!({"plaintext": B64.encode(plaintext)});
        self.kms("POST", &format!("keys/{id}/encrypt"), token, Some(body))
    }

    /// Decrypts `ciphertext` (as the API returned it) with managed key `id`.
    pub fn kms_decrypt(&self, token: &str, id: &str, ciphertext: &Value) -> KmsReply {
        let body = json!({ "ciphertext": ciphertext });
        self.kms("POST", &format!("keys/{id}/decrypt"), token, Some(body))
    }

    /// A token `root` mints with the key-API `scopes` (and the default policy).
    pub fn kms_token_with_scopes(&self, root: &str, scopes: &[&str]) -> String {
        let r = self.http(
            "POST",
            "/v1/auth/token/create",
            Some(root),
            Body::Json(&json!({"policies": ["default"], "scopes": scopes}).to_string()),
        );
        assert_eq!(r.status, 200, "{r}");
        let v = r.json();
        let mut want: Vec<&str> = scopes.to_vec();
        want.sort();
        assert_eq!(v["auth"]["scopes"], json!(want), "{r}");
        v["auth"]["client_token"].as_str().unwrap().to_string()
    }

    /// `POST /api/v1/keys` for key `name` with more creation fields (`exportable`,
    /// `allowUnwrappedExport`, ...) merged in.
    pub fn kms_create_key_with(
        &self,
        token: &str,
        name: &str,
        algorithm: &str,
        extra: Value,
    ) -> KmsReply {
        let mut body = json!({"name": name, "algorithm": algorithm});
        if let (Some(b), Value::Object(more)) = (body.as_object_mut(), extra) {
            b.extend(more);
        }
        self.kms("POST", "keys", token, Some(body))
    }

    /// `POST /api/v1/keys/{key_id}/cloud-exports` with `body`.
    pub fn kms_cloud_export(&self, token: &str, key_id: &str, body: Value) -> KmsReply {
        self.kms(
            "POST",
            &format!("keys/{key_id}/cloud-exports"),
            token,
            Some(body),
        )
    }

    /// The records `GET /api/v1/keys/{key_id}/cloud-exports` lists.
    pub fn kms_cloud_exports(&self, token: &str, key_id: &str) -> Vec<Value> {
        let listed = self
            .kms("GET", &format!("keys/{key_id}/cloud-exports"), token, None)
            .ok();
        listed["cloudExports"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no cloudExports in {listed}"))
    }
}

/// An `http://` URL on loopback where nothing listens (its port was free a moment ago):
/// a provider endpoint that refuses every connection.
pub fn closed_loopback_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}
