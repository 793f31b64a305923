//! `sys/auth` (the token store is the one auth method) and the tune of the token auth
//! mount, `sys/auth/token/tune` (sudo, as Vault's `auth/*`) and
//! `sys/mounts/auth/token/tune`: its default and max lease TTL bound every token.

use std::sync::Arc;

use engine::ops::sys::auth::{AuthList, TokenTtlUpdate, TokenTune, TokenTuneRead};
use engine::ops::Access;
use engine::policy::Operation;
use engine::{Core, EngineError};
use serde_json::{json, Value};

use super::{apply, not_allowed, refuse, with_data};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub use engine::ops::sys::auth::TuneVia;

const DESCRIPTION: &str = "token based credentials";

pub async fn list(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        let error = EngineError::bad("only the token auth method is available on this appliance");
        return refuse(core, req, Access::Nobody, error).await;
    }
    apply(core, req, AuthList, |ttls| {
        Ok(with_data(json!({
            "token/": {
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
            }
        })))
    })
    .await
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
