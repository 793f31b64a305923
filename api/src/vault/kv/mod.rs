//! kv v2 below its mount: `data/`, `metadata/`, `subkeys/`, `delete/`, `undelete/`,
//! `destroy/`, `config`; kv version 1 mounts in `v1`. ACL checks use the full request
//! path, as Vault's do.

mod config;
mod data;
mod metadata;
mod subkeys;
mod v1;
mod versions;

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    if mount.kv_version() == 1 {
        return v1::handle(core, req, mount, rest).await;
    }
    let (family, path) = match rest.split_once('/') {
        Some((f, p)) => (f, p.to_string()),
        None => (rest, String::new()),
    };
    match family {
        "data" => data::handle(core, req, mount, path).await,
        "metadata" => metadata::handle(core, req, mount, path).await,
        "subkeys" => subkeys::handle(core, req, mount, path).await,
        "delete" | "undelete" | "destroy" => versions::handle(core, req, mount, path, family).await,
        "config" if path.is_empty() => config::handle(core, req, mount).await,
        _ => super::no_route(core, req).await,
    }
}
