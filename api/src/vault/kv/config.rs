//! `<mount>/config`: defaults for every key of the mount.

use std::sync::Arc;

use engine::duration::format_duration;
use engine::mounts::MountRef;
use engine::ops::kv::{KvConfigRead, KvConfigUpdate, KvConfigWrite};
use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::{apply, unsupported_operation};

fn update(req: &VaultRequest) -> Result<KvConfigUpdate, ApiError> {
    Ok(KvConfigUpdate {
        max_versions: req.u64_field("max_versions")?,
        cas_required: req.bool_field("cas_required")?,
        delete_version_after: req.duration_field("delete_version_after")?,
    })
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            apply(core, req, KvConfigRead { mount }, |c| {
                Ok(Reply::data(json!({
                    "max_versions": c.max_versions,
                    "cas_required": c.cas_required,
                    "delete_version_after": format_duration(c.delete_version_after),
                })))
            })
            .await
        }
        Operation::Update => {
            let op = KvConfigWrite {
                mount,
                update: update(req).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        _ => unsupported_operation(core, req).await,
    }
}
