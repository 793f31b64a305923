//! `<mount>/data/<path>`: read, write, patch and soft-delete secret versions.

use std::sync::Arc;

use engine::kv::VersionMeta;
use engine::mounts::MountRef;
use engine::ops::kv::{KvDeleteLatest, KvPatch, KvRead, KvWrite, Written};
use engine::policy::Operation;
use engine::Core;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{envelope, rfc3339, Reply};
use crate::vault::{apply, unsupported_operation};

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

fn written(w: Written) -> Result<Reply, ApiError> {
    Ok(Reply::data(version_json(
        w.version,
        &w.meta,
        &w.custom_metadata,
    )))
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    path: String,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            let op = KvRead {
                mount,
                path,
                version: req.u64_field("version").map_err(Into::into),
            };
            apply(core, req, op, |read| {
                let meta = version_json(read.version, &read.meta, &read.custom_metadata);
                match read.data {
                    Some(d) => Ok(Reply::data(json!({ "data": d, "metadata": meta }))),
                    // Vault answers a deleted or destroyed version with 404 and its
                    // metadata.
                    None => Err(ApiError {
                        status: StatusCode::NOT_FOUND,
                        errors: vec![],
                        body: Some(envelope(
                            Some(json!({ "data": null, "metadata": meta })),
                            None,
                        )),
                    }),
                }
            })
            .await
        }
        Operation::Update => {
            let op = KvWrite {
                mount,
                path,
                data: data_field(req).map_err(Into::into),
                cas: cas(req).map_err(Into::into),
            };
            apply(core, req, op, written).await
        }
        Operation::Patch => {
            let op = KvPatch {
                mount,
                path,
                patch: data_field(req).map_err(Into::into),
                cas: cas(req).map_err(Into::into),
            };
            apply(core, req, op, written).await
        }
        Operation::Delete => {
            apply(core, req, KvDeleteLatest { mount, path }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        Operation::List | Operation::Create => unsupported_operation(core, req).await,
    }
}
