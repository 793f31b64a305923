//! `backup/:name` and `restore(/:name)`: Vault's plaintext key backup. Restore answers
//! 204, as Vault's.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::transit::{RestoreRequest, TransitBackup, TransitRestore};
use engine::{Core, EngineError};
use serde_json::json;
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

pub async fn backup(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let key = name.to_string();
    apply(core, req, TransitBackup { mount, key }, |backup| {
        Ok(Reply::data(json!({ "backup": backup.as_str() })))
    })
    .await
}

fn restore_request(req: &VaultRequest) -> Result<RestoreRequest, EngineError> {
    let backup = req
        .str_field("backup")?
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::bad("'backup' must be supplied"))?;
    Ok(RestoreRequest {
        backup: Zeroizing::new(backup),
        force: req.bool_field("force")?.unwrap_or(false),
    })
}

/// `name`: what follows `restore/`, "" for none.
pub async fn restore(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let name = if name.contains('/') {
        Err(ApiError::bad("key names cannot be paths").into())
    } else {
        Ok(Some(name.to_string()).filter(|n| !n.is_empty()))
    };
    let op = TransitRestore {
        mount,
        name,
        request: restore_request(req),
    };
    apply(core, req, op, |()| Ok(Reply::no_content())).await
}
