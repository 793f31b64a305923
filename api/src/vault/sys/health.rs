//! `sys/health` and `sys/leader`: what load balancers and the CLI poll.

use std::sync::Arc;

use engine::ops::sys::health::{Health, Leader};
use engine::policy::Operation;
use engine::Core;
use hyper::StatusCode;
use serde_json::json;

use super::apply;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn code(req: &VaultRequest, name: &str, default: u16) -> Result<StatusCode, ApiError> {
    let code = req.u64_field(name)?.map(|c| c as u16).unwrap_or(default);
    StatusCode::from_u16(code).map_err(|_| ApiError::bad(format!("invalid {name}: {code}")))
}

pub async fn health(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    apply(core, req, Health, |h| {
        // This appliance is always the active node: standby codes never apply.
        let status = if !h.initialized {
            code(req, "uninitcode", 501)?
        } else if h.sealed {
            code(req, "sealedcode", 503)?
        } else {
            code(req, "activecode", 200)?
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut storage = json!({"type": h.storage_type});
        if let Some(reachable) = h.storage_reachable {
            storage["reachable"] = reachable.into();
        }
        Ok(Reply::raw(json!({
            "initialized": h.initialized,
            "sealed": h.sealed,
            "standby": false,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": now,
            "version": engine::core::API_VERSION,
            "ironseal_version": engine::core::VERSION,
            "enterprise": false,
            "cluster_name": "ironseal",
            "cluster_id": "",
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
            "storage": storage,
        }))
        .with_status(status))
    })
    .await
}

pub async fn leader(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    apply(core, req, Leader, |()| {
        Ok(Reply::raw(json!({
            "ha_enabled": false,
            "is_self": false,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        })))
    })
    .await
}
