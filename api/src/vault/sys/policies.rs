//! `sys/policies/acl` and the older `sys/policy`: named ACL policies.

use std::sync::Arc;

use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn policy_text(req: &VaultRequest) -> Result<String, ApiError> {
    req.str_field("policy")?
        .or(req.str_field("rules")?)
        .ok_or_else(|| ApiError::bad("'policy' parameter not supplied or empty"))
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, name: &str) -> Result<Reply, ApiError> {
    if name.is_empty() {
        if !matches!(req.op, Operation::List | Operation::Read) {
            return Err(ApiError::unsupported_operation());
        }
        crate::vault::acl::authorize(core, req, "sys/policies/acl", Operation::List).await?;
        return Ok(Reply::data(json!({ "keys": core.policies.list()? })));
    }
    match req.op {
        Operation::Read => {
            super::authorize(core, req, Operation::Read).await?;
            let raw = core
                .policies
                .read_raw(name)?
                .ok_or_else(ApiError::not_found_empty)?;
            Ok(Reply::data(
                json!({ "name": name.to_lowercase(), "policy": raw }),
            ))
        }
        Operation::Update => {
            super::authorize(core, req, Operation::Update).await?;
            core.policies.put(name, &policy_text(req)?).await?;
            Ok(Reply::no_content())
        }
        Operation::Delete => {
            super::authorize(core, req, Operation::Delete).await?;
            core.policies.delete(name).await?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// `sys/policy[/name]`: the same store, in the older response shapes.
pub async fn legacy(core: &Arc<Core>, req: &VaultRequest, name: &str) -> Result<Reply, ApiError> {
    if name.is_empty() {
        crate::vault::acl::authorize(core, req, "sys/policy", Operation::Read).await?;
        let names = core.policies.list()?;
        let body = json!({ "policies": names, "keys": names });
        let mut reply = body.clone();
        reply["data"] = body;
        return Ok(Reply::raw(reply));
    }
    match req.op {
        Operation::Read => {
            super::authorize(core, req, Operation::Read).await?;
            let raw = core
                .policies
                .read_raw(name)?
                .ok_or_else(ApiError::not_found_empty)?;
            let body = json!({ "name": name.to_lowercase(), "rules": raw });
            let mut reply = body.clone();
            reply["data"] = body;
            Ok(Reply::raw(reply))
        }
        Operation::Update | Operation::Delete => handle(core, req, name).await,
        _ => Err(ApiError::unsupported_operation()),
    }
}
