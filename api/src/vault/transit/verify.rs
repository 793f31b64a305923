//! `verify/:name(/:hash_algorithm)`: signatures, or HMACs when the request carries
//! `hmac` instead of `signature`.

use engine::ops::transit::{Asked, VerifyRequest};
use engine::transit::{verify_mode, VerifyMode};
use engine::EngineError;

use super::batch::input_items;
use super::sign::{hash_name, sign_options};
use crate::request::VaultRequest;

pub(super) fn request(
    req: &VaultRequest,
    url_algorithm: Option<&str>,
) -> Result<Asked<VerifyRequest>, EngineError> {
    let items = input_items(req)?;
    let what = match verify_mode(&items.items, items.batch)? {
        VerifyMode::Signature => VerifyRequest::Signature(sign_options(req, url_algorithm)?),
        VerifyMode::Hmac => VerifyRequest::Hmac(hash_name(req, url_algorithm)?),
    };
    Ok(Asked { what, items })
}
