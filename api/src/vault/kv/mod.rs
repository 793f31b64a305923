//! kv v2 below its mount: `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/`,
//! `config`. ACL checks use the full request path, as Vault's do.

mod config;
mod data;
mod metadata;
mod versions;

use std::sync::Arc;

use engine::kv::KvEngine;
use engine::policy::Operation;
use engine::token::Caller;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    kv: &KvEngine,
    rest: &str,
) -> Result<Reply, ApiError> {
    let (family, path) = match rest.split_once('/') {
        Some((f, p)) => (f, p),
        None => (rest, ""),
    };
    match family {
        "data" => data::handle(core, req, kv, path).await,
        "metadata" => metadata::handle(core, req, kv, path).await,
        "delete" => versions::delete(core, req, kv, path).await,
        "undelete" => versions::undelete(core, req, kv, path).await,
        "destroy" => versions::destroy(core, req, kv, path).await,
        "config" if path.is_empty() => config::handle(core, req, kv).await,
        _ => Err(ApiError::unsupported_path(&req.path)),
    }
}

/// Checks the caller for `op` on the full request path.
async fn authorize(
    core: &Arc<Core>,
    req: &VaultRequest,
    op: Operation,
) -> Result<Caller, ApiError> {
    crate::vault::acl::authorize(core, req, &req.path, op).await
}

/// The `versions` field of delete, undelete and destroy.
fn versions(req: &VaultRequest) -> Result<Vec<u64>, ApiError> {
    let list = req
        .list_field("versions")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad("no version number provided"))?;
    list.iter()
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad(format!("invalid version {v:?}")))
        })
        .collect()
}
