//! `sys/audit` (list, enable, disable audit devices) and `sys/audit-hash/:path`. All are
//! root-protected in Vault: they need `sudo`.
//!
//! `sys/audit-verify/:path` is an Ironseal extension (Vault has no such endpoint): the
//! appliance checks a device's file with the chain key, which never leaves it, and
//! compares it with the chain head recorded in storage. `ironseal audit verify -device`
//! calls it. It needs `sudo` too.

use std::sync::Arc;

use engine::audit::DeviceConfig;
use engine::ops::sys::audit::{AuditDisable, AuditEnable, AuditHash, AuditList, AuditVerify};
use engine::ops::Access;
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use super::{apply, not_allowed, to_json, unsupported, with_data};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn shape(d: &DeviceConfig) -> Value {
    json!({
        "type": d.kind,
        "description": d.description,
        "options": d.options,
        "local": d.local,
        "path": d.path,
    })
}

fn device(req: &VaultRequest, path: &str) -> Result<DeviceConfig, ApiError> {
    let kind = req
        .str_field("type")?
        .ok_or_else(|| ApiError::bad("type is required"))?;
    Ok(DeviceConfig {
        path: path.to_string(),
        kind,
        description: req.str_field("description")?.unwrap_or_default(),
        options: req.string_map_field("options")?.unwrap_or_default(),
        local: req.bool_field("local")?.unwrap_or(false),
    })
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if tail.is_empty() {
        if req.op != Operation::Read {
            return not_allowed(core, req).await;
        }
        return apply(core, req, AuditList, |devices| {
            let mut map = Map::new();
            for d in &devices {
                map.insert(d.path.clone(), shape(d));
            }
            Ok(with_data(Value::Object(map)))
        })
        .await;
    }
    match req.op {
        Operation::Update | Operation::Create => {
            let op = AuditEnable {
                device: device(req, tail).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        Operation::Delete => {
            let op = AuditDisable {
                path: tail.to_string(),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        _ => unsupported(core, req, Access::AclSudo).await,
    }
}

pub async fn hash(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return unsupported(core, req, Access::AclSudo).await;
    }
    let input = req
        .str_field("input")
        .and_then(|i| i.ok_or_else(|| ApiError::bad("input is required")));
    let op = AuditHash {
        device: tail.to_string(),
        input: input.map_err(Into::into),
    };
    apply(core, req, op, |hash| {
        Ok(Reply::raw(json!({"hash": hash, "data": {"hash": hash}})))
    })
    .await
}

pub async fn verify(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return not_allowed(core, req).await;
    }
    let op = AuditVerify {
        device: tail.to_string(),
    };
    apply(core, req, op, |report| {
        Ok(Reply::raw(json!({"data": to_json(&report)?})))
    })
    .await
}
