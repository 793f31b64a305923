//! `<mount>/delete`, `undelete` and `destroy`: act on chosen versions of a secret.

use std::sync::Arc;

use engine::kv::KvEngine;
use engine::policy::Operation;
use engine::Core;

use super::{authorize, versions};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

async fn prepare(core: &Arc<Core>, req: &VaultRequest) -> Result<Vec<u64>, ApiError> {
    if req.op != Operation::Update {
        return Err(ApiError::unsupported_operation());
    }
    authorize(core, req, Operation::Update).await?;
    versions(req)
}

pub async fn delete(
    core: &Arc<Core>,
    req: &VaultRequest,
    kv: &KvEngine,
    path: &str,
) -> Result<Reply, ApiError> {
    let v = prepare(core, req).await?;
    kv.delete_versions(path, &v).await?;
    Ok(Reply::no_content())
}

pub async fn undelete(
    core: &Arc<Core>,
    req: &VaultRequest,
    kv: &KvEngine,
    path: &str,
) -> Result<Reply, ApiError> {
    let v = prepare(core, req).await?;
    kv.undelete(path, &v).await?;
    Ok(Reply::no_content())
}

pub async fn destroy(
    core: &Arc<Core>,
    req: &VaultRequest,
    kv: &KvEngine,
    path: &str,
) -> Result<Reply, ApiError> {
    let v = prepare(core, req).await?;
    kv.destroy(path, &v).await?;
    Ok(Reply::no_content())
}
