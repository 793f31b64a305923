//! `<mount>/metadata/<path>`: key metadata, listing, and deleting a key outright.

use std::sync::Arc;

use engine::duration::format_duration;
use engine::kv::MetadataUpdate;
use engine::mounts::MountRef;
use engine::ops::kv::{KvList, KvMetadataDelete, KvMetadataRead, KvMetadataWrite, MetadataWrite};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{rfc3339, Reply};
use crate::vault::{apply, unsupported_operation};

fn update_from(req: &VaultRequest) -> Result<MetadataUpdate, ApiError> {
    Ok(MetadataUpdate {
        max_versions: req.u64_field("max_versions")?,
        cas_required: req.bool_field("cas_required")?,
        delete_version_after: req.duration_field("delete_version_after")?,
        custom_metadata: req.string_map_field("custom_metadata")?,
    })
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    path: String,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::List => {
            apply(core, req, KvList { mount, dir: path }, |keys| {
                if keys.is_empty() {
                    return Err(ApiError::not_found_empty());
                }
                Ok(Reply::data(json!({ "keys": keys })))
            })
            .await
        }
        Operation::Read => {
            apply(core, req, KvMetadataRead { mount, path }, |m| {
                let versions: Map<String, Value> = m
                    .versions
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            json!({
                                "created_time": rfc3339(Some(v.created_time)),
                                "deletion_time": rfc3339(v.deletion_time),
                                "destroyed": v.destroyed,
                            }),
                        )
                    })
                    .collect();
                Ok(Reply::data(json!({
                    "cas_required": m.cas_required,
                    "created_time": rfc3339(Some(m.created_time)),
                    "current_version": m.current_version,
                    "custom_metadata": m.custom_metadata,
                    "delete_version_after": format_duration(m.delete_version_after),
                    "max_versions": m.max_versions,
                    "oldest_version": m.oldest_version,
                    "updated_time": rfc3339(Some(m.updated_time)),
                    "versions": versions,
                })))
            })
            .await
        }
        Operation::Update | Operation::Patch => {
            let op = KvMetadataWrite {
                mount,
                path,
                update: update_from(req).map_err(Into::into),
                mode: if req.op == Operation::Patch {
                    MetadataWrite::Merge
                } else {
                    MetadataWrite::Replace
                },
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        Operation::Delete => {
            apply(core, req, KvMetadataDelete { mount, path }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        Operation::Create => unsupported_operation(core, req).await,
    }
}
