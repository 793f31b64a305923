//! `auth/<mount>/...`: the auth methods enabled under `sys/auth`, one file per method
//! (the token store, `auth/token/`, is `vault/token.rs`). Each handler decodes its
//! request into the method's engine operations; logins answer Vault's `auth` block.

mod approle;
mod cert;
mod jwt;
mod userpass;

use std::sync::Arc;

use engine::auth::{AuthKind, AuthMountRef};
use engine::ops::auth::roles::{RoleAction, RoleMethod, RoleOp, RoleOutput};
use engine::ops::Access;
use engine::policy::Operation;
use engine::token::IssuedToken;
use engine::{Core, EngineError};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::{apply, refuse, unsupported_operation};

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, rest: &str) -> Result<Reply, ApiError> {
    match core.route_auth(rest) {
        Some((mount, tail)) => {
            let tail = tail.trim_end_matches('/');
            match mount.kind() {
                AuthKind::AppRole => approle::handle(core, req, mount, tail).await,
                AuthKind::Userpass => userpass::handle(core, req, mount, tail).await,
                AuthKind::Jwt => jwt::handle(core, req, mount, tail).await,
                AuthKind::Cert => cert::handle(core, req, mount, tail).await,
            }
        }
        None => crate::vault::no_route(core, req).await,
    }
}

/// The answer to a login: Vault's `auth` block with the new token.
pub(crate) fn login_reply(issued: IssuedToken) -> Result<Reply, ApiError> {
    Ok(Reply::auth(crate::vault::token::auth_block(
        &issued.token,
        &issued.entry,
        crate::vault::token::Lease::Issued,
    )))
}

/// The request's fields (body, then query), refused if one is not in `known`: what the
/// engine parses role fields from.
pub(crate) fn fields(
    req: &VaultRequest,
    known: &[&[&str]],
) -> Result<Map<String, Value>, EngineError> {
    let known: Vec<&str> = known.iter().flat_map(|k| k.iter().copied()).collect();
    req.refuse_unknown(&known)?;
    Ok(crate::vault::acl::parameters(req).into_owned())
}

/// A required string field.
pub(crate) fn required(req: &VaultRequest, name: &str) -> Result<String, EngineError> {
    req.str_field(name)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| EngineError::bad(format!("missing {name}")))
}

/// A known path below a method that does not take this verb: 405 once the ACL is
/// checked, as Vault answers.
pub(crate) async fn unsupported(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    unsupported_operation(core, req).await
}

/// A path below a method nothing serves: 404 once the ACL is checked.
pub(crate) async fn no_route(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    refuse(
        core,
        req,
        Access::Acl(req.op),
        EngineError::NoRoute(req.path.clone()),
    )
    .await
}

/// Vault answers a list with nothing in it 404.
pub(crate) fn keys(names: Vec<String>) -> Result<Reply, ApiError> {
    if names.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(serde_json::json!({ "keys": names })))
}

/// The action for `config` and `<roles>`, `<roles>/<name>` (the roles' path segment:
/// cert's `certs`, jwt's `role`) with the verbs they take; None for any other path or verb.
pub(crate) fn role_action(
    req: &VaultRequest,
    parts: &[&str],
    roles: &str,
    config_fields: &[&[&str]],
    role_fields: &[&[&str]],
) -> Option<RoleAction> {
    use Operation::{Delete, List, Read, Update};
    use RoleAction as A;
    Some(match (parts, req.op) {
        (["config"], Update) => A::ConfigWrite(fields(req, config_fields)),
        (["config"], Read) => A::ConfigRead,
        ([r], List) if *r == roles => A::RoleList,
        ([r, name], op) if *r == roles => {
            let name = name.to_string();
            match op {
                Update => A::RoleWrite {
                    name,
                    fields: fields(req, role_fields),
                },
                Read => A::RoleRead { name },
                Delete => A::RoleDelete { name },
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Runs a `config` or role request on a mount of method `M`: Vault's answers, 204 for a
/// write and for a config never written, 404 for a missing role or an empty list.
pub(crate) async fn manage<M: RoleMethod>(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: AuthMountRef,
    action: RoleAction,
) -> Result<Reply, ApiError> {
    let op = RoleOp::<M>::new(mount, req.op, action);
    apply(core, req, op, |out| match out {
        RoleOutput::Done | RoleOutput::Config(None) => Ok(Reply::no_content()),
        RoleOutput::Config(Some(c)) | RoleOutput::Role(Some(c)) => Ok(Reply::data(c)),
        RoleOutput::Role(None) => Err(ApiError::not_found_empty()),
        RoleOutput::Names(names) => keys(names),
    })
    .await
}
