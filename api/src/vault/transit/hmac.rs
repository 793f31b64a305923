//! `hmac/:name(/:algorithm)`.

use engine::ops::transit::{Asked, HmacRequest};
use engine::EngineError;

use super::batch::input_items;
use super::{i64_field, str_or};
use crate::error::ApiError;
use crate::request::VaultRequest;

/// The algorithm named in the URL, else `algorithm`, else SHA2-256 (also `hash`'s rule).
pub(super) fn algorithm(req: &VaultRequest, url: Option<&str>) -> Result<String, ApiError> {
    match url.filter(|a| !a.is_empty()) {
        Some(a) => Ok(a.to_string()),
        None => str_or(req, "algorithm", "sha2-256"),
    }
}

pub(super) fn request(
    req: &VaultRequest,
    url_algorithm: Option<&str>,
) -> Result<Asked<HmacRequest>, EngineError> {
    let algorithm = algorithm(req, url_algorithm)?;
    let key_version = i64_field(req, "key_version")?.unwrap_or(0);
    let items = input_items(req)?;
    if !items.batch && items.items.iter().any(|i| i.input.is_none()) {
        return Err(ApiError::bad("missing input for HMAC").into());
    }
    let what = HmacRequest {
        algorithm,
        key_version,
    };
    Ok(Asked { what, items })
}
