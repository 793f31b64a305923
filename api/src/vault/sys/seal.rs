//! `sys/seal-status`, `sys/unseal`, `sys/seal`.

use std::sync::Arc;

use base64::Engine;
use engine::policy::Operation;
use engine::{Core, Migration, UnsealShare, UnsealStep};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

/// Anyone may read seal-status, so a seal error is only its category; a caller whose
/// token holds `sudo` on `sys/seal-status` also gets the details (which needs the
/// appliance unsealed: while sealed no token can be checked). A token that does not
/// qualify is not an error here: the caller gets what everyone gets.
pub async fn status(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    let operator = !req.token.is_empty() && !core.is_sealed() && holds_sudo(core, req);
    let status = if operator {
        core.seal_status_detailed()?
    } else {
        core.seal_status()?
    };
    Ok(Reply::raw(serde_json::to_value(status).map_err(|_| {
        ApiError::new(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?))
}

/// Whether the request's token holds `read` and `sudo` on `sys/seal-status`. Unlike
/// `authorize_sudo` this spends none of the token's uses: `bao status` sends
/// `VAULT_TOKEN` with every call, and reading a public endpoint must not use the token up.
fn holds_sudo(core: &Arc<Core>, req: &VaultRequest) -> bool {
    let path = req.path.trim_end_matches('/');
    let Ok(caller) = core
        .tokens
        .authenticate_without_use(&req.token, path, Operation::Read)
    else {
        return false;
    };
    core.acl(&caller).is_ok_and(|acl| {
        acl.allows(path, Operation::Read, &crate::vault::acl::parameters(req)) && acl.has_sudo(path)
    })
}

/// An unseal key as hex, standard base64 or base64url, as the CLI may pass any of them.
pub(crate) fn decode_key(key: &str) -> Result<UnsealShare, ApiError> {
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

impl From<engine::SealError> for ApiError {
    fn from(e: engine::SealError) -> Self {
        engine::EngineError::Seal(e).into()
    }
}

pub async fn unseal(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(ApiError::unsupported_operation());
    }
    let reset = req.bool_field("reset")?.unwrap_or(false);
    let share = if reset {
        None
    } else {
        let key = req.str_field("key")?.ok_or_else(|| {
            ApiError::bad("'key' must be specified in request body as JSON, or 'reset' set to true")
        })?;
        Some(decode_key(&key)?)
    };
    let migrate = req.bool_field("migrate")?.unwrap_or(false);
    let step = share.map_or(UnsealStep::Reset, UnsealStep::Share);
    let status = core
        .unseal_with(step, Migration::from_flag(migrate))
        .await?;
    Ok(Reply::raw(serde_json::to_value(status).map_err(|_| {
        ApiError::new(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?))
}

pub async fn seal(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(ApiError::unsupported_operation());
    }
    super::authorize_sudo(core, req, Operation::Update).await?;
    core.seal().await;
    Ok(Reply::no_content())
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
