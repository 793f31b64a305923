//! `keys/`: list; `keys/:name`: create, read, delete; `keys/:name/config`, `/rotate`,
//! `/trim`. Create and rotate answer 204 as in the Clever KMS transcript ("Success!
//! Data written to: transit/keys/my-key"); config and trim answer the key, as Vault's.

use std::sync::Arc;

use engine::policy::Operation;
use engine::transit::{decode_base64, ConfigUpdate, CreateKey, Key, KeyType, TransitEngine};
use engine::Core;
use serde_json::{json, Map, Value};

use super::{authorize, authorize_update, data_with_warnings, i64_field};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{rfc3339, Reply};

pub async fn list(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
) -> Result<Reply, ApiError> {
    if req.op != Operation::List {
        return Err(ApiError::unsupported_operation());
    }
    authorize(core, req, Operation::List).await?;
    let keys = transit.list()?;
    if keys.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(json!({ "keys": keys })))
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => {
            authorize(core, req, Operation::Read).await?;
            let Some(key) = transit.get(name)? else {
                return Err(ApiError::not_found_empty());
            };
            let context = match req.str_field("context")?.filter(|c| !c.is_empty()) {
                Some(c) => decode_base64(&c)
                    .map_err(|_| ApiError::bad("failed to base64-decode context"))?,
                None => Vec::new(),
            };
            Ok(Reply::data(key_json(&key, &context)?))
        }
        Operation::Update => {
            authorize(core, req, Operation::Update).await?;
            let kind = match req.str_field("type")?.filter(|t| !t.is_empty()) {
                Some(t) => KeyType::parse(&t)?,
                None => KeyType::Aes256Gcm96,
            };
            let key_size = match i64_field(req, "key_size")? {
                Some(s) if s < 0 => return Err(ApiError::bad(format!("invalid key_size {s}"))),
                s => s.map(|s| s as usize),
            };
            let spec = CreateKey {
                kind,
                derived: req.bool_field("derived")?.unwrap_or(false),
                convergent_encryption: req.bool_field("convergent_encryption")?.unwrap_or(false),
                exportable: req.bool_field("exportable")?.unwrap_or(false),
                allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?.unwrap_or(false),
                auto_rotate_period: req.duration_field("auto_rotate_period")?.unwrap_or(0),
                key_size,
            };
            transit.create(name, spec).await?;
            Ok(Reply::no_content())
        }
        Operation::Delete => {
            authorize(core, req, Operation::Delete).await?;
            transit.delete(name).await?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

pub async fn config(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let update = ConfigUpdate {
        min_decryption_version: i64_field(req, "min_decryption_version")?,
        min_encryption_version: i64_field(req, "min_encryption_version")?,
        deletion_allowed: req.bool_field("deletion_allowed")?,
        exportable: req.bool_field("exportable")?,
        allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?,
        auto_rotate_period: req.duration_field("auto_rotate_period")?,
    };
    let (key, warning) = transit.configure(name, update).await?;
    Ok(data_with_warnings(
        key_json(&key, &[])?,
        warning.into_iter().collect(),
    ))
}

pub async fn rotate(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    transit.rotate(name).await?;
    Ok(Reply::no_content())
}

pub async fn trim(
    core: &Arc<Core>,
    req: &VaultRequest,
    transit: &TransitEngine,
    name: &str,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let Some(min) = i64_field(req, "min_available_version")? else {
        return Err(ApiError::bad("missing min_available_version"));
    };
    let key = transit.trim(name, min).await?;
    Ok(Reply::data(key_json(&key, &[])?))
}

/// A key as Vault's read shows it.
fn key_json(key: &Key, context: &[u8]) -> Result<Value, ApiError> {
    let c = &key.config;
    let kind = c.kind;
    let mut data = json!({
        "name": c.name,
        "type": kind.as_str(),
        "derived": c.derived,
        "deletion_allowed": c.deletion_allowed,
        "min_available_version": c.min_available_version,
        "min_decryption_version": c.min_decryption_version,
        "min_encryption_version": c.min_encryption_version,
        "latest_version": c.latest_version,
        "exportable": c.exportable,
        "allow_plaintext_backup": c.allow_plaintext_backup,
        "supports_encryption": kind.supports_encryption(),
        "supports_decryption": kind.supports_decryption(),
        "supports_signing": kind.supports_signing(),
        "supports_derivation": kind.supports_derivation(),
        "auto_rotate_period": c.auto_rotate_period,
        "imported_key": false,
        "soft_deleted": false,
    });
    if c.key_size != 0 {
        data["key_size"] = json!(c.key_size);
    }
    if c.derived {
        data["kdf"] = json!("hkdf_sha256");
        data["convergent_encryption"] = json!(c.convergent_encryption);
        if c.convergent_encryption {
            // Vault's marker that each version records its own (current) scheme.
            data["convergent_encryption_version"] = json!(-1);
        }
    }
    if kind.is_aead() {
        let keys: Map<String, Value> = key
            .versions()
            .map(|v| (v.number.to_string(), json!(v.created.unix_timestamp())))
            .collect();
        data["keys"] = Value::Object(keys);
    } else if kind.is_asymmetric() {
        let mut keys = Map::new();
        for v in key.versions() {
            keys.insert(
                v.number.to_string(),
                json!({
                    "name": key.public_key_name(),
                    "public_key": key.shown_public_key(v, context)?,
                    "certificate_chain": "",
                    "creation_time": rfc3339(Some(v.created)),
                }),
            );
        }
        data["keys"] = Value::Object(keys);
    }
    Ok(data)
}
