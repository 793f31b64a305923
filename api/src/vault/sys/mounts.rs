//! `sys/mounts` (list, enable, read, disable, tune) and `sys/internal/ui/mounts`, which
//! the CLI's `kv` commands call first to learn a mount's path and kv version.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::mounts::{normalize_mount_path, MountConfig, MountEntry};
use engine::ops::sys::auth::TuneVia;
use engine::ops::sys::mounts::{
    MountDisable, MountEnable, MountOf, MountRead, MountSpec, MountTune, MountTuneRead,
    MountTuneSpec, MountsList,
};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use super::{apply, not_allowed, with_data};
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

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if tail.is_empty() {
        if req.op != Operation::Read {
            return not_allowed(core, req).await;
        }
        return apply(core, req, MountsList, |mounts| {
            let mut all = Map::new();
            for m in &mounts {
                all.insert(m.path.clone(), mount_json(m));
            }
            all.insert("sys/".into(), system_mount());
            Ok(with_data(Value::Object(all)))
        })
        .await;
    }
    if let Some(path) = tail.strip_suffix("/tune") {
        return tune(core, req, path).await;
    }
    let path = tail.to_string();
    match req.op {
        Operation::Update => {
            let op = MountEnable {
                path,
                spec: spec(req).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        Operation::Read => {
            apply(core, req, MountRead { path }, |m| {
                Ok(with_data(mount_json(&m)))
            })
            .await
        }
        Operation::Delete => {
            apply(core, req, MountDisable { path }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        _ => not_allowed(core, req).await,
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

fn spec(req: &VaultRequest) -> Result<MountSpec, ApiError> {
    let kind = req
        .str_field("type")?
        .ok_or_else(|| ApiError::bad("missing type"))?;
    let mut config = MountConfig::default();
    config_ttls(req, &mut config)?;
    Ok(MountSpec {
        kind,
        description: req.str_field("description")?.unwrap_or_default(),
        options: string_options(req)?,
        config,
    })
}

fn tune_spec(req: &VaultRequest) -> Result<MountTuneSpec, ApiError> {
    let ttl = |name: &str| -> Result<Option<u64>, ApiError> {
        req.body
            .get(name)
            .map(engine::duration::duration_from_json)
            .transpose()
            .map_err(Into::into)
    };
    Ok(MountTuneSpec {
        default_lease_ttl: ttl("default_lease_ttl")?,
        max_lease_ttl: ttl("max_lease_ttl")?,
        description: req.str_field("description")?,
        options: string_options(req)?,
    })
}

async fn tune(core: &Arc<Core>, req: &VaultRequest, path: &str) -> Result<Reply, ApiError> {
    let path = match normalize_mount_path(path) {
        Ok(p) => p,
        // Refused once the ACL is checked, and audited, as any malformed request.
        Err(e) => return super::refuse(core, req, engine::ops::Access::Acl(req.op), e).await,
    };
    if path == "auth/token/" {
        return super::auth::tune(core, req, TuneVia::Mounts).await;
    }
    if let Some(method) = path.strip_prefix("auth/") {
        return super::auth::tune_method(core, req, method, TuneVia::Mounts).await;
    }
    match req.op {
        Operation::Read => {
            apply(core, req, MountTuneRead { path }, |e| {
                Ok(with_data(json!({
                    "default_lease_ttl": e.config.default_lease_ttl,
                    "max_lease_ttl": e.config.max_lease_ttl,
                    "force_no_cache": e.config.force_no_cache,
                    "description": e.description,
                    "options": e.options,
                })))
            })
            .await
        }
        Operation::Update => {
            let op = MountTune {
                path,
                spec: tune_spec(req).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        _ => not_allowed(core, req).await,
    }
}

/// Any valid token may learn which engine serves a path; the answer reveals no data.
pub async fn ui_mount(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return not_allowed(core, req).await;
    }
    let target = tail.trim_start_matches("ui/mounts").trim_start_matches('/');
    let op = MountOf {
        target: target.to_string(),
    };
    apply(core, req, op, |m| {
        let mut body = mount_json(&m);
        body["path"] = Value::from(m.path.clone());
        Ok(Reply::data(body))
    })
    .await
}
