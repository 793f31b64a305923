//! `sign/:name(/:hash_algorithm)`.

use engine::ops::transit::{Asked, SignRequest};
use engine::transit::{HashAlgorithm, Marshaling, RsaScheme, SaltLength, SignOptions};
use engine::EngineError;

use super::batch::input_items;
use super::{i64_field, string_or_empty};
use crate::error::ApiError;
use crate::request::VaultRequest;

/// The hash named in the URL, else `hash_algorithm`, else `algorithm`, else SHA2-256.
pub(super) fn hash_name(req: &VaultRequest, url: Option<&str>) -> Result<String, ApiError> {
    if let Some(u) = url.filter(|u| !u.is_empty()) {
        return Ok(u.to_string());
    }
    for field in ["hash_algorithm", "algorithm"] {
        if let Some(v) = req.str_field(field)?.filter(|v| !v.is_empty()) {
            return Ok(v);
        }
    }
    Ok("sha2-256".into())
}

/// The options shared by sign and verify.
pub(super) fn sign_options(
    req: &VaultRequest,
    url: Option<&str>,
) -> Result<SignOptions, EngineError> {
    let name = hash_name(req, url)?;
    let hash = HashAlgorithm::from_name(&name)
        .ok_or_else(|| ApiError::bad(format!("invalid hash algorithm \"{name}\"")))?;
    Ok(SignOptions {
        hash,
        prehashed: req.bool_field("prehashed")?.unwrap_or(false),
        rsa_scheme: RsaScheme::parse(&string_or_empty(req, "signature_algorithm")?)?,
        salt_length: SaltLength::parse(&string_or_empty(req, "salt_length")?)?,
        marshaling: Marshaling::parse(&string_or_empty(req, "marshaling_algorithm")?)?,
    })
}

pub(super) fn request(
    req: &VaultRequest,
    url_algorithm: Option<&str>,
) -> Result<Asked<SignRequest>, EngineError> {
    let what = SignRequest {
        options: sign_options(req, url_algorithm)?,
        key_version: i64_field(req, "key_version")?.unwrap_or(0),
    };
    let items = input_items(req)?;
    Ok(Asked { what, items })
}
