//! `hmac/:name(/:algorithm)`.

use std::sync::Arc;

use engine::transit::TransitEngine;
use engine::Core;
use serde_json::{json, Map, Value};

use super::batch::{input_items, reference, Tally};
use super::{authorize_update, i64_field};
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
    let algorithm = match url_algorithm.filter(|a| !a.is_empty()) {
        Some(a) => a.to_string(),
        None => req
            .str_field("algorithm")?
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "sha2-256".into()),
    };
    let version = i64_field(req, "key_version")?.unwrap_or(0);
    let (items, batch) = input_items(req)?;
    if !batch && items[0].input.is_none() {
        return Err(ApiError::bad("missing input for HMAC"));
    }
    let results = transit.hmac(name, &items, version, &algorithm).await?;
    if !batch {
        let Some(result) = results.into_iter().next() else {
            return Err(ApiError::bad("missing input for HMAC"));
        };
        let (hmac, _) = result?;
        return Ok(Reply::data(json!({ "hmac": hmac })));
    }
    let mut tally = Tally::default();
    let out: Vec<Value> = results
        .iter()
        .zip(&items)
        .map(|(r, item)| {
            let mut m = Map::new();
            match r {
                Ok((hmac, _)) => {
                    m.insert("hmac".into(), json!(hmac));
                }
                Err(e) => {
                    m.insert("error".into(), json!(tally.failed(e)));
                }
            }
            m.insert("reference".into(), reference(&item.reference));
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(json!({ "batch_results": out })))
}
