//! `rewrap/:name`: ciphertexts re-encrypted under the latest (or a given) version; the
//! plaintext never leaves the appliance. Batch answers are 200 with per-item errors,
//! as Vault's.

use std::sync::Arc;

use engine::transit::TransitEngine;
use engine::Core;
use serde_json::{json, Map, Value};

use super::authorize_update;
use super::batch::{cipher_items, reference, Tally};
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
    let results = transit.rewrap(name, &items).await?;
    if !batch {
        let Some(result) = results.into_iter().next() else {
            return Err(ApiError::bad("missing ciphertext to decrypt"));
        };
        let e = result?;
        return Ok(Reply::data(
            json!({ "ciphertext": e.ciphertext, "key_version": e.key_version }),
        ));
    }
    let mut tally = Tally::default();
    let out: Vec<Value> = results
        .iter()
        .zip(&items)
        .map(|(r, item)| {
            let mut m = Map::new();
            match r {
                Ok(e) => {
                    m.insert("ciphertext".into(), json!(e.ciphertext));
                    m.insert("key_version".into(), json!(e.key_version));
                }
                Err(err) => {
                    m.insert("error".into(), json!(tally.failed(err)));
                }
            }
            m.insert("reference".into(), reference(&item.reference));
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(json!({ "batch_results": out })))
}
