//! `hash(/:algorithm)`: a digest of base64 input, hex or base64.

use std::sync::Arc;

use engine::ops::transit::{HashRequest, TransitHash};
use engine::transit::{base64_error, decode_base64};
use engine::{Core, EngineError};
use serde_json::json;

use super::hmac::algorithm;
use super::{encoding, str_or};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

fn request(req: &VaultRequest, url_algorithm: Option<&str>) -> Result<HashRequest, EngineError> {
    let Some(input) = req.str_field("input")? else {
        return Err(ApiError::bad("input missing").into());
    };
    let algorithm = algorithm(req, url_algorithm)?;
    let format = str_or(req, "format", "hex")?;
    let input = decode_base64(&input).map_err(|e| {
        ApiError::bad(format!(
            "unable to decode input as base64: {}",
            base64_error(&e)
        ))
    })?;
    Ok(HashRequest {
        encoding: encoding(&format, &format)?,
        algorithm,
        input,
    })
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    url_algorithm: Option<&str>,
) -> Result<Reply, ApiError> {
    let request = request(req, url_algorithm);
    apply(core, req, TransitHash { request }, |sum| {
        Ok(Reply::data(json!({ "sum": sum })))
    })
    .await
}
