//! `sys/rotate` and `sys/key-status`: the barrier keyring.

use std::sync::Arc;

use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{rfc3339, Reply};

pub async fn rotate(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(super::unsupported(core, req, true).await);
    }
    super::authorize_sudo(core, req, Operation::Update).await?;
    let status = core.rotate_keyring().await?;
    tracing::info!(term = status.term, "barrier keyring rotated");
    Ok(Reply::no_content())
}

pub async fn status(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    super::authorize_sudo(core, req, Operation::Read).await?;
    let s = core.key_status()?;
    let body = json!({
        "term": s.term,
        "install_time": rfc3339(Some(s.install_time)),
        "encryptions": 0,
    });
    let mut reply = body.clone();
    reply["data"] = body;
    Ok(Reply::raw(reply))
}
