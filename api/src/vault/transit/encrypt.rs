//! `encrypt/:name`: encrypts base64 plaintexts, creating the key on first use (Vault's
//! upsert, which needs the `create` capability).

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::transit::{EncryptRequest, TransitEncrypt};
use engine::{Core, EngineError};

use super::batch::cipher_items;
use super::results::{single_or_batch, Failures};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

fn request(req: &VaultRequest) -> Result<EncryptRequest, EngineError> {
    let items = cipher_items(req)?;
    if !items.batch && items.items.iter().any(|i| i.plaintext.is_none()) {
        return Err(ApiError::bad("missing plaintext to encrypt").into());
    }
    Ok(EncryptRequest {
        items,
        key_type: req.str_field("type")?,
        convergent: req.bool_field("convergent_encryption")?.unwrap_or(false),
    })
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let op = TransitEncrypt {
        mount,
        key: name.to_string(),
        request: request(req),
    };
    apply(core, req, op, |e| {
        single_or_batch(req, e.answered, Failures::SetStatus, e.warnings)
    })
    .await
}
