//! The built-in `sys/` backend.

mod audit;
mod auth_tune;
mod capabilities;
mod generate_root;
mod health;
mod init;
mod keyring;
mod mounts;
mod policies;
mod seal;
mod seal_policy;

use std::sync::Arc;

use engine::policy::Operation;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

/// The endpoints Vault serves without a token, sealed or not.
pub async fn unauthenticated(
    core: &Arc<Core>,
    req: &VaultRequest,
) -> Option<Result<Reply, ApiError>> {
    Some(match req.path.trim_end_matches('/') {
        "sys/init" => init::handle(core, req).await,
        "sys/seal-status" => seal::status(core, req).await,
        "sys/unseal" => seal::unseal(core, req).await,
        "sys/health" => health::health(core, req),
        "sys/generate-root/attempt" => {
            generate_root::attempt(core, req, generate_root::Shape::Flat)
        }
        "sys/generate-root/update" => {
            generate_root::update(core, req, generate_root::Shape::Flat).await
        }
        "sys/generate-root-token/attempt" => {
            generate_root::attempt(core, req, generate_root::Shape::Data)
        }
        "sys/generate-root-token/update" => {
            generate_root::update(core, req, generate_root::Shape::Data).await
        }
        "sys/leader" => health::leader(core, req),
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
        ("key-status", "") => keyring::status(core, req).await,
        ("audit", t) => audit::handle(core, req, t).await,
        ("audit-hash", t) if !t.is_empty() => audit::hash(core, req, t).await,
        ("audit-verify", t) if !t.is_empty() => audit::verify(core, req, t).await,
        ("auth", "") => auth_list(core, req).await,
        ("auth", "token/tune") => auth_tune::handle(core, req, auth_tune::Door::Auth).await,
        _ => Err(ApiError::unsupported_path(&req.path)),
    }
}

/// Checks the caller for `op` on the request's own path, as most `sys/` endpoints need.
pub(crate) async fn authorize(
    core: &Arc<Core>,
    req: &VaultRequest,
    op: Operation,
) -> Result<engine::token::Caller, ApiError> {
    crate::vault::acl::authorize(core, req, req.path.trim_end_matches('/'), op).await
}

/// The answer to an operation a path does not declare. Vault's request handling asks
/// the ACL first, so a token without that capability there gets 403 and anyone else
/// 405; either way nothing runs. `sudo`: the path is one of Vault's root paths.
pub(crate) async fn unsupported(core: &Arc<Core>, req: &VaultRequest, sudo: bool) -> ApiError {
    let checked = if sudo {
        authorize_sudo(core, req, req.op).await
    } else {
        authorize(core, req, req.op).await
    };
    match checked {
        Err(e) => e,
        Ok(_) => ApiError::unsupported_operation(),
    }
}

/// Endpoints Vault marks as needing `sudo` on top of the usual capability.
pub(crate) async fn authorize_sudo(
    core: &Arc<Core>,
    req: &VaultRequest,
    op: Operation,
) -> Result<engine::token::Caller, ApiError> {
    let caller = authorize(core, req, op).await?;
    let acl = core.acl(&caller)?;
    if !acl.has_sudo(req.path.trim_end_matches('/')) {
        return Err(ApiError::permission_denied());
    }
    Ok(caller)
}

/// `sys/auth`: the token store is the one auth method.
async fn auth_list(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::bad(
            "only the token auth method is available on this appliance",
        ));
    }
    authorize(core, req, Operation::Read).await?;
    let token = serde_json::json!({
        "token/": {
            "type": "token",
            "description": "token based credentials",
            "accessor": "auth_token_ironseal",
            "config": {
                "default_lease_ttl": core.tokens.mount_ttls().default_lease_ttl,
                "max_lease_ttl": core.tokens.mount_ttls().max_lease_ttl,
                "token_type": "default-service",
            },
            "local": false,
            "seal_wrap": false,
            "options": null,
            "uuid": "",
        }
    });
    let mut body = token.clone();
    body["data"] = token;
    Ok(Reply::raw(body))
}
