//! `wrapping_key`, `keys/:name/import` and `keys/:name/import_version`: BYOK in Vault's
//! format. Imports answer 204, as Vault's. Importing a public key alone (`public_key`)
//! is refused: every transit key here holds its private half.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::transit::{TransitImport, TransitImportVersion, TransitWrappingKey, Wrapped};
use engine::transit::{decode_base64, ImportKey, KeyType, OaepHash};
use engine::{Core, EngineError};
use serde_json::json;
use zeroize::Zeroizing;

use super::{i64_field, str_or};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

pub async fn wrapping_key(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
) -> Result<Reply, ApiError> {
    apply(core, req, TransitWrappingKey { mount }, |pem| {
        Ok(Reply::data(json!({ "public_key": pem })))
    })
    .await
}

fn wrapped(req: &VaultRequest) -> Result<Wrapped, EngineError> {
    let ciphertext = req.str_field("ciphertext")?.filter(|c| !c.is_empty());
    let public_key = req.str_field("public_key")?.filter(|p| !p.is_empty());
    let ciphertext = match (ciphertext, public_key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "only one of the following fields, ciphertext and public_key, can be set",
            )
            .into())
        }
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "importing a public key alone is not supported by this appliance: import the private key with \"ciphertext\"",
            )
            .into())
        }
        (None, None) => return Err(ApiError::bad("missing \"ciphertext\"").into()),
        (Some(c), None) => c,
    };
    let ciphertext =
        decode_base64(&ciphertext).map_err(|e| ApiError::bad(engine::transit::base64_error(&e)))?;
    Ok(Wrapped {
        ciphertext: Zeroizing::new(ciphertext),
        hash: OaepHash::parse(&str_or(req, "hash_function", "SHA256")?)?,
    })
}

fn spec(req: &VaultRequest) -> Result<ImportKey, EngineError> {
    if req.field("convergent_encryption").is_some() {
        return Err(ApiError::bad(
            "import cannot be used on keys with convergent encryption enabled",
        )
        .into());
    }
    let kind = str_or(req, "type", "aes256-gcm96")?.to_ascii_lowercase();
    let kind =
        KeyType::parse(&kind).map_err(|_| ApiError::bad(format!("unknown key type: {kind}")))?;
    // Vault takes `context` and does nothing with it on import; it must still be base64.
    if let Some(c) = req.str_field("context")?.filter(|c| !c.is_empty()) {
        decode_base64(&c).map_err(|_| ApiError::bad("failed to base64-decode context"))?;
    }
    Ok(ImportKey {
        kind,
        derived: req.bool_field("derived")?.unwrap_or(false),
        exportable: req.bool_field("exportable")?.unwrap_or(false),
        allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?.unwrap_or(false),
        allow_rotation: req.bool_field("allow_rotation")?.unwrap_or(false),
        auto_rotate_period: req.duration_field("auto_rotate_period")?.unwrap_or(0),
    })
}

pub async fn import(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let op = TransitImport {
        mount,
        key: name.to_string(),
        spec: spec(req),
        wrapped: wrapped(req),
    };
    apply(core, req, op, |()| Ok(Reply::no_content())).await
}

pub async fn import_version(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let op = TransitImportVersion {
        mount,
        key: name.to_string(),
        wrapped: wrapped(req),
        version: i64_field(req, "version").map_err(Into::into),
    };
    apply(core, req, op, |()| Ok(Reply::no_content())).await
}
