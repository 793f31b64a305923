//! `sys/capabilities-self`, `sys/capabilities`, `sys/capabilities-accessor`.

use std::sync::Arc;

use engine::ops::sys::capabilities::{Capabilities, PathCapabilities, Subject};
use engine::ops::Access;
use engine::policy::Operation;
use engine::Core;
use serde_json::{Map, Value};

use super::{apply, unsupported, with_data};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn paths(req: &VaultRequest) -> Result<Vec<String>, ApiError> {
    let mut paths = req.list_field("paths")?.unwrap_or_default();
    if let Some(p) = req.str_field("path")? {
        paths.push(p);
    }
    if paths.is_empty() {
        return Err(ApiError::bad("missing paths"));
    }
    Ok(paths)
}

fn answer(paths: Vec<PathCapabilities>) -> Result<Reply, ApiError> {
    let mut body = Map::new();
    let mut all: Vec<String> = Vec::new();
    for p in paths {
        all.extend(p.capabilities.iter().cloned());
        body.insert(p.path, Value::from(p.capabilities));
    }
    all.sort();
    all.dedup();
    body.insert("capabilities".into(), Value::from(all));
    Ok(with_data(Value::Object(body)))
}

async fn capabilities(
    core: &Arc<Core>,
    req: &VaultRequest,
    subject: Subject,
) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return unsupported(core, req, Access::Acl).await;
    }
    let op = Capabilities {
        subject,
        paths: paths(req).map_err(Into::into),
    };
    apply(core, req, op, answer).await
}

pub async fn self_(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    capabilities(core, req, Subject::Caller).await
}

pub async fn of_token(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    let token = req
        .str_field("token")
        .and_then(|t| t.ok_or_else(|| ApiError::bad("missing token")));
    capabilities(core, req, Subject::Token(token.map_err(Into::into))).await
}

pub async fn of_accessor(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    let accessor = req
        .str_field("accessor")
        .and_then(|a| a.ok_or_else(|| ApiError::bad("missing accessor")));
    capabilities(core, req, Subject::Accessor(accessor.map_err(Into::into))).await
}
