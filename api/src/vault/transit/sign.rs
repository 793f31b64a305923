//! `sign/:name(/:hash_algorithm)`.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::transit::{
    HashAlgorithm, Marshaling, RsaScheme, SaltLength, SignOptions, TransitEngine,
};
use engine::Core;
use serde_json::{json, Map, Value};

use super::batch::{input_items, reference, Tally};
use super::{authorize_update, i64_field, string_or_empty};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

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
pub(super) fn sign_options(req: &VaultRequest, url: Option<&str>) -> Result<SignOptions, ApiError> {
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

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
    url_algorithm: Option<&str>,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let opts = sign_options(req, url_algorithm)?;
    let version = i64_field(req, "key_version")?.unwrap_or(0);
    let (items, batch) = input_items(req)?;
    let results = transit.sign(name, &items, version, &opts).await?;
    if !batch {
        let Some(result) = results.into_iter().next() else {
            return Err(ApiError::bad("missing input"));
        };
        let s = result?;
        let mut data = json!({ "signature": s.signature, "key_version": s.key_version });
        if let Some(pk) = s.public_key {
            data["public_key"] = json!(STANDARD.encode(pk));
        }
        return Ok(Reply::data(data));
    }
    let mut tally = Tally::default();
    let out: Vec<Value> = results
        .iter()
        .zip(&items)
        .map(|(r, item)| {
            let mut m = Map::new();
            match r {
                Ok(s) => {
                    m.insert("signature".into(), json!(s.signature));
                    m.insert("key_version".into(), json!(s.key_version));
                    if let Some(pk) = &s.public_key {
                        m.insert("publickey".into(), json!(STANDARD.encode(pk)));
                    }
                }
                Err(e) => {
                    m.insert("key_version".into(), json!(0));
                    m.insert("error".into(), json!(tally.failed(e)));
                }
            }
            m.insert("reference".into(), reference(&item.reference));
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(json!({ "batch_results": out })))
}
