//! kv version 1 below its mount: `<path>` read, write (the whole request body is the
//! entry), delete, and list.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::kv::{KvV1Delete, KvV1List, KvV1Read, KvV1Write};
use engine::policy::Operation;
use engine::Core;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{envelope, Reply};
use crate::vault::{apply, unsupported_operation};

/// The lease Vault's kv v1 reads carry (its system default TTL, 768h): advisory, as
/// nothing is revoked when it runs out.
const READ_LEASE_SECONDS: u64 = 768 * 3600;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    path: &str,
) -> Result<Reply, ApiError> {
    let path = path.to_string();
    match req.op {
        Operation::Read => {
            apply(core, req, KvV1Read { mount, path }, |entry| match entry {
                Some(data) => {
                    let mut body = envelope(Some(Value::Object(data)), None);
                    body["lease_duration"] = json!(READ_LEASE_SECONDS);
                    Ok(Reply::raw(body))
                }
                None => Err(ApiError::not_found_empty()),
            })
            .await
        }
        Operation::Create | Operation::Update => {
            let op = KvV1Write {
                mount,
                path,
                data: req.body.clone(),
            };
            apply(core, req, op, |()| Ok(Reply::no_content())).await
        }
        Operation::Delete => {
            apply(core, req, KvV1Delete { mount, path }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        Operation::List => {
            apply(core, req, KvV1List { mount, dir: path }, |keys| {
                if keys.is_empty() {
                    return Err(ApiError::not_found_empty());
                }
                Ok(Reply::data(json!({ "keys": keys })))
            })
            .await
        }
        _ => unsupported_operation(core, req).await,
    }
}
