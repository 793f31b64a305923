//! `<mount>/delete`, `undelete` and `destroy`: act on chosen versions of a secret.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::kv::{KvVersions, VersionAction};
use engine::policy::Operation;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::{apply, unsupported_operation};

/// The `versions` field.
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

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    path: String,
    family: &str,
) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return unsupported_operation(core, req).await;
    }
    let action = match family {
        "delete" => VersionAction::Delete,
        "undelete" => VersionAction::Undelete,
        _ => VersionAction::Destroy,
    };
    let op = KvVersions {
        mount,
        path,
        action,
        versions: versions(req).map_err(Into::into),
    };
    apply(core, req, op, |()| Ok(Reply::no_content())).await
}
