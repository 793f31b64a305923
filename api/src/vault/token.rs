//! `auth/token/*`: create, look up, renew and revoke tokens.

use std::sync::Arc;

use engine::ops::token::{
    CreatePath, Created, Found, TokenAccessorList, TokenCreate, TokenLookup, TokenLookupAccessor,
    TokenLookupSelf, TokenRenew, TokenRenewAccessor, TokenRenewSelf, TokenRevoke,
    TokenRevokeAccessor, TokenRevokeOrphan, TokenRevokeSelf, TokenRoleDelete, TokenRoleList,
    TokenRoleRead, TokenRoleWrite,
};
use engine::ops::{Access, Refuse};
use engine::policy::Operation;
use engine::token::{CreateRequest, TokenEntry, ROLE_FIELDS};
use engine::{Core, EngineError};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply_at;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn ts(unix: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// The lookup shape; `id` is the token itself only when the caller presented it.
fn lookup_data(entry: &TokenEntry, id: &str) -> Value {
    let now = now();
    json!({
        "accessor": entry.accessor,
        "creation_time": entry.creation_time,
        "creation_ttl": entry.creation_ttl,
        "display_name": entry.display_name,
        "entity_id": "",
        "expire_time": entry.expire_time.map(ts).unwrap_or(Value::Null),
        "explicit_max_ttl": entry.explicit_max_ttl,
        "id": id,
        "issue_time": ts(entry.creation_time),
        "meta": entry.meta,
        "num_uses": entry.num_uses,
        "orphan": entry.orphan,
        "path": entry.path,
        "policies": entry.policies,
        "renewable": entry.renewable,
        "scopes": entry.scopes,
        "ttl": entry.ttl_left(now),
        "type": "service",
        "period": if entry.period > 0 { Value::from(entry.period) } else { Value::Null },
        "bound_cidrs": if entry.bound_cidrs.is_empty() { Value::Null } else { json!(entry.bound_cidrs) },
    })
}

/// Which TTL an `auth` block reports.
#[derive(Clone, Copy)]
pub(crate) enum Lease {
    Issued,
    Renewed,
}

/// Vault's `auth` block. `lease_duration` is the TTL granted: for a token just issued,
/// counted from its creation, so a second that ticks between issue and answer does not
/// shave one off; for a renewal, what is left from now.
pub(crate) fn auth_block(token: &str, entry: &TokenEntry, lease: Lease) -> Value {
    let lease_duration = match (lease, entry.expire_time) {
        (Lease::Issued, Some(expire)) => (expire - entry.creation_time).max(0) as u64,
        _ => entry.ttl_left(now()),
    };
    json!({
        "client_token": token,
        "accessor": entry.accessor,
        "policies": entry.policies,
        "token_policies": entry.policies,
        "identity_policies": null,
        "metadata": entry.meta,
        "lease_duration": lease_duration,
        "renewable": entry.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": entry.orphan,
        "mfa_requirement": null,
        "num_uses": entry.num_uses,
        "scopes": entry.scopes,
    })
}

/// An `auth/token/` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Create(CreatePath),
    LookupSelf,
    Lookup,
    LookupAccessor,
    RenewSelf,
    Renew,
    RenewAccessor,
    RevokeSelf,
    Revoke,
    RevokeOrphan,
    RevokeAccessor,
    /// `create/<role>`.
    CreateWithRole,
    /// `roles/<name>`: read, write, delete.
    Role,
    RoleList,
    AccessorList,
}

/// The token store's paths with a name in them, and its lists.
fn named_route(rest: &str, op: Operation) -> Option<Result<Endpoint, (Access, EngineError)>> {
    let named = |n: &str| !n.is_empty() && !n.contains('/');
    let endpoint = match (rest.split_once('/'), op) {
        (None, Operation::List) if rest == "roles" => Endpoint::RoleList,
        (None, Operation::List) if rest == "accessors" => Endpoint::AccessorList,
        (Some(("roles", n)), Operation::Read | Operation::Update | Operation::Delete)
            if named(n) =>
        {
            Endpoint::Role
        }
        (Some(("create", n)), Operation::Update) if named(n) => Endpoint::CreateWithRole,
        (None, _) if rest == "roles" || rest == "accessors" => {
            return Some(Err((Access::Nobody, EngineError::UnsupportedOperation)))
        }
        (Some(("roles" | "create", n)), _) if named(n) => {
            return Some(Err((Access::Nobody, EngineError::UnsupportedOperation)))
        }
        _ => return None,
    };
    Some(Ok(endpoint))
}

