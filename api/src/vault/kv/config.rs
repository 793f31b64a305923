//! `<mount>/config`: defaults for every key of the mount.

use std::sync::Arc;

use engine::duration::format_duration;
use engine::kv::KvEngine;
use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use super::authorize;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    kv: &KvEngine,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            authorize(core, req, Operation::Read).await?;
            let c = kv.config()?;
            Ok(Reply::data(json!({
                "max_versions": c.max_versions,
                "cas_required": c.cas_required,
                "delete_version_after": format_duration(c.delete_version_after),
            })))
        }
        Operation::Update => {
            authorize(core, req, Operation::Update).await?;
            let mut c = kv.config()?;
            if let Some(m) = req.u64_field("max_versions")? {
                c.max_versions = m;
            }
            if let Some(b) = req.bool_field("cas_required")? {
                c.cas_required = b;
            }
            if let Some(d) = req.duration_field("delete_version_after")? {
                c.delete_version_after = d;
            }
            kv.set_config(c).await?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}
