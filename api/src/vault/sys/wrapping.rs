//! `sys/wrapping/*`: wrap caller data, and unwrap, look up and rewrap wrapping tokens.

use std::sync::Arc;

use engine::ops::sys::wrapping::{WrappingLookup, WrappingRewrap, WrappingUnwrap, WrappingWrap};
use engine::policy::Operation;
use engine::{Core, EngineError};
use serde_json::{json, Value};

use super::{apply, not_allowed};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::{no_route, wrap_info_reply};

/// The body's `token`, checked against the fields the endpoint takes.
fn token_field(req: &VaultRequest) -> Result<Option<String>, EngineError> {
    req.refuse_unknown(&["token"])?;
    Ok(req.str_field("token")?)
}

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    match (tail, req.op) {
        ("wrap", Operation::Update) => {
            let op = WrappingWrap {
                data: req.body.clone(),
            };
            apply(core, req, op, |data| Ok(Reply::data(Value::Object(data)))).await
        }
        ("unwrap", Operation::Update) => {
            let op = WrappingUnwrap {
                token: token_field(req),
            };
            apply(core, req, op, |response| {
                // The answer the wrapped request would have had, as it was then.
                serde_json::from_str::<Value>(&response)
                    .map(Reply::raw)
                    .map_err(|e| EngineError::internal(format!("wrapped response: {e}")).into())
            })
            .await
        }
        ("lookup", Operation::Update | Operation::Read) => {
            let op = WrappingLookup {
                token: token_field(req),
            };
            apply(core, req, op, |w| {
                Ok(Reply::data(json!({
                    "creation_path": w.creation_path,
                    "creation_time": w.creation_time,
                    "creation_ttl": w.creation_ttl,
                })))
            })
            .await
        }
        ("rewrap", Operation::Update) => {
            let op = WrappingRewrap {
                token: token_field(req),
            };
            apply(core, req, op, |info| Ok(wrap_info_reply(&info))).await
        }
        ("wrap" | "unwrap" | "lookup" | "rewrap", _) => not_allowed(core, req).await,
        _ => no_route(core, req).await,
    }
}
