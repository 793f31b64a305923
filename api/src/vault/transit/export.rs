//! `export/:type/:name(/:version)`: key material, refused for private material unless
//! the key is exportable.

use std::sync::Arc;

use engine::policy::Operation;
use engine::transit::{ExportFormat, ExportType, TransitEngine};
use engine::Core;
use serde_json::{json, Map, Value};

use super::{authorize, string_or_empty};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    kind: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return Err(ApiError::unsupported_operation());
    }
    authorize(core, req, Operation::Read).await?;
    let what = ExportType::parse(kind)?;
    let format = ExportFormat::parse(&string_or_empty(req, "format")?)?;
    let Some(key) = transit.get(name)? else {
        return Err(ApiError::not_found_empty());
    };
    let exported = key.export(what, format, version)?;
    let keys: Map<String, Value> = exported
        .iter()
        .map(|(n, material)| (n.to_string(), json!(material.as_str())))
        .collect();
    Ok(Reply::data(json!({
        "name": key.name(),
        "type": key.kind().as_str(),
        "keys": keys,
    })))
}
