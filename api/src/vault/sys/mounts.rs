//! `sys/mounts` (list, enable, read, disable, tune) and `sys/internal/ui/mounts`, which
//! the CLI's `kv` commands call first to learn a mount's path and kv version.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::mounts::{normalize_mount_path, MountConfig, MountEntry};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn mount_json(e: &MountEntry) -> Value {
    json!({
        "type": e.kind.as_str(),
        "description": e.description,
        "accessor": e.accessor,
        "uuid": e.uuid,
        "config": {
            "default_lease_ttl": e.config.default_lease_ttl,
            "max_lease_ttl": e.config.max_lease_ttl,
            "force_no_cache": e.config.force_no_cache,
        },
        "options": e.options,
        "local": e.local,
        "seal_wrap": e.seal_wrap,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
    })
}

fn system_mount() -> Value {
    json!({
        "type": "system",
        "description": "system endpoints used for control, policy and debugging",
        "accessor": "system_ironseal",
        "uuid": "",
        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
        "options": null,
        "local": false,
        "seal_wrap": true,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
    })
}

fn with_data(body: Value) -> Reply {
    let mut reply = body.clone();
    reply["data"] = body;
    Reply::raw(reply)
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if tail.is_empty() {
        if req.op != Operation::Read {
            return Err(ApiError::unsupported_operation());
        }
        super::authorize(core, req, Operation::Read).await?;
        let mut all = Map::new();
        for m in core.mounts.list() {
            all.insert(m.entry.path.clone(), mount_json(&m.entry));
        }
        all.insert("sys/".into(), system_mount());
        return Ok(with_data(Value::Object(all)));
    }
    if let Some(path) = tail.strip_suffix("/tune") {
        return tune(core, req, path).await;
    }
    match req.op {
        Operation::Update => enable(core, req, tail).await,
        Operation::Read => {
            super::authorize(core, req, Operation::Read).await?;
            let path = normalize_mount_path(tail)?;
            let m = core
                .mounts
                .get(&path)
                .ok_or_else(|| ApiError::bad(format!("no mount at {path:?}")))?;
            Ok(with_data(mount_json(&m.entry)))
        }
        Operation::Delete => {
            super::authorize(core, req, Operation::Delete).await?;
            let path = normalize_mount_path(tail)?;
            if core.mounts.get(&path).is_some() {
                core.mounts.unmount(&path).await?;
                tracing::info!(path = %path, "secrets engine disabled");
            }
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn string_options(req: &VaultRequest) -> Result<BTreeMap<String, String>, ApiError> {
    Ok(req.string_map_field("options")?.unwrap_or_default())
}

fn config_ttls(req: &VaultRequest, config: &mut MountConfig) -> Result<(), ApiError> {
    let Some(Value::Object(c)) = req.body.get("config") else {
        return Ok(());
    };
    for (name, slot) in [
        ("default_lease_ttl", &mut config.default_lease_ttl),
        ("max_lease_ttl", &mut config.max_lease_ttl),
    ] {
        if let Some(v) = c.get(name) {
            *slot = engine::duration::duration_from_json(v)
                .map_err(|e| ApiError::bad(format!("config.{name}: {e}")))?;
        }
    }
    Ok(())
}

async fn enable(core: &Arc<Core>, req: &VaultRequest, path: &str) -> Result<Reply, ApiError> {
    super::authorize(core, req, Operation::Update).await?;
    let kind = req
        .str_field("type")?
        .ok_or_else(|| ApiError::bad("missing type"))?;
    let mut config = MountConfig::default();
    config_ttls(req, &mut config)?;
    let entry = core
        .mounts
        .mount(
            path,
            &kind,
            req.str_field("description")?.unwrap_or_default(),
            string_options(req)?,
            config,
        )
        .await?;
    tracing::info!(path = %entry.path, kind = entry.kind.as_str(), "secrets engine enabled");
    Ok(Reply::no_content())
}

async fn tune(core: &Arc<Core>, req: &VaultRequest, path: &str) -> Result<Reply, ApiError> {
    let path = normalize_mount_path(path)?;
    if path == "auth/token/" {
        return super::auth_tune::handle(core, req, super::auth_tune::Door::Mounts).await;
    }
    match req.op {
        Operation::Read => {
            super::authorize(core, req, Operation::Read).await?;
            let m = core
                .mounts
                .get(&path)
                .ok_or_else(|| ApiError::bad(format!("no mount at {path:?}")))?;
            let e = &m.entry;
            Ok(with_data(json!({
                "default_lease_ttl": e.config.default_lease_ttl,
                "max_lease_ttl": e.config.max_lease_ttl,
                "force_no_cache": e.config.force_no_cache,
                "description": e.description,
                "options": e.options,
            })))
        }
        Operation::Update => {
            super::authorize(core, req, Operation::Update).await?;
            let mut ttls = MountConfig::default();
            let has_default = req.body.contains_key("default_lease_ttl");
            let has_max = req.body.contains_key("max_lease_ttl");
            if let Some(v) = req.body.get("default_lease_ttl") {
                ttls.default_lease_ttl = engine::duration::duration_from_json(v)?;
            }
            if let Some(v) = req.body.get("max_lease_ttl") {
                ttls.max_lease_ttl = engine::duration::duration_from_json(v)?;
            }
            core.mounts
                .tune(
                    &path,
                    req.str_field("description")?,
                    |c| {
                        if has_default {
                            c.default_lease_ttl = ttls.default_lease_ttl;
                        }
                        if has_max {
                            c.max_lease_ttl = ttls.max_lease_ttl;
                        }
                    },
                    string_options(req)?,
                )
                .await?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// Any valid token may learn which engine serves a path; the answer reveals no data.
pub async fn ui_mount(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    core.authenticate(&req.token, &req.path, Operation::Read)
        .await?;
    let target = tail.trim_start_matches("ui/mounts").trim_start_matches('/');
    let probe = if target.ends_with('/') {
        target.to_string()
    } else {
        format!("{target}/")
    };
    let (m, _) = core
        .mounts
        .route(&probe)
        .ok_or_else(|| ApiError::bad(format!("no mount at {target:?}")))?;
    let mut body = mount_json(&m.entry);
    body["path"] = Value::from(m.entry.path.clone());
    Ok(Reply::data(body))
}
