//! Transit below its mount: one file per path family, as OpenBao's
//! `builtin/logical/transit` has (`path_keys.go`, `path_encrypt.go`, ...). Each handler
//! authorizes the caller on the full request path, reads its fields, calls the engine
//! and shapes Vault's answer.

mod batch;
mod datakey;
mod decrypt;
mod encrypt;
mod export;
mod hash;
mod hmac;
mod keys;
mod random;
mod rewrap;
mod sign;
mod verify;

use std::sync::Arc;

use engine::policy::Operation;
use engine::token::Caller;
use engine::transit::TransitEngine;
use engine::Core;
use serde_json::Value;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: engine::mounts::MountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    let transit: &TransitEngine = mount.transit_engine()?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["keys"] | ["keys", ""] => keys::list(core, req, transit).await,
        ["keys", name] => keys::handle(core, req, transit, name).await,
        ["keys", name, "config"] => keys::config(core, req, transit, name).await,
        ["keys", name, "rotate"] => keys::rotate(core, req, transit, name).await,
        ["keys", name, "trim"] => keys::trim(core, req, transit, name).await,
        ["encrypt", name] => encrypt::handle(core, req, transit, name).await,
        ["decrypt", name] => decrypt::handle(core, req, transit, name).await,
        ["rewrap", name] => rewrap::handle(core, req, transit, name).await,
        ["datakey", kind, name] => datakey::handle(core, req, transit, kind, name).await,
        ["sign", name] => sign::handle(core, req, transit, name, None).await,
        ["sign", name, algo] => sign::handle(core, req, transit, name, Some(algo)).await,
        ["verify", name] => verify::handle(core, req, transit, name, None).await,
        ["verify", name, algo] => verify::handle(core, req, transit, name, Some(algo)).await,
        ["hmac", name] => hmac::handle(core, req, transit, name, None).await,
        ["hmac", name, algo] => hmac::handle(core, req, transit, name, Some(algo)).await,
        ["random"] => random::handle(core, req, None, None).await,
        ["random", a] => random::handle(core, req, Some(a), None).await,
        ["random", a, b] => random::handle(core, req, Some(a), Some(b)).await,
        ["hash"] => hash::handle(core, req, None).await,
        ["hash", algo] => hash::handle(core, req, Some(algo)).await,
        ["export", kind, name] => export::handle(core, req, transit, kind, name, None).await,
        ["export", kind, name, version] => {
            export::handle(core, req, transit, kind, name, Some(version)).await
        }
        _ => Err(ApiError::unsupported_path(&req.path)),
    }
}

/// Checks the caller for `op` on the full request path.
async fn authorize(
    core: &Arc<Core>,
    req: &VaultRequest,
    op: Operation,
) -> Result<Caller, ApiError> {
    crate::vault::acl::authorize(core, req, &req.path, op).await
}

/// Paths that only take writes (POST/PUT): authorizes an update or refuses the method.
async fn authorize_update(core: &Arc<Core>, req: &VaultRequest) -> Result<(), ApiError> {
    match req.op {
        Operation::Update => authorize(core, req, Operation::Update).await.map(|_| ()),
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// An integer field that may be negative (Vault answers negative versions with its own
/// messages rather than a type error).
fn i64_field(req: &VaultRequest, name: &str) -> Result<Option<i64>, ApiError> {
    let bad = || ApiError::bad(format!("field {name:?} must be an integer"));
    match req.field(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A string field, "" when absent.
fn string_or_empty(req: &VaultRequest, name: &str) -> Result<String, ApiError> {
    Ok(req.str_field(name)?.unwrap_or_default())
}

/// Vault's envelope around `data`, with warnings when there are any.
fn data_with_warnings(data: Value, warnings: Vec<String>) -> Reply {
    let mut reply = Reply::data(data);
    if !warnings.is_empty() {
        if let Some(body) = reply.body.as_mut() {
            body["warnings"] = Value::from(warnings);
        }
    }
    reply
}