/// Which endpoint `rest` (below `auth/token/`, without trailing slash) names for `op`,
/// or the refusal to answer once `access` is checked. Vault's token store registers
/// every path for update, and `lookup` and `lookup-self` for read too. A read elsewhere
/// is checked against the ACL as a read (so a token without read there gets 403, as in
/// Vault) and then refused: it must never act.
fn route(rest: &str, op: Operation) -> Result<Endpoint, (Access, EngineError)> {
    if let Some(routed) = named_route(rest, op) {
        return routed;
    }
    let endpoint = match rest {
        "create" => Some(Endpoint::Create(CreatePath::Create)),
        "create-orphan" => Some(Endpoint::Create(CreatePath::CreateOrphan)),
        "lookup-self" => Some(Endpoint::LookupSelf),
        "lookup" => Some(Endpoint::Lookup),
        "lookup-accessor" => Some(Endpoint::LookupAccessor),
        "renew-self" => Some(Endpoint::RenewSelf),
        "renew" => Some(Endpoint::Renew),
        "renew-accessor" => Some(Endpoint::RenewAccessor),
        "revoke-self" => Some(Endpoint::RevokeSelf),
        "revoke" => Some(Endpoint::Revoke),
        "revoke-orphan" => Some(Endpoint::RevokeOrphan),
        "revoke-accessor" => Some(Endpoint::RevokeAccessor),
        _ => None,
    };
    match (op, endpoint) {
        (Operation::Read | Operation::Update, None) => Err((
            Access::Acl(op),
            EngineError::NoRoute(format!("auth/token/{rest}")),
        )),
        (Operation::Update, Some(e))
        | (Operation::Read, Some(e @ (Endpoint::LookupSelf | Endpoint::Lookup))) => Ok(e),
        (Operation::Read, Some(_)) => Err((Access::Acl(op), EngineError::UnsupportedOperation)),
        _ => Err((Access::Nobody, EngineError::UnsupportedOperation)),
    }
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, rest: &str) -> Result<Reply, ApiError> {
    let rest = rest.trim_end_matches('/');
    let path = format!("auth/token/{rest}");
    let endpoint = match route(rest, req.op) {
        Ok(e) => e,
        Err((access, error)) => {
            // A path nothing serves is named as requested.
            let error = match error {
                EngineError::NoRoute(_) => EngineError::NoRoute(req.path.clone()),
                e => e,
            };
            return apply_at(
                core,
                req,
                &path,
                Refuse { access, error },
                |never| match never {},
            )
            .await;
        }
    };
    let auth = |found: Found| {
        Ok(Reply::auth(auth_block(
            &found.id,
            &found.entry,
            Lease::Renewed,
        )))
    };
    let renewed = |found: Option<Found>| match found {
        Some(found) => auth(found),
        None => Ok(Reply::no_content()),
    };
    let lookup = |found: Found| Ok(Reply::data(lookup_data(&found.entry, &found.id)));
    let done = |()| Ok(Reply::no_content());
    let named = rest
        .split_once('/')
        .map(|(_, n)| n.to_string())
        .unwrap_or_default();
    match endpoint {
        Endpoint::Create(_) | Endpoint::CreateWithRole => {
            let op = match endpoint {
                Endpoint::Create(create_path) => create(req, create_path, None),
                _ => create(req, CreatePath::Create, Some(named)),
            };
            apply_at(core, req, &path, op, |created| match created {
                Created::Issued(issued) => {
                    Ok(Reply::auth(auth_block(
                        &issued.token,
                        &issued.entry,
                        Lease::Issued,
                    )))
                }
                Created::AttenuatedParent => Err(ApiError::new(
                    hyper::StatusCode::FORBIDDEN,
                    "permission denied: an attenuated token cannot create tokens (its Biscuit checks cannot be carried over to a child); create it with the base token",
                )),
            })
            .await
        }
        Endpoint::LookupSelf => {
            apply_at(core, req, &path, TokenLookupSelf { verb: req.op }, lookup).await
        }
        Endpoint::Lookup => {
            let token = req
                .str_field("token")
                .map(|t| t.unwrap_or_else(|| req.token.clone()));
            let op = TokenLookup {
                verb: req.op,
                token: token.map_err(Into::into),
            };
            apply_at(core, req, &path, op, lookup).await
        }
        Endpoint::LookupAccessor => {
            let op = TokenLookupAccessor {
                accessor: required(req, "accessor"),
            };
            apply_at(core, req, &path, op, lookup).await
        }
        Endpoint::RenewSelf => {
            let op = TokenRenewSelf {
                increment: increment(req),
                chain: req.peer_chain.clone(),
            };
            apply_at(core, req, &path, op, renewed).await
        }
        Endpoint::Renew => {
            let op = TokenRenew {
                token: required(req, "token"),
                increment: increment(req),
                chain: req.peer_chain.clone(),
            };
            apply_at(core, req, &path, op, renewed).await
        }
        Endpoint::RenewAccessor => {
            let op = TokenRenewAccessor {
                accessor: required(req, "accessor"),
                increment: increment(req),
                chain: req.peer_chain.clone(),
            };
            apply_at(core, req, &path, op, renewed).await
        }
        Endpoint::RevokeSelf => apply_at(core, req, &path, TokenRevokeSelf, done).await,
        Endpoint::Revoke => {
            let op = TokenRevoke {
                token: required(req, "token"),
            };
            apply_at(core, req, &path, op, done).await
        }
        Endpoint::RevokeOrphan => {
            let op = TokenRevokeOrphan {
                token: required(req, "token"),
            };
            apply_at(core, req, &path, op, done).await
        }
        Endpoint::RevokeAccessor => {
            let op = TokenRevokeAccessor {
                accessor: required(req, "accessor"),
            };
            apply_at(core, req, &path, op, done).await
        }
        Endpoint::Role => role(core, req, &path, named).await,
        Endpoint::RoleList => apply_at(core, req, &path, TokenRoleList, keys).await,
        Endpoint::AccessorList => apply_at(core, req, &path, TokenAccessorList, keys).await,
    }
}

