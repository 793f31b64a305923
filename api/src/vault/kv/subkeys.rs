//! `<mount>/subkeys/<path>`: a secret version's structure with every leaf value replaced
//! by null, to `depth` levels (0: all), as Vault answers it.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::kv::KvRead;
use engine::policy::Operation;
use engine::Core;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

use super::data::version_json;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{envelope, Reply};
use crate::vault::{apply, unsupported_operation};

/// Replaces, in place, every value that is not a non-empty object within `max_depth`
/// levels with null, so no secret value survives.
fn strip(map: &mut Map<String, Value>, depth: u64, max_depth: u64) {
    for value in map.values_mut() {
        match value {
            Value::Object(inner) if !inner.is_empty() && (max_depth == 0 || depth < max_depth) => {
                strip(inner, depth + 1, max_depth)
            }
            other => *other = Value::Null,
        }
    }
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    path: String,
) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return unsupported_operation(core, req).await;
    }
    // Reported once the ACL allows the read, as any malformed field.
    let depth = req.u64_field("depth").map_err(|e| e.errors.join("; "));
    let op = KvRead {
        mount,
        path,
        version: req.u64_field("version").map_err(Into::into),
    };
    apply(core, req, op, |read| {
        let max_depth = depth.clone().map_err(ApiError::bad)?.unwrap_or(0);
        let meta = version_json(read.version, &read.meta, &read.custom_metadata);
        match read.data {
            Some(mut d) => {
                strip(&mut d, 1, max_depth);
                Ok(Reply::data(json!({ "subkeys": d, "metadata": meta })))
            }
            None => Err(ApiError {
                status: StatusCode::NOT_FOUND,
                errors: vec![],
                body: Some(envelope(
                    Some(json!({ "subkeys": null, "metadata": meta })),
                    None,
                )),
            }),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_become_null_down_to_the_depth() {
        let data = json!({"a": 1, "b": {"c": "x", "d": {"e": true}, "f": {}}, "g": [1]});
        let Value::Object(mut all) = data.clone() else {
            unreachable!()
        };
        strip(&mut all, 1, 0);
        assert_eq!(
            Value::Object(all),
            json!({"a": null, "b": {"c": null, "d": {"e": null}, "f": null}, "g": null})
        );
        let Value::Object(mut one) = data else {
            unreachable!()
        };
        strip(&mut one, 1, 1);
        assert_eq!(Value::Object(one), json!({"a": null, "b": null, "g": null}));
    }
}
