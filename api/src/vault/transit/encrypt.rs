//! `encrypt/:name`: encrypts base64 plaintexts, creating the key on first use (Vault's
//! upsert, which needs the `create` capability).

use std::sync::Arc;

use engine::policy::Operation;
use engine::transit::TransitEngine;
use engine::Core;
use serde_json::{json, Map, Value};

use super::batch::{batch_reply, cipher_items, reference, Tally};
use super::{authorize, data_with_warnings};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return Err(ApiError::unsupported_operation());
    }
    let exists = transit.exists(name)?;
    let op = if exists {
        Operation::Update
    } else {
        Operation::Create
    };
    authorize(core, req, op).await?;
    let (items, batch) = cipher_items(req)?;
    if !batch && items[0].plaintext.is_none() {
        return Err(ApiError::bad("missing plaintext to encrypt"));
    }
    let key_type = req.str_field("type")?;
    let convergent = req.bool_field("convergent_encryption")?.unwrap_or(false);
    let (results, created) = transit
        .encrypt(name, &items, key_type.as_deref(), convergent)
        .await?;
    // Vault warns when the create capability was used but another request made the key.
    let warnings = if op == Operation::Create && !created {
        vec!["Attempted creation of the key during the encrypt operation, but it was created beforehand".to_string()]
    } else {
        vec![]
    };

    if !batch {
        let Some(result) = results.into_iter().next() else {
            return Err(ApiError::bad("missing plaintext to encrypt"));
        };
        let e = result?;
        return Ok(data_with_warnings(
            json!({ "ciphertext": e.ciphertext, "key_version": e.key_version }),
            warnings,
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
                    tally.successes = true;
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
    let mut reply = batch_reply(req, json!({ "batch_results": out }), &tally)?;
    if !warnings.is_empty() {
        if let Some(body) = reply.body.as_mut() {
            body["warnings"] = Value::from(warnings);
        }
    }
    Ok(reply)
}
