//! `hash(/:algorithm)`: a digest of base64 input, hex or base64.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::transit::{decode_base64, hash};
use engine::Core;
use serde_json::json;

use super::authorize_update;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    url_algorithm: Option<&str>,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let Some(input) = req.str_field("input")? else {
        return Err(ApiError::bad("input missing"));
    };
    let algorithm = match url_algorithm.filter(|a| !a.is_empty()) {
        Some(a) => a.to_string(),
        None => req
            .str_field("algorithm")?
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "sha2-256".into()),
    };
    let format = req
        .str_field("format")?
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "hex".into());
    let input = decode_base64(&input).map_err(|e| {
        ApiError::bad(format!(
            "unable to decode input as base64: {}",
            engine::transit::base64_error(&e)
        ))
    })?;
    if format != "hex" && format != "base64" {
        return Err(ApiError::bad(format!(
            "unsupported encoding format {format}; must be \"hex\" or \"base64\""
        )));
    }
    let sum = hash::hash(&algorithm, &input)?;
    let sum = if format == "hex" {
        hex::encode(sum)
    } else {
        STANDARD.encode(sum)
    };
    Ok(Reply::data(json!({ "sum": sum })))
}
