//! `sys/init`: whether the appliance is initialised, and initialising it.

use std::sync::Arc;

use engine::ops::sys::init::{Init, InitParams, InitStatus};
use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use super::apply;
use super::seal::encode_keys;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            apply(core, req, InitStatus, |initialized| {
                Ok(Reply::raw(json!({ "initialized": initialized })))
            })
            .await
        }
        Operation::Update => {
            let op = Init {
                params: params(req).map_err(Into::into),
            };
            apply(core, req, op, |result| {
                Ok(Reply::raw(if result.recovery_keys.is_empty() {
                    let (hex, b64) = encode_keys(&result.keys);
                    json!({
                        "keys": hex,
                        "keys_base64": b64,
                        "recovery_keys": null,
                        "recovery_keys_base64": null,
                        "root_token": result.root_token.as_str(),
                    })
                } else {
                    let (hex, b64) = encode_keys(&result.recovery_keys);
                    json!({
                        "keys": [],
                        "keys_base64": [],
                        "recovery_keys": hex,
                        "recovery_keys_base64": b64,
                        "recovery_shares": result.recovery_keys.len(),
                        "recovery_threshold": result.recovery_threshold,
                        "root_token": result.root_token.as_str(),
                    })
                }))
            })
            .await
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// Every parameter Vault's `sys/init` takes. Each is honoured or refused; a name
/// outside this list is refused too, so a typo never passes as a default.
const KNOWN_PARAMS: &[&str] = &[
    "secret_shares",
    "secret_threshold",
    "pgp_keys",
    "root_token_pgp_key",
    "recovery_shares",
    "recovery_threshold",
    "recovery_pgp_keys",
    "stored_shares",
];

fn params(req: &VaultRequest) -> Result<InitParams, ApiError> {
    req.refuse_unknown(KNOWN_PARAMS)?;
    let mut pgp = false;
    for name in ["pgp_keys", "recovery_pgp_keys"] {
        pgp |= req.list_field(name)?.is_some_and(|k| !k.is_empty());
    }
    if pgp {
        return Err(ApiError::bad(
            "pgp_keys are not supported: unseal keys are returned in the clear, distribute them securely",
        ));
    }
    if req
        .str_field("root_token_pgp_key")?
        .is_some_and(|k| !k.trim().is_empty())
    {
        return Err(ApiError::bad(
            "root_token_pgp_key is not supported: the root token is returned in the clear; revoke it once other tokens exist",
        ));
    }
    Ok(InitParams {
        secret_shares: req.u64_field("secret_shares")?,
        secret_threshold: req.u64_field("secret_threshold")?,
        recovery_shares: req.u64_field("recovery_shares")?,
        recovery_threshold: req.u64_field("recovery_threshold")?,
        stored_shares: req.u64_field("stored_shares")?,
    })
}