/// Vault answers a list with nothing in it 404.
fn keys(names: Vec<String>) -> Result<Reply, ApiError> {
    if names.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(json!({ "keys": names })))
}

async fn role(
    core: &Arc<Core>,
    req: &VaultRequest,
    path: &str,
    name: String,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            let shown = name.clone();
            apply_at(core, req, path, TokenRoleRead { name }, |role| match role {
                Some(r) => Ok(Reply::data(r.to_json(&shown))),
                None => Err(ApiError::not_found_empty()),
            })
            .await
        }
        Operation::Delete => {
            apply_at(core, req, path, TokenRoleDelete { name }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        _ => {
            let fields = req
                .refuse_unknown(ROLE_FIELDS)
                .map(|()| crate::vault::acl::parameters(req).into_owned());
            let op = TokenRoleWrite {
                name,
                fields: fields.map_err(Into::into),
            };
            apply_at(core, req, path, op, |()| Ok(Reply::no_content())).await
        }
    }
}

fn required(req: &VaultRequest, name: &str) -> Result<String, EngineError> {
    req.str_field(name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EngineError::bad(format!("missing {name}")))
}

fn increment(req: &VaultRequest) -> Result<Option<u64>, EngineError> {
    Ok(req.duration_field("increment")?)
}

fn create(req: &VaultRequest, path: CreatePath, role: Option<String>) -> TokenCreate {
    let no_parent = match path {
        CreatePath::CreateOrphan => Ok(true),
        CreatePath::Create => req.bool_field("no_parent").map(|b| b.unwrap_or(false)),
    };
    let token_type = req.str_field("type").and_then(|t| match t {
        Some(t) if t != "service" && t != "default" => Err(ApiError::bad(format!(
            "unsupported token type {t:?}: this appliance issues service tokens"
        ))),
        _ => Ok(()),
    });
    TokenCreate {
        path,
        role,
        no_parent: no_parent.map_err(Into::into),
        token_type: token_type.map_err(Into::into),
        period: req.duration_field("period").map_err(Into::into),
        request: create_request(req).map_err(Into::into),
    }
}

