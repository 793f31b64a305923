//! `datakey/plaintext/:name` and `datakey/wrapped/:name`: a new random key encrypted
//! under the named key, with (plaintext) or without (wrapped) its plaintext.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::transit::TransitEngine;
use engine::Core;
use serde_json::json;
use zeroize::Zeroizing;

use super::{authorize_update, i64_field};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    kind: &str,
    name: &str,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let with_plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(ApiError::bad(
                "Invalid path, must be 'plaintext' or 'wrapped'",
            ))
        }
    };
    let bits = i64_field(req, "bits")?.unwrap_or(256);
    let version = i64_field(req, "key_version")?.unwrap_or(0);
    let (data_key, encrypted) = transit
        .datakey(
            name,
            u64::try_from(bits).unwrap_or(0),
            version,
            &req.str_field("context")?,
            &req.str_field("associated_data")?,
        )
        .await?;
    let mut data = json!({
        "ciphertext": encrypted.ciphertext,
        "key_version": encrypted.key_version,
    });
    if with_plaintext {
        let plain = Zeroizing::new(STANDARD.encode(data_key.as_slice()));
        data["plaintext"] = json!(plain.as_str());
    }
    Ok(Reply::data(data))
}
