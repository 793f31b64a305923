//! `POST /api/v1/keys/{keyId}/{sign,verify,encrypt,decrypt}`: base64 in, base64 out,
//! with the version used. `version` in the body picks a version (default: primary).
//!
//! - sign `{"message"}` → `{"signature","version"}`
//! - verify `{"message","signature"}` → `{"valid","version"}`
//! - encrypt `{"plaintext"}` → `{"ciphertext","version"}`
//! - decrypt `{"ciphertext"}` → `{"plaintext","version"}`

use std::sync::Arc;

use base64::Engine as _;
use engine::ops::managed_keys::{KeyDecrypt, KeyEncrypt, KeySign, KeyVerify};
use engine::Core;
use serde_json::json;
use zeroize::Zeroizing;

use super::{apply, ApiReply, ApiRequest, ApiResult};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the request does with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Sign,
    Verify,
    Encrypt,
    Decrypt,
}

impl Use {
    /// The use a path's last segment names.
    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "sign" => Some(Use::Sign),
            "verify" => Some(Use::Verify),
            "encrypt" => Some(Use::Encrypt),
            "decrypt" => Some(Use::Decrypt),
            _ => None,
        }
    }
}

pub async fn handle(core: &Arc<Core>, req: &ApiRequest, id: &str, op: Use) -> ApiResult {
    let key = id.to_string();
    let version = req.version_field();
    match op {
        Use::Sign => {
            let op = KeySign {
                key,
                version,
                message: req.b64_field("message"),
            };
            apply(core, req, op, |out| {
                Ok(ApiReply::ok(json!({
                    "signature": B64.encode(&out.value),
                    "version": out.version,
                    "keyId": out.key_id,
                })))
            })
            .await
        }
        Use::Verify => {
            let op = KeyVerify {
                key,
                version,
                message: req.b64_field("message"),
                signature: req.b64_field("signature"),
            };
            apply(core, req, op, |out| {
                Ok(ApiReply::ok(json!({
                    "valid": out.value,
                    "version": out.version,
                    "keyId": out.key_id,
                })))
            })
            .await
        }
        Use::Encrypt => {
            let op = KeyEncrypt {
                key,
                version,
                plaintext: req.b64_field("plaintext").map(Zeroizing::new),
            };
            apply(core, req, op, |out| {
                Ok(ApiReply::ok(json!({
                    "ciphertext": B64.encode(&out.value),
                    "version": out.version,
                    "keyId": out.key_id,
                })))
            })
            .await
        }
        Use::Decrypt => {
            let op = KeyDecrypt {
                key,
                version,
                ciphertext: req.b64_field("ciphertext"),
            };
            apply(core, req, op, |out| {
                Ok(ApiReply::ok(json!({
                    "plaintext": B64.encode(&*out.value),
                    "version": out.version,
                    "keyId": out.key_id,
                })))
            })
            .await
        }
    }
}