/// The fields of a create besides `no_parent`, `type` and `period`.
fn create_request(req: &VaultRequest) -> Result<CreateRequest, ApiError> {
    let num_uses = req.u64_field("num_uses")?.unwrap_or(0);
    Ok(CreateRequest {
        id: req.str_field("id")?.filter(|s| !s.is_empty()),
        policies: req.list_field("policies")?.unwrap_or_default(),
        meta: req.string_map_field("meta")?,
        no_parent: false,
        no_default_policy: req.bool_field("no_default_policy")?.unwrap_or(false),
        renewable: req.bool_field("renewable")?,
        ttl: req.duration_field("ttl")?,
        explicit_max_ttl: req.duration_field("explicit_max_ttl")?,
        period: None,
        display_name: req.str_field("display_name")?,
        num_uses: u32::try_from(num_uses).map_err(|_| ApiError::bad("num_uses is too large"))?,
        scopes: req.list_field("scopes")?.unwrap_or_default(),
        path: "auth/token/create".into(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(rest: &str, op: Operation) -> Result<Endpoint, (Access, String)> {
        route(rest, op).map_err(|(a, e)| (a, ApiError::from(e).status.to_string()))
    }

    #[test]
    fn every_endpoint_takes_update() {
        for (rest, endpoint) in [
            ("create", Endpoint::Create(CreatePath::Create)),
            ("create-orphan", Endpoint::Create(CreatePath::CreateOrphan)),
            ("lookup-self", Endpoint::LookupSelf),
            ("lookup", Endpoint::Lookup),
            ("lookup-accessor", Endpoint::LookupAccessor),
            ("renew-self", Endpoint::RenewSelf),
            ("renew", Endpoint::Renew),
            ("renew-accessor", Endpoint::RenewAccessor),
            ("revoke-self", Endpoint::RevokeSelf),
            ("revoke", Endpoint::Revoke),
            ("revoke-orphan", Endpoint::RevokeOrphan),
            ("revoke-accessor", Endpoint::RevokeAccessor),
        ] {
            assert_eq!(routed(rest, Operation::Update), Ok(endpoint), "{rest}");
        }
    }

    #[test]
    fn only_lookups_take_read() {
        assert_eq!(
            routed("lookup-self", Operation::Read),
            Ok(Endpoint::LookupSelf)
        );
        assert_eq!(routed("lookup", Operation::Read), Ok(Endpoint::Lookup));
        // Checked against the ACL as a read, then 405.
        for rest in ["create", "lookup-accessor", "renew-self", "revoke-orphan"] {
            assert_eq!(
                routed(rest, Operation::Read),
                Err((
                    Access::Acl(Operation::Read),
                    "405 Method Not Allowed".into()
                )),
                "{rest}"
            );
        }
    }

    #[test]
    fn unknown_paths_are_404_after_the_acl() {
        for op in [Operation::Read, Operation::Update] {
            assert_eq!(
                routed("nope", op),
                Err((Access::Acl(op), "404 Not Found".into()))
            );
        }
    }

    #[test]
    fn other_verbs_are_405_before_the_acl() {
        for op in [Operation::List, Operation::Delete, Operation::Patch] {
            for rest in ["create", "lookup", "nope"] {
                assert_eq!(
                    routed(rest, op),
                    Err((Access::Nobody, "405 Method Not Allowed".into())),
                    "{rest} {op:?}"
                );
            }
        }
    }
}
