//! `datakey/plaintext/:name` and `datakey/wrapped/:name`: a new random key encrypted
//! under the named key, with (plaintext) or without (wrapped) its plaintext.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::mounts::MountRef;
use engine::ops::transit::{DatakeyRequest, TransitDatakey};
use engine::{Core, EngineError};
use serde_json::json;
use zeroize::Zeroizing;

use super::i64_field;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

fn request(req: &VaultRequest, kind: &str) -> Result<DatakeyRequest, EngineError> {
    let with_plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        _ => return Err(ApiError::bad("Invalid path, must be 'plaintext' or 'wrapped'").into()),
    };
    let bits = i64_field(req, "bits")?.unwrap_or(256);
    Ok(DatakeyRequest {
        with_plaintext,
        bits: u64::try_from(bits).unwrap_or(0),
        key_version: i64_field(req, "key_version")?.unwrap_or(0),
        context: req.str_field("context")?,
        associated_data: req.str_field("associated_data")?,
    })
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    kind: &str,
    name: &str,
) -> Result<Reply, ApiError> {
    let (key, request) = (name.to_string(), request(req, kind));
    apply(
        core,
        req,
        TransitDatakey {
            mount,
            key,
            request,
        },
        |d| {
            let mut data = json!({
                "ciphertext": d.encrypted.ciphertext,
                "key_version": d.encrypted.key_version,
            });
            if let Some(plaintext) = &d.plaintext {
                let plain = Zeroizing::new(STANDARD.encode(plaintext.as_slice()));
                data["plaintext"] = json!(plain.as_str());
            }
            Ok(Reply::data(data))
        },
    )
    .await
}
