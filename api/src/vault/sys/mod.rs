//! The built-in `sys/` backend. `sys/` paths are named without their trailing slash, in
//! the ACL as in the audit log, as Vault's are.

mod appliance;
mod audit;
mod auth;
mod capabilities;
mod generate_root;
mod health;
mod init;
mod keyring;
pub(crate) mod metrics;
mod mounts;
mod policies;
mod rotate_keys;
mod seal;
mod seal_policy;
mod specs;
#[cfg(test)]
mod tests;
mod wrapping;

use std::sync::Arc;

use engine::ops::{Access, Op, Refuse};
use engine::{Core, EngineError};
use serde_json::Value;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

/// The endpoints Vault serves without a token, sealed or not.
pub async fn unauthenticated(
    core: &Arc<Core>,
    req: &VaultRequest,
) -> Option<Result<Reply, ApiError>> {
    Some(match path(req) {
        "sys/init" => init::handle(core, req).await,
        "sys/seal-status" => seal::status(core, req).await,
        "sys/unseal" => seal::unseal(core, req).await,
        "sys/health" => health::health(core, req).await,
        "sys/generate-root/attempt" => {
            generate_root::attempt(core, req, generate_root::Shape::Flat).await
        }
        "sys/generate-root/update" => {
            generate_root::update(core, req, generate_root::Shape::Flat).await
        }
        "sys/generate-root-token/attempt" => {
            generate_root::attempt(core, req, generate_root::Shape::Data).await
        }
        "sys/generate-root-token/update" => {
            generate_root::update(core, req, generate_root::Shape::Data).await
        }
        "sys/leader" => health::leader(core, req).await,
        "sys/internal/specs/openapi" => specs::openapi(core, req).await,
        _ => return None,
    })
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, rest: &str) -> Result<Reply, ApiError> {
    let rest = rest.trim_end_matches('/');
    let (family, tail) = match rest.split_once('/') {
        Some((f, t)) => (f, t),
        None => (rest, ""),
    };
    match (family, tail) {
        ("seal", "") => seal::seal(core, req).await,
        ("appliance", "") => appliance::read(core, req).await,
        ("seal-policy", t) => seal_policy::handle(core, req, t).await,
        ("mounts", _) => mounts::handle(core, req, tail).await,
        ("internal", t) if t.starts_with("ui/mounts") => mounts::ui_mount(core, req, t).await,
        ("policies", t) if t == "acl" || t.starts_with("acl/") => {
            policies::handle(
                core,
                req,
                t.trim_start_matches("acl").trim_start_matches('/'),
            )
            .await
        }
        ("policy", t) => policies::legacy(core, req, t).await,
        ("capabilities-self", "") => capabilities::self_(core, req).await,
        ("capabilities", "") => capabilities::of_token(core, req).await,
        ("capabilities-accessor", "") => capabilities::of_accessor(core, req).await,
        ("rotate", "") | ("rotate", "keyring") => keyring::rotate(core, req).await,
        ("rotate", "root") => rotate_keys::root_without_shares(core, req).await,
        ("rotate", t) if t.starts_with("root/") || t.starts_with("recovery/") => {
            rotate_keys::handle(core, req, t).await
        }
        // The unauthenticated rekey of old, which OpenBao 2.4+ no longer serves by
        // default either: `bao operator rotate-keys` calls `sys/rotate/*`.
        ("rekey", _) | ("rekey-recovery-key", _) => not_allowed(core, req).await,
        ("key-status", "") => keyring::status(core, req).await,
        ("audit", t) => audit::handle(core, req, t).await,
        ("audit-hash", t) if !t.is_empty() => audit::hash(core, req, t).await,
        ("audit-verify", t) if !t.is_empty() => audit::verify(core, req, t).await,
        ("auth", "") => auth::list(core, req).await,
        ("auth", "token/tune") => auth::tune(core, req, auth::TuneVia::Auth).await,
        ("wrapping", t) => wrapping::handle(core, req, t).await,
        ("host-info", "") => metrics::host_info(core, req).await,
        // Namespaces are an Enterprise (and OpenBao) feature: say so rather than 404.
        ("namespaces", _) => {
            refuse(
                core,
                req,
                Access::Acl(req.op),
                EngineError::bad("namespaces are not supported by this server"),
            )
            .await
        }
        ("auth", t) => match t.strip_suffix("/tune") {
            Some(path) => auth::tune_method(core, req, path, auth::TuneVia::Auth).await,
            None => auth::mount(core, req, t).await,
        },
        _ => crate::vault::no_route(core, req).await,
    }
}

/// The request's path as `sys/` names it.
fn path(req: &VaultRequest) -> &str {
    req.path.trim_end_matches('/')
}

/// [`crate::vault::apply`] on the `sys/` path.
async fn apply<O: Op>(
    core: &Arc<Core>,
    req: &VaultRequest,
    op: O,
    ok: impl Fn(O::Output) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    crate::vault::apply_at(core, req, path(req), op, ok).await
}

/// Answers `error` once `access` is checked on the `sys/` path.
async fn refuse(
    core: &Arc<Core>,
    req: &VaultRequest,
    access: Access,
    error: EngineError,
) -> Result<Reply, ApiError> {
    apply(core, req, Refuse { access, error }, |never| match never {}).await
}

/// An operation the path does not declare. Vault's request handling asks the ACL first
/// (`access`: the request's capability there, with `sudo` on a root path), so a token
/// without it gets 403 and anyone else 405; either way nothing runs.
async fn unsupported(
    core: &Arc<Core>,
    req: &VaultRequest,
    access: fn(engine::policy::Operation) -> Access,
) -> Result<Reply, ApiError> {
    refuse(core, req, access(req.op), EngineError::UnsupportedOperation).await
}

/// An operation the path does not take, answered 405 to anyone (audited, nothing runs).
async fn not_allowed(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    refuse(core, req, Access::Nobody, EngineError::UnsupportedOperation).await
}

/// Vault's older `sys/` answers carry their fields both at the top level and under
/// `data`.
fn with_data(body: Value) -> Reply {
    let mut reply = body.clone();
    reply["data"] = body;
    Reply::raw(reply)
}

/// A status the engine typed, as JSON.
fn to_json<T: serde::Serialize>(value: T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| EngineError::internal(e).into())
}
