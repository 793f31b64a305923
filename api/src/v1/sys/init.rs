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
    if req.list_field("pgp_keys")?.is_some_and(|k| !k.is_empty()) {
        return Err(ApiError::bad(
            "pgp_keys are not supported: unseal keys are returned in the clear, distribute them securely",
        ));
    }
    let shares = share_count(req, "secret_shares", 5)?;
    let threshold = share_count(req, "secret_threshold", 3)?;
    let result = core.init(shares, threshold).await?;
    let keys: Vec<String> = result
        .keys
        .iter()
        .map(|k| hex::encode(k.as_bytes()))
        .collect();
    let keys_b64: Vec<String> = result
        .keys
        .iter()
        .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.as_bytes()))
        .collect();
    tracing::info!(shares, threshold, "vault initialized");
    Ok(Reply::raw(json!({
        "keys": keys,
        "keys_base64": keys_b64,
        "recovery_keys": null,
        "recovery_keys_base64": null,
        "root_token": result.root_token.as_str(),
    })))
}
