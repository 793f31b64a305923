//! The tune of the token auth mount, `sys/auth/token/tune` (sudo, as Vault's `auth/*`)
//! and `sys/mounts/auth/token/tune`: its default and max lease TTL bound every token.

use std::sync::Arc;

use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

const DESCRIPTION: &str = "token based credentials";

/// Where the tune came in: `sys/auth/...` needs sudo on top of the capability.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Auth,
    Mounts,
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, door: Door) -> Result<Reply, ApiError> {
    let op = match req.op {
        Operation::Read | Operation::Update => req.op,
        _ => return Err(ApiError::unsupported_operation()),
    };
    if door == Door::Auth {
        super::authorize_sudo(core, req, op).await?;
    } else {
        super::authorize(core, req, op).await?;
    }
    if op == Operation::Read {
        let ttls = core.tokens.effective_ttls();
        let body = json!({
            "description": DESCRIPTION,
            "default_lease_ttl": ttls.default_lease_ttl,
            "max_lease_ttl": ttls.max_lease_ttl,
            "force_no_cache": false,
            "token_type": "default-service",
        });
        let mut reply = body.clone();
        reply["data"] = body;
        return Ok(Reply::raw(reply));
    }
    let mut tune = core.tokens.mount_ttls();
    // A field may come from the query as well as the body (as `VaultRequest::field`
    // reads it), so both go through the same match and nothing there is ignored.
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
                    tune.default_lease_ttl = secs;
                }
            }
            ("max_lease_ttl", v) => {
                if let Some(secs) = ttl_field(name, v)? {
                    tune.max_lease_ttl = secs;
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
    core.tokens.tune(tune).await?;
    Ok(Reply::no_content())
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
