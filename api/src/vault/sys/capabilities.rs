//! `sys/capabilities-self`, `sys/capabilities`, `sys/capabilities-accessor`.

use std::sync::Arc;

use engine::policy::{Acl, Operation};
use engine::Core;
use serde_json::{Map, Value};

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

fn answer(acl: &Acl, paths: Vec<String>) -> Reply {
    let mut body = Map::new();
    let mut all: Vec<String> = Vec::new();
    for p in paths {
        let p = p.trim_start_matches('/').to_string();
        let mut caps: Vec<String> = acl
            .capabilities(&p)
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        if caps.is_empty() {
            caps.push("deny".into());
        }
        caps.sort();
        all.extend(caps.iter().cloned());
        body.insert(p, Value::from(caps));
    }
    all.sort();
    all.dedup();
    body.insert("capabilities".into(), Value::from(all));
    let data = Value::Object(body.clone());
    let mut reply = Value::Object(body);
    reply["data"] = data;
    Reply::raw(reply)
}

pub async fn self_(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(super::unsupported(core, req, false).await);
    }
    let caller = super::authorize(core, req, Operation::Update).await?;
    let acl = core.acl(&caller)?;
    Ok(answer(&acl, paths(req)?))
}

pub async fn of_token(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(super::unsupported(core, req, false).await);
    }
    super::authorize(core, req, Operation::Update).await?;
    let token = req
        .str_field("token")?
        .ok_or_else(|| ApiError::bad("missing token"))?;
    let (key, entry) = core.tokens.lookup(&token)?;
    let caller = engine::token::Caller::new(key, entry);
    let acl = core.acl(&caller)?;
    Ok(answer(&acl, paths(req)?))
}

pub async fn of_accessor(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(super::unsupported(core, req, false).await);
    }
    super::authorize(core, req, Operation::Update).await?;
    let accessor = req
        .str_field("accessor")?
        .ok_or_else(|| ApiError::bad("missing accessor"))?;
    let (key, entry) = core.tokens.lookup_accessor(&accessor)?;
    let caller = engine::token::Caller::new(key, entry);
    let acl = core.acl(&caller)?;
    Ok(answer(&acl, paths(req)?))
}
