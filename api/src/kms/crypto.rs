//! `POST /api/v1/keys/{keyId}/{sign,verify,encrypt,decrypt}`: base64 in, base64 out,
//! with the version used. `version` in the body picks a version (default: primary).
//!
//! - sign `{"message"}` → `{"signature","version"}`
//! - verify `{"message","signature"}` → `{"valid","version"}`
//! - encrypt `{"plaintext"}` → `{"ciphertext","version"}`
//! - decrypt `{"ciphertext"}` → `{"plaintext","version"}`

use std::sync::Arc;

use base64::Engine as _;
use engine::Core;
use hyper::Method;
use serde_json::json;
use zeroize::Zeroizing;

use super::{authorize, load_key, unsupported_method, ApiReply, ApiRequest, ApiResult};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub async fn handle(core: &Arc<Core>, req: &ApiRequest, id: &str, op: &str) -> ApiResult {
    if req.method != Method::POST {
        return Err(unsupported_method(req));
    }
    let auth = authorize(core, req, "keys:use", "use").await?;
    let version = req.version_field()?;
    let key = load_key(core, &auth, id)?;
    let keys = &core.keys;
    let body = match op {
        "sign" => {
            let out = keys
                .sign(&key, version, req.b64_field("message")?, core.root()?)
                .await?;
            json!({ "signature": B64.encode(out.data), "version": out.version, "keyId": key.id })
        }
        "verify" => {
            let (valid, v) = keys
                .verify(
                    &key,
                    version,
                    req.b64_field("message")?,
                    req.b64_field("signature")?,
                )
                .await?;
            json!({ "valid": valid, "version": v, "keyId": key.id })
        }
        "encrypt" => {
            let plaintext = Zeroizing::new(req.b64_field("plaintext")?);
            let out = keys.encrypt(&key, version, plaintext, core.root()?).await?;
            json!({ "ciphertext": B64.encode(out.data), "version": out.version, "keyId": key.id })
        }
        _ => {
            let (plain, v) = keys
                .decrypt(&key, version, req.b64_field("ciphertext")?, core.root()?)
                .await?;
            json!({ "plaintext": B64.encode(&*plain), "version": v, "keyId": key.id })
        }
    };
    Ok(ApiReply::ok(body))
}
