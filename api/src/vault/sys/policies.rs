//! `sys/policies/acl` and the older `sys/policy`: named ACL policies.

use std::sync::Arc;

use engine::ops::sys::policies::{PolicyDelete, PolicyList, PolicyRead, PolicyWrite};
use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use super::{apply, not_allowed, with_data};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply_at;

fn policy_text(req: &VaultRequest) -> Result<String, ApiError> {
    req.str_field("policy")?
        .or(req.str_field("rules")?)
        .ok_or_else(|| ApiError::bad("'policy' parameter not supplied or empty"))
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, name: &str) -> Result<Reply, ApiError> {
    if name.is_empty() {
        if !matches!(req.op, Operation::List | Operation::Read) {
            return not_allowed(core, req).await;
        }
        let op = PolicyList {
            verb: Operation::List,
        };
        return apply_at(core, req, "sys/policies/acl", op, |names| {
            Ok(Reply::data(json!({ "keys": names })))
        })
        .await;
    }
    let name = name.to_string();
    match req.op {
        Operation::Read => {
            let shown = name.to_lowercase();
            apply(core, req, PolicyRead { name }, |raw| {
                Ok(Reply::data(json!({ "name": shown, "policy": raw })))
            })
            .await
        }
        Operation::Update => {
            let op = PolicyWrite {
                name,
                text: policy_text(req).map_err(Into::into),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        Operation::Delete => {
            apply(core, req, PolicyDelete { name }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        _ => not_allowed(core, req).await,
    }
}

/// `sys/policy[/name]`: the same store, in the older response shapes.
pub async fn legacy(core: &Arc<Core>, req: &VaultRequest, name: &str) -> Result<Reply, ApiError> {
    if name.is_empty() {
        let op = PolicyList {
            verb: Operation::Read,
        };
        return apply_at(core, req, "sys/policy", op, |names| {
            Ok(with_data(json!({ "policies": names, "keys": names })))
        })
        .await;
    }
    match req.op {
        Operation::Read => {
            let shown = name.to_lowercase();
            let op = PolicyRead {
                name: name.to_string(),
            };
            apply(core, req, op, |raw| {
                Ok(with_data(json!({ "name": shown, "rules": raw })))
            })
            .await
        }
        Operation::Update | Operation::Delete => handle(core, req, name).await,
        _ => not_allowed(core, req).await,
    }
}
