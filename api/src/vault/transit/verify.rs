//! `verify/:name(/:hash_algorithm)`: signatures, or HMACs when the request carries
//! `hmac` instead of `signature`.

use std::sync::Arc;

use engine::transit::{verify_mode, TransitEngine, VerifyMode};
use engine::Core;
use serde_json::{json, Map, Value};

use super::authorize_update;
use super::batch::{input_items, reference, Tally};
use super::sign::{hash_name, sign_options};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
    url_algorithm: Option<&str>,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let (items, batch) = input_items(req)?;
    let results = match verify_mode(&items, batch)? {
        VerifyMode::Signature => {
            let opts = sign_options(req, url_algorithm)?;
            transit.verify_signatures(name, &items, &opts).await?
        }
        VerifyMode::Hmac => {
            transit
                .verify_hmacs(name, &items, &hash_name(req, url_algorithm)?)
                .await?
        }
    };
    if !batch {
        let Some(result) = results.into_iter().next() else {
            return Err(ApiError::bad("missing input"));
        };
        return Ok(Reply::data(json!({ "valid": result? })));
    }
    let mut tally = Tally::default();
    let out: Vec<Value> = results
        .iter()
        .zip(&items)
        .map(|(r, item)| {
            let mut m = Map::new();
            match r {
                Ok(valid) => {
                    m.insert("valid".into(), json!(valid));
                }
                Err(e) => {
                    m.insert("valid".into(), json!(false));
                    m.insert("error".into(), json!(tally.failed(e)));
                }
            }
            m.insert("reference".into(), reference(&item.reference));
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(json!({ "batch_results": out })))
}
