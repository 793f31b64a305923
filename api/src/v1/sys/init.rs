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

async fn init(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.list_field("pgp_keys")?.is_some_and(|k| !k.is_empty())
        || req
            .list_field("recovery_pgp_keys")?
            .is_some_and(|k| !k.is_empty())
    {
        return Err(ApiError::bad(
            "pgp_keys are not supported: unseal keys are returned in the clear, distribute them securely",
        ));
    }
    let request = engine::InitRequest {
        secret_shares: share_count(req, "secret_shares", 5)?,
        secret_threshold: share_count(req, "secret_threshold", 3)?,
        recovery_shares: share_count(req, "recovery_shares", 5)?,
        recovery_threshold: share_count(req, "recovery_threshold", 3)?,
    };
    let result = core.init_with(request).await?;
    let hex = |keys: &[hsm_bridge::UnsealShare]| -> Vec<String> {
        keys.iter().map(|k| hex::encode(k.as_bytes())).collect()
    };
    let b64 = |keys: &[hsm_bridge::UnsealShare]| -> Vec<String> {
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
