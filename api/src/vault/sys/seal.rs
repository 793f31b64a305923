//! `sys/seal-status`, `sys/unseal`, `sys/seal`.

use std::sync::Arc;

use base64::Engine;
use engine::ops::sys::seal::{Seal, SealStatusRead, Unseal, UnsealRequest};
use engine::policy::Operation;
use engine::{Core, Migration, UnsealShare, UnsealStep};

use super::{apply, not_allowed, to_json};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn status(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    apply(core, req, SealStatusRead, |s| Ok(Reply::raw(to_json(s)?))).await
}

/// An unseal key as hex, standard base64 or base64url, as the CLI may pass any of them.
pub(super) fn decode_key(key: &str) -> Result<UnsealShare, ApiError> {
    let key = key.trim();
    let bytes = hex::decode(key)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key)
                .ok()
        })
        .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(key).ok())
        .ok_or_else(|| ApiError::bad("'key' must be a valid hex or base64 string"))?;
    Ok(UnsealShare::from_bytes(bytes)?)
}

/// Keys as Vault's answers carry them: hex, and base64 (here the unpadded URL-safe form
/// `operator init` prints, which [`decode_key`] reads back).
pub(super) fn encode_keys(keys: &[UnsealShare]) -> (Vec<String>, Vec<String>) {
    keys.iter()
        .map(|k| {
            (
                hex::encode(k.as_bytes()),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.as_bytes()),
            )
        })
        .unzip()
}

impl From<engine::SealError> for ApiError {
    fn from(e: engine::SealError) -> Self {
        engine::EngineError::Seal(e).into()
    }
}

fn unseal_request(req: &VaultRequest) -> Result<UnsealRequest, ApiError> {
    let step = if req.bool_field("reset")?.unwrap_or(false) {
        UnsealStep::Reset
    } else {
        let key = req.str_field("key")?.ok_or_else(|| {
            ApiError::bad("'key' must be specified in request body as JSON, or 'reset' set to true")
        })?;
        UnsealStep::Share(decode_key(&key)?)
    };
    Ok(UnsealRequest {
        step,
        migration: Migration::from_flag(req.bool_field("migrate")?.unwrap_or(false)),
    })
}

pub async fn unseal(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(ApiError::unsupported_operation());
    }
    let op = Unseal {
        request: unseal_request(req).map_err(Into::into),
    };
    apply(core, req, op, |s| Ok(Reply::raw(to_json(s)?))).await
}

pub async fn seal(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return not_allowed(core, req).await;
    }
    apply(core, req, Seal, |()| Ok(Reply::no_content())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_in_every_encoding() {
        let raw: Vec<u8> = (1..=33).collect();
        let hex = hex::encode(&raw);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        let std = base64::engine::general_purpose::STANDARD.encode(&raw);
        for k in [hex, url, std] {
            assert_eq!(decode_key(&k).unwrap().as_bytes(), raw.as_slice());
        }
        assert!(decode_key("not a key!").is_err());
        assert!(decode_key(&hex::encode([1u8; 10])).is_err());
    }
}
