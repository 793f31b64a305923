//! `<mount>/data/<path>`: read, write, patch and soft-delete secret versions.

use std::sync::Arc;

use engine::kv::{KvEngine, VersionMeta};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use super::authorize;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{envelope, rfc3339, Reply};

pub(super) fn version_json(
    version: u64,
    meta: &VersionMeta,
    custom: &Option<std::collections::BTreeMap<String, String>>,
) -> Value {
    json!({
        "created_time": rfc3339(Some(meta.created_time)),
        "custom_metadata": custom,
        "deletion_time": rfc3339(meta.deletion_time),
        "destroyed": meta.destroyed,
        "version": version,
    })
}

fn cas(req: &VaultRequest) -> Result<Option<u64>, ApiError> {
    match req.body.get("options") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => match o.get("cas") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .map(Some)
                .ok_or_else(|| ApiError::bad("options.cas must be a non-negative integer")),
        },
        Some(_) => Err(ApiError::bad("options must be an object")),
    }
}

fn data_field(req: &VaultRequest) -> Result<Map<String, Value>, ApiError> {
    match req.body.get("data") {
        Some(Value::Object(d)) => Ok(d.clone()),
        None | Some(Value::Null) => Err(ApiError::bad("no data provided")),
        Some(_) => Err(ApiError::bad("data must be a JSON object")),
    }
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    kv: &KvEngine,
    path: &str,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            authorize(core, req, Operation::Read).await?;
            let version = req.u64_field("version")?;
            let read = kv.read(path, version)?;
            let meta = version_json(read.version, &read.meta, &read.custom_metadata);
            match read.data {
                Some(d) => Ok(Reply::data(json!({ "data": d, "metadata": meta }))),
                // Vault answers a deleted or destroyed version with 404 and its metadata.
                None => Err(engine::EngineError::NotFoundWithData(envelope(
                    Some(json!({ "data": null, "metadata": meta })),
                    None,
                ))
                .into()),
            }
        }
        Operation::Update => {
            let op = if kv.exists(path)? {
                Operation::Update
            } else {
                Operation::Create
            };
            authorize(core, req, op).await?;
            let data = data_field(req)?;
            let (version, meta, key) = kv.write(path, data, cas(req)?).await?;
            Ok(Reply::data(version_json(
                version,
                &meta,
                &key.custom_metadata,
            )))
        }
        Operation::Patch => {
            authorize(core, req, Operation::Patch).await?;
            let data = data_field(req)?;
            let (version, meta, key) = kv.patch(path, data, cas(req)?).await?;
            Ok(Reply::data(version_json(
                version,
                &meta,
                &key.custom_metadata,
            )))
        }
        Operation::Delete => {
            authorize(core, req, Operation::Delete).await?;
            kv.delete_latest(path).await?;
            Ok(Reply::no_content())
        }
        Operation::List | Operation::Create => Err(ApiError::unsupported_operation()),
    }
}
