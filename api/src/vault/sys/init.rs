//! `sys/init`: whether the appliance is initialised, and initialising it.

use std::sync::Arc;

use base64::Engine;
use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => Ok(Reply::raw(json!({ "initialized": core.is_initialized()? }))),
        Operation::Update => init(core, req).await,
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn share_count(req: &VaultRequest, name: &str, default: u64) -> Result<u8, ApiError> {
    let n = req.u64_field(name)?.unwrap_or(default);
    u8::try_from(n).map_err(|_| ApiError::bad(format!("{name} must be at most 255")))
}

/// Every parameter Vault's `sys/init` takes. Each is honoured or refused below; a name
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

async fn init(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
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
    let hardware = core.configured_seal().is_hardware();
    // As OpenBao: the parameters of the seal that is not in use are refused, not ignored.
    let mut foreign = Vec::new();
    let other_seal = if hardware {
        ["secret_shares", "secret_threshold"]
    } else {
        ["recovery_shares", "recovery_threshold"]
    };
    for name in other_seal {
        // Vault's CLI sends every field, zero for the ones that do not apply.
        if req.u64_field(name)?.is_some_and(|n| n != 0) {
            foreign.push(name);
        }
    }
    if !foreign.is_empty() {
        return Err(ApiError::bad(format!(
            "parameters {} not applicable to seal type {}",
            foreign.join(","),
            core.configured_seal()
        )));
    }
    // Vault's deprecated `stored_shares`: a hardware seal holds its one key in the
    // device (1, or 0 for "unset"); Shamir stores no keys at all.
    let stored = req.u64_field("stored_shares")?.unwrap_or(0);
    match (hardware, stored) {
        (_, 0) | (true, 1) => {}
        (true, _) => {
            return Err(ApiError::bad(
                "stored_shares must be 1 (or left out) with a hardware seal: the device holds the one root key",
            ))
        }
        (false, _) => {
            return Err(ApiError::bad(
                "stored keys are not supported by the shamir seal: leave stored_shares out",
            ))
        }
    }
    let request = engine::InitRequest {
        secret_shares: share_count(req, "secret_shares", 5)?,
        secret_threshold: share_count(req, "secret_threshold", 3)?,
        recovery_shares: share_count(req, "recovery_shares", 5)?,
        recovery_threshold: share_count(req, "recovery_threshold", 3)?,
    };
    let result = core.init_with(request).await?;
    let hex = |keys: &[engine::UnsealShare]| -> Vec<String> {
        keys.iter().map(|k| hex::encode(k.as_bytes())).collect()
    };
    let b64 = |keys: &[engine::UnsealShare]| -> Vec<String> {
        keys.iter()
            .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.as_bytes()))
            .collect()
    };
    let body = if result.recovery_keys.is_empty() {
        tracing::info!(
            shares = request.secret_shares,
            threshold = request.secret_threshold,
            "vault initialized"
        );
        json!({
            "keys": hex(&result.keys),
            "keys_base64": b64(&result.keys),
            "recovery_keys": null,
            "recovery_keys_base64": null,
            "root_token": result.root_token.as_str(),
        })
    } else {
        tracing::info!(
            seal = %core.configured_seal(),
            recovery_shares = result.recovery_keys.len(),
            recovery_threshold = result.recovery_threshold,
            "vault initialized with recovery keys"
        );
        json!({
            "keys": [],
            "keys_base64": [],
            "recovery_keys": hex(&result.recovery_keys),
            "recovery_keys_base64": b64(&result.recovery_keys),
            "recovery_shares": result.recovery_keys.len(),
            "recovery_threshold": result.recovery_threshold,
            "root_token": result.root_token.as_str(),
        })
    };
    Ok(Reply::raw(body))
}
