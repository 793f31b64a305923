//! `sys/auth`: list the auth methods, enable (`sys/auth/<path>`), read, disable (which
//! revokes the tokens the method issued) and tune them (`sys/auth/<path>/tune`, also
//! `sys/mounts/auth/<path>/tune`). The token store's mount, `token/`, is built in: it is
//! listed and tuned (`sys/auth/token/tune`, sudo as Vault's `auth/*`), never enabled or
//! disabled.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::auth::{AuthConfig, AuthEntry, TokenType};
use engine::ops::sys::auth::{
    AuthDisable, AuthEnable, AuthList, AuthRead, AuthSpec, AuthTune, AuthTuneRead, AuthTuneSpec,
    TokenTtlUpdate, TokenTune, TokenTuneRead,
};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Map, Value};

use super::{apply, not_allowed, with_data};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub use engine::ops::sys::auth::TuneVia;

const DESCRIPTION: &str = "token based credentials";

/// A mount's token type as Vault shows it: a mount's default is `default-service`.
fn mount_token_type(t: TokenType) -> &'static str {
    match t {
        TokenType::Default => "default-service",
        t => t.as_str(),
    }
}

fn entry_json(e: &AuthEntry) -> Value {
    json!({
        "type": e.kind.as_str(),
        "description": e.description,
        "accessor": e.accessor,
        "uuid": e.uuid,
        "config": {
            "default_lease_ttl": e.config.default_lease_ttl,
            "max_lease_ttl": e.config.max_lease_ttl,
            "force_no_cache": false,
            "token_type": mount_token_type(e.config.token_type),
            "listing_visibility": e.config.listing_visibility,
        },
        "options": e.options,
        "local": e.local,
        "seal_wrap": e.seal_wrap,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
        "deprecation_status": "supported",
    })
}

pub async fn list(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return not_allowed(core, req).await;
    }
    apply(core, req, AuthList, |listing| {
        let ttls = listing.token;
        let mut all = Map::new();
        for e in &listing.methods {
            all.insert(e.path.clone(), entry_json(e));
        }
        all.insert(
            "token/".into(),
            json!({
                "type": "token",
                "description": DESCRIPTION,
                "accessor": "auth_token_ironseal",
                "config": {
                    "default_lease_ttl": ttls.default_lease_ttl,
                    "max_lease_ttl": ttls.max_lease_ttl,
                    "token_type": "default-service",
                },
                "local": false,
                "seal_wrap": false,
                "options": null,
                "uuid": "",
            }),
        );
        Ok(with_data(Value::Object(all)))
    })
    .await
}

/// `sys/auth/<path>`: enable, read, disable.
pub async fn mount(core: &Arc<Core>, req: &VaultRequest, path: &str) -> Result<Reply, ApiError> {
    let path = path.to_string();
    match req.op {
        Operation::Update => {
            let op = AuthEnable {
                path,
                spec: spec(req).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        Operation::Read => {
            apply(core, req, AuthRead { path }, |e| {
                Ok(with_data(entry_json(&e)))
            })
            .await
        }
        Operation::Delete => {
            apply(
                core,
                req,
                AuthDisable { path },
                |()| Ok(Reply::no_content()),
            )
            .await
        }
        _ => not_allowed(core, req).await,
    }
}

/// A value the CLI sends for a setting this appliance does not have, at the value that
/// changes nothing.
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty() || s == "0" || s == "0s",
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn ttl(name: &str, v: &Value) -> Result<Option<u64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s == "system" => Ok(Some(0)),
        v => engine::duration::duration_from_json(v)
            .map(Some)
            .map_err(|e| ApiError::bad(format!("{name}: {e}"))),
    }
}

fn token_type(v: &Value) -> Result<Option<TokenType>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(TokenType::parse(s)?)),
        _ => Err(ApiError::bad("token_type must be a string")),
    }
}

/// The settings of an enable's `config` or of a tune, into `tune`; anything else set to
/// a value that would change something is refused, never ignored.
fn settings(
    fields: &Map<String, Value>,
    tune: &mut AuthTuneSpec,
    tuning: bool,
) -> Result<(), ApiError> {
    for (name, v) in fields {
        match name.as_str() {
            "default_lease_ttl" => tune.default_lease_ttl = ttl(name, v)?,
            "max_lease_ttl" => tune.max_lease_ttl = ttl(name, v)?,
            "token_type" => tune.token_type = token_type(v)?,
            "listing_visibility" => match v {
                Value::Null => {}
                Value::String(s) if s.is_empty() || s == "hidden" || s == "unauth" => {
                    tune.listing_visibility = Some(s.clone())
                }
                _ => return Err(ApiError::bad("listing_visibility must be \"unauth\" or \"hidden\"")),
            },
            "description" if tuning => tune.description = req_string(v)?,
            "options" if tuning => {
                if !is_unset(v) {
                    return Err(ApiError::bad("auth methods here take no options"));
                }
            }
            _ if is_unset(v) => {}
            other => {
                return Err(ApiError::bad(format!(
                    "{other:?} is not supported by this appliance's auth mounts: they take default_lease_ttl, max_lease_ttl, token_type, listing_visibility and description"
                )))
            }
        }
    }
    Ok(())
}

fn req_string(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ApiError::bad("description must be a string")),
    }
}

