//! `sys/audit` (list, enable, disable audit devices) and `sys/audit-hash/:path`. All are
//! root-protected in Vault: they need `sudo`.
//!
//! `sys/audit-verify/:path` is an Ironseal extension (Vault has no such endpoint): the
//! appliance checks a device's file with the chain key, which never leaves it, and
//! compares it with the chain head recorded in storage. `ironseal audit verify -device`
//! calls it. It needs `sudo` too.

use std::sync::Arc;

use engine::audit::DeviceConfig;
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

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

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if tail.is_empty() {
        if req.op != Operation::Read {
            return Err(ApiError::unsupported_operation());
        }
        super::authorize_sudo(core, req, Operation::Read).await?;
        let mut map = Map::new();
        for d in core.audit.list()? {
            map.insert(d.path.clone(), shape(&d));
        }
        let data = Value::Object(map);
        let mut body = data.clone();
        body["data"] = data;
        return Ok(Reply::raw(body));
    }
    match req.op {
        Operation::Update | Operation::Create => {
            super::authorize_sudo(core, req, Operation::Update).await?;
            let kind = req
                .str_field("type")?
                .ok_or_else(|| ApiError::bad("type is required"))?;
            core.audit
                .enable(DeviceConfig {
                    path: tail.to_string(),
                    kind,
                    description: req.str_field("description")?.unwrap_or_default(),
                    options: req.string_map_field("options")?.unwrap_or_default(),
                    local: req.bool_field("local")?.unwrap_or(false),
                })
                .await?;
            tracing::info!(device = tail, "audit device enabled");
            Ok(Reply::no_content())
        }
        Operation::Delete => {
            super::authorize_sudo(core, req, Operation::Delete).await?;
            if core.audit.disable(tail).await? {
                tracing::info!(device = tail, "audit device disabled");
            }
            Ok(Reply::no_content())
        }
        _ => Err(super::unsupported(core, req, true).await),
    }
}

pub async fn hash(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(super::unsupported(core, req, true).await);
    }
    super::authorize_sudo(core, req, Operation::Update).await?;
    let input = req
        .str_field("input")?
        .ok_or_else(|| ApiError::bad("input is required"))?;
    let hash = core.audit.hash(tail, &input)?;
    Ok(Reply::raw(json!({"hash": hash, "data": {"hash": hash}})))
}

pub async fn verify(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    super::authorize_sudo(core, req, Operation::Read).await?;
    let report = core.audit.verify(tail).await?;
    let data = serde_json::to_value(&report)
        .map_err(|e| ApiError::from(engine::EngineError::internal(e)))?;
    Ok(Reply::raw(json!({"data": data})))
}
