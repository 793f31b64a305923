//! `decrypt/:name`. Every failure to decrypt a well-formed ciphertext, including an
//! unknown key name, answers 400 "Unable to decrypt the secret".

use std::sync::Arc;

use engine::transit::TransitEngine;
use engine::Core;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::authorize_update;
use super::batch::{batch_reply, cipher_items, reference, Tally};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let (items, batch) = cipher_items(req)?;
    if !batch && items[0].ciphertext.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::bad("missing ciphertext to decrypt"));
    }
    let results = transit.decrypt(name, &items).await?;
    if !batch {
        let Some(result) = results.into_iter().next() else {
            return Err(ApiError::bad("missing ciphertext to decrypt"));
        };
        let plaintext: Zeroizing<String> = result?;
        return Ok(Reply::data(json!({ "plaintext": plaintext.as_str() })));
    }
    let mut tally = Tally::default();
    let out: Vec<Value> = results
        .iter()
        .zip(&items)
        .map(|(r, item)| {
            let mut m = Map::new();
            match r {
                Ok(p) => {
                    tally.successes = true;
                    m.insert("plaintext".into(), json!(p.as_str()));
                }
                Err(err) => {
                    m.insert("plaintext".into(), json!(""));
                    m.insert("error".into(), json!(tally.failed(err)));
                }
            }
            m.insert("reference".into(), reference(&item.reference));
            Value::Object(m)
        })
        .collect();
    batch_reply(req, json!({ "batch_results": out }), &tally)
}