fn spec(req: &VaultRequest) -> Result<AuthSpec, ApiError> {
    let kind = req
        .str_field("type")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad("missing type"))?;
    let mut tune = AuthTuneSpec::default();
    for (name, v) in crate::vault::acl::parameters(req).iter() {
        match name.as_str() {
            "type" | "description" => {}
            "config" => match v {
                Value::Object(c) => settings(c, &mut tune, false)?,
                v if is_unset(v) => {}
                _ => return Err(ApiError::bad("config must be an object")),
            },
            "options" if is_unset(v) => {}
            "options" => return Err(ApiError::bad("auth methods here take no options")),
            "plugin_name" | "plugin_version" if is_unset(v) => {}
            "local" | "seal_wrap" | "external_entropy_access" if is_unset(v) => {}
            other => {
                return Err(ApiError::bad(format!(
                    "{other:?} is not supported by this appliance's auth mounts"
                )))
            }
        }
    }
    let config = AuthConfig {
        default_lease_ttl: tune.default_lease_ttl.unwrap_or(0),
        max_lease_ttl: tune.max_lease_ttl.unwrap_or(0),
        token_type: tune.token_type.unwrap_or_default(),
        listing_visibility: tune.listing_visibility.unwrap_or_default(),
    };
    Ok(AuthSpec {
        kind,
        description: req.str_field("description")?.unwrap_or_default(),
        options: BTreeMap::new(),
        config,
    })
}

/// `sys/auth/<path>/tune` (and `sys/mounts/auth/<path>/tune`) of a method's mount.
pub async fn tune_method(
    core: &Arc<Core>,
    req: &VaultRequest,
    path: &str,
    via: TuneVia,
) -> Result<Reply, ApiError> {
    let path = path.to_string();
    match req.op {
        Operation::Read => {
            apply(core, req, AuthTuneRead { path, via }, |e| {
                Ok(with_data(json!({
                    "description": e.description,
                    "default_lease_ttl": e.config.default_lease_ttl,
                    "max_lease_ttl": e.config.max_lease_ttl,
                    "force_no_cache": false,
                    "token_type": mount_token_type(e.config.token_type),
                    "listing_visibility": e.config.listing_visibility,
                    "options": e.options,
                })))
            })
            .await
        }
        Operation::Update => {
            let spec = (|| {
                let mut tune = AuthTuneSpec::default();
                settings(&crate::vault::acl::parameters(req), &mut tune, true)?;
                Ok::<_, ApiError>(tune)
            })();
            let op = AuthTune {
                path,
                via,
                spec: spec.map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        _ => not_allowed(core, req).await,
    }
}

pub async fn tune(core: &Arc<Core>, req: &VaultRequest, via: TuneVia) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            apply(core, req, TokenTuneRead { via }, |ttls| {
                Ok(with_data(json!({
                    "description": DESCRIPTION,
                    "default_lease_ttl": ttls.default_lease_ttl,
                    "max_lease_ttl": ttls.max_lease_ttl,
                    "force_no_cache": false,
                    "token_type": "default-service",
                })))
            })
            .await
        }
        Operation::Update => {
            let op = TokenTune {
                via,
                update: update(req).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        _ => not_allowed(core, req).await,
    }
}

/// The TTLs a tune sets. A field may come from the query as well as the body (as
/// `VaultRequest::field` reads it), so both go through the same match and nothing there
/// is ignored.
fn update(req: &VaultRequest) -> Result<TokenTtlUpdate, ApiError> {
    let mut update = TokenTtlUpdate::default();
    let query = req
        .query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())));
    let fields: Vec<(String, Value)> = req
        .body
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(query)
        .collect();
    for (name, value) in &fields {
        match (name.as_str(), value) {
            ("default_lease_ttl", v) => {
                if let Some(secs) = ttl_field(name, v)? {
                    update.default_lease_ttl = Some(secs);
                }
            }
            ("max_lease_ttl", v) => {
                if let Some(secs) = ttl_field(name, v)? {
                    update.max_lease_ttl = Some(secs);
                }
            }
            // What the CLI always sends, at values that change nothing here.
            ("options", Value::Null) | ("force_no_cache", Value::Bool(false)) => {}
            ("options", Value::Object(m)) if m.is_empty() => {}
            ("description", Value::String(d)) if d == DESCRIPTION || d.is_empty() => {}
            // As OpenBao: the token store's tokens are always service tokens, so its
            // token type is not tunable, whatever the value.
            ("token_type", _) => {
                return Err(ApiError::bad(
                    "'token_type' cannot be set for 'token' or 'ns_token' auth mounts",
                ))
            }
            (other, _) => {
                return Err(ApiError::bad(format!(
                    "cannot tune parameter {other:?} of auth/token/: only default_lease_ttl and max_lease_ttl can be tuned"
                )))
            }
        }
    }
    Ok(update)
}

/// A TTL as Vault's tune takes it: "" leaves it, "system" resets it to the system value.
fn ttl_field(name: &str, v: &Value) -> Result<Option<u64>, ApiError> {
    match v {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s == "system" => Ok(Some(0)),
        Value::Null => Ok(None),
        v => engine::duration::duration_from_json(v)
            .map(Some)
            .map_err(|e| ApiError::bad(format!("{name}: {e}"))),
    }
}
