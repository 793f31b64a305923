//! `<mount>/metadata/<path>`: key metadata, listing, and deleting a key outright.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::duration::format_duration;
use engine::kv::{KvEngine, MetadataUpdate};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use super::authorize;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{rfc3339, Reply};

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
    kv: &KvEngine,
    path: &str,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::List => {
            authorize(core, req, Operation::List).await?;
            let dir = if path.is_empty() || path.ends_with('/') {
                path.to_string()
            } else {
                format!("{path}/")
            };
            let keys = kv.list(&dir)?;
            if keys.is_empty() {
                return Err(ApiError::not_found_empty());
            }
            Ok(Reply::data(json!({ "keys": keys })))
        }
        Operation::Read => {
            authorize(core, req, Operation::Read).await?;
            let m = kv.metadata(path)?;
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
        }
        Operation::Update => {
            let op = if kv.exists(path)? {
                Operation::Update
            } else {
                Operation::Create
            };
            authorize(core, req, op).await?;
            kv.write_metadata(path, update_from(req)?).await?;
            Ok(Reply::no_content())
        }
        Operation::Patch => {
            authorize(core, req, Operation::Patch).await?;
            kv.metadata(path)?;
            let mut update = update_from(req)?;
            if let Some(custom) = update.custom_metadata.take() {
                // Merge-patch semantics: keys are added or replaced, the rest kept.
                let mut merged: BTreeMap<String, String> =
                    kv.metadata(path)?.custom_metadata.unwrap_or_default();
                merged.extend(custom);
                update.custom_metadata = Some(merged);
            }
            kv.write_metadata(path, update).await?;
            Ok(Reply::no_content())
        }
        Operation::Delete => {
            authorize(core, req, Operation::Delete).await?;
            kv.delete_metadata(path).await?;
            Ok(Reply::no_content())
        }
        Operation::Create => Err(ApiError::unsupported_operation()),
    }
}
