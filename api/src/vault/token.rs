//! `auth/token/*`: create, look up, renew and revoke tokens.

use std::sync::Arc;

use engine::policy::Operation;
use engine::token::{Caller, CreateRequest, TokenEntry};
use engine::Core;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

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
    })
}

fn auth_block(token: &str, entry: &TokenEntry) -> Value {
    json!({
        "client_token": token,
        "accessor": entry.accessor,
        "policies": entry.policies,
        "token_policies": entry.policies,
        "identity_policies": null,
        "metadata": entry.meta,
        "lease_duration": entry.ttl_left(now()),
        "renewable": entry.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": entry.orphan,
        "mfa_requirement": null,
        "num_uses": entry.num_uses,
        "scopes": entry.scopes,
    })
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, rest: &str) -> Result<Reply, ApiError> {
    let rest = rest.trim_end_matches('/');
    let path = format!("auth/token/{rest}");
    // Vault's token store registers every path for update, and `lookup` and
    // `lookup-self` for read too. A read elsewhere is checked against the ACL as a read
    // (so a token without read there gets 403, as in Vault) and then refused: it must
    // never act.
    let op = match req.op {
        Operation::Read | Operation::Update => req.op,
        _ => return Err(ApiError::unsupported_operation()),
    };
    let caller = crate::vault::acl::authorize(core, req, &path, op).await?;
    if op == Operation::Read && rest != "lookup-self" && rest != "lookup" {
        return Err(match rest {
            "create" | "create-orphan" | "lookup-accessor" | "renew-self" | "renew"
            | "renew-accessor" | "revoke-self" | "revoke" | "revoke-orphan" | "revoke-accessor" => {
                ApiError::unsupported_operation()
            }
            _ => ApiError::unsupported_path(&req.path),
        });
    }
    match rest {
        "create" | "create-orphan" => create(core, req, &caller, rest == "create-orphan").await,
        "lookup-self" => Ok(Reply::data(lookup_data(&caller.entry, &req.token))),
        "lookup" => {
            let token = req.str_field("token")?.unwrap_or_else(|| req.token.clone());
            let (_, entry) = core.tokens.lookup(&token)?;
            Ok(Reply::data(lookup_data(&entry, &token)))
        }
        "lookup-accessor" => {
            let accessor = required(req, "accessor")?;
            let (_, entry) = core.tokens.lookup_accessor(&accessor)?;
            Ok(Reply::data(lookup_data(&entry, "")))
        }
        "renew-self" => {
            let entry = core
                .tokens
                .renew(&caller.key, req.duration_field("increment")?)
                .await?;
            Ok(Reply::auth(auth_block(&req.token, &entry)))
        }
        "renew" => {
            let token = required(req, "token")?;
            let (key, _) = subject(core, &token, "token not found")?;
            let entry = core
                .tokens
                .renew(&key, req.duration_field("increment")?)
                .await?;
            Ok(Reply::auth(auth_block(&token, &entry)))
        }
        "renew-accessor" => {
            let accessor = required(req, "accessor")?;
            let (key, _) = core.tokens.lookup_accessor(&accessor)?;
            let entry = core
                .tokens
                .renew(&key, req.duration_field("increment")?)
                .await?;
            Ok(Reply::auth(auth_block("", &entry)))
        }
        "revoke-self" => {
            // An attenuated Biscuit revokes itself alone, never its base token.
            core.tokens.revoke_caller(&caller).await?;
            Ok(Reply::no_content())
        }
        "revoke" => {
            let token = required(req, "token")?;
            // A string naming no live token leaves nothing to revoke: 204, as in Vault.
            // Everything else is revoked or the call fails; nothing answers 204 and
            // stays usable.
            core.tokens.revoke_token(&token).await?;
            Ok(Reply::no_content())
        }
        "revoke-orphan" => {
            if !core.acl(&caller)?.has_sudo(&path) {
                return Err(ApiError::permission_denied());
            }
            let token = required(req, "token")?;
            let (key, _) = subject(core, &token, "token to revoke not found")?;
            let (_, attenuation) = core.tokens.identify(&token)?;
            if attenuation.is_some() {
                // An attenuated token has no children: revoke it alone.
                core.tokens.revoke_token(&token).await?;
            } else {
                core.tokens.revoke_orphan(&key).await?;
            }
            Ok(Reply::no_content())
        }
        "revoke-accessor" => {
            let accessor = required(req, "accessor")?;
            let key = core.tokens.key_for_accessor(&accessor)?;
            core.tokens.revoke(&key).await?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_path(&req.path)),
    }
}

/// The token a request names, for `renew` and `revoke-orphan`: Vault answers 400 with
/// `missing` when it names no live token (only `lookup` answers 403).
fn subject(
    core: &Arc<Core>,
    token: &str,
    missing: &str,
) -> Result<(String, Arc<TokenEntry>), ApiError> {
    core.tokens.lookup(token).map_err(|e| match e {
        engine::EngineError::Unauthenticated => ApiError::bad(missing),
        e => e.into(),
    })
}

fn required(req: &VaultRequest, name: &str) -> Result<String, ApiError> {
    req.str_field(name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad(format!("missing {name}")))
}

async fn create(
    core: &Arc<Core>,
    req: &VaultRequest,
    caller: &Caller,
    orphan: bool,
) -> Result<Reply, ApiError> {
    if caller.is_attenuated() {
        return Err(ApiError::new(
            hyper::StatusCode::FORBIDDEN,
            "permission denied: an attenuated token cannot create tokens (its Biscuit checks cannot be carried over to a child); create it with the base token",
        ));
    }
    let acl = core.acl(caller)?;
    let privileged = caller.is_root() || acl.has_sudo("auth/token/create");
    let no_parent = orphan || req.bool_field("no_parent")?.unwrap_or(false);
    if no_parent && !orphan && !privileged {
        return Err(ApiError::bad(
            "root or sudo privileges required to create orphan token",
        ));
    }
    if let Some(t) = req.str_field("type")? {
        if t != "service" && t != "default" {
            return Err(ApiError::bad(format!(
                "unsupported token type {t:?}: this appliance issues service tokens"
            )));
        }
    }
    let period = req.duration_field("period")?;
    if period.is_some_and(|p| p > 0) && !privileged {
        return Err(ApiError::bad(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let num_uses = req.u64_field("num_uses")?.unwrap_or(0);
    let request = CreateRequest {
        id: req.str_field("id")?.filter(|s| !s.is_empty()),
        policies: req.list_field("policies")?.unwrap_or_default(),
        meta: req.string_map_field("meta")?,
        no_parent,
        no_default_policy: req.bool_field("no_default_policy")?.unwrap_or(false),
        renewable: req.bool_field("renewable")?,
        ttl: req.duration_field("ttl")?,
        explicit_max_ttl: req.duration_field("explicit_max_ttl")?,
        period,
        display_name: req.str_field("display_name")?,
        num_uses: u32::try_from(num_uses).map_err(|_| ApiError::bad("num_uses is too large"))?,
        scopes: req.list_field("scopes")?.unwrap_or_default(),
        path: "auth/token/create".into(),
    };
    if request.id.is_some() && !privileged {
        return Err(ApiError::bad(
            "root or sudo privileges required to specify token id",
        ));
    }
    let issued = core.tokens.create(Some(caller), request).await?;
    Ok(Reply::auth(auth_block(&issued.token, &issued.entry)))
}
