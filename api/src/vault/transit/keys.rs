//! `keys/`: list; `keys/:name`: create, read, delete; `keys/:name/config`, `/rotate`,
//! `/trim`. Create, rotate, config and trim answer the key, as OpenBao's (hvac reads
//! `["data"]["latest_version"]` after a rotate); a create of an existing key answers it
//! unchanged.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::transit::{
    KeyDescription, TransitKeyConfig, TransitKeyCreate, TransitKeyDelete, TransitKeyList,
    TransitKeyRead, TransitKeyRotate, TransitKeyTrim,
};
use engine::transit::{decode_base64, ConfigUpdate, CreateKey, KeyType};
use engine::{Core, EngineError};
use serde_json::{json, Map, Value};

use super::{i64_field, with_warnings};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{rfc3339, Reply};
use crate::vault::apply;

fn no_content(_: ()) -> Result<Reply, ApiError> {
    Ok(Reply::no_content())
}

/// The key as a read shows it, with Vault's warning if any.
fn described(d: KeyDescription) -> Result<Reply, ApiError> {
    let warnings = d.warning.iter().cloned().collect();
    Ok(with_warnings(Reply::data(key_json(&d)), warnings))
}

pub async fn list(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
) -> Result<Reply, ApiError> {
    apply(core, req, TransitKeyList { mount }, |keys| {
        if keys.is_empty() {
            return Err(ApiError::not_found_empty());
        }
        Ok(Reply::data(json!({ "keys": keys })))
    })
    .await
}

fn context(req: &VaultRequest) -> Result<Vec<u8>, EngineError> {
    match req.str_field("context")?.filter(|c| !c.is_empty()) {
        Some(c) => {
            decode_base64(&c).map_err(|_| ApiError::bad("failed to base64-decode context").into())
        }
        None => Ok(Vec::new()),
    }
}

pub async fn read(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let (key, context) = (name.to_string(), context(req));
    apply(
        core,
        req,
        TransitKeyRead {
            mount,
            key,
            context,
        },
        |d| Ok(Reply::data(key_json(&d))),
    )
    .await
}

fn spec(req: &VaultRequest) -> Result<CreateKey, EngineError> {
    let kind = match req.str_field("type")?.filter(|t| !t.is_empty()) {
        Some(t) => KeyType::parse(&t)?,
        None => KeyType::Aes256Gcm96,
    };
    let key_size = match i64_field(req, "key_size")? {
        Some(s) if s < 0 => return Err(ApiError::bad(format!("invalid key_size {s}")).into()),
        s => s.map(|s| s as usize),
    };
    Ok(CreateKey {
        kind,
        derived: req.bool_field("derived")?.unwrap_or(false),
        convergent_encryption: req.bool_field("convergent_encryption")?.unwrap_or(false),
        exportable: req.bool_field("exportable")?.unwrap_or(false),
        allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?.unwrap_or(false),
        auto_rotate_period: req.duration_field("auto_rotate_period")?.unwrap_or(0),
        key_size,
    })
}

pub async fn create(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let (key, spec) = (name.to_string(), spec(req));
    apply(core, req, TransitKeyCreate { mount, key, spec }, described).await
}

pub async fn delete(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let key = name.to_string();
    apply(core, req, TransitKeyDelete { mount, key }, no_content).await
}

fn config_update(req: &VaultRequest) -> Result<ConfigUpdate, EngineError> {
    Ok(ConfigUpdate {
        min_decryption_version: i64_field(req, "min_decryption_version")?,
        min_encryption_version: i64_field(req, "min_encryption_version")?,
        deletion_allowed: req.bool_field("deletion_allowed")?,
        exportable: req.bool_field("exportable")?,
        allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?,
        auto_rotate_period: req.duration_field("auto_rotate_period")?,
    })
}

pub async fn config(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let (key, update) = (name.to_string(), config_update(req));
    apply(
        core,
        req,
        TransitKeyConfig { mount, key, update },
        described,
    )
    .await
}

pub async fn rotate(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let key = name.to_string();
    apply(core, req, TransitKeyRotate { mount, key }, described).await
}

fn min_available_version(req: &VaultRequest) -> Result<i64, EngineError> {
    i64_field(req, "min_available_version")?
        .ok_or_else(|| ApiError::bad("missing min_available_version").into())
}

pub async fn trim(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    name: &str,
) -> Result<Reply, ApiError> {
    let op = TransitKeyTrim {
        mount,
        key: name.to_string(),
        min_available_version: min_available_version(req),
    };
    apply(core, req, op, |d| Ok(Reply::data(key_json(&d)))).await
}

/// A key as Vault's read shows it.
fn key_json(d: &KeyDescription) -> Value {
    let key = &d.key;
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
        "imported_key": c.imported,
        "soft_deleted": false,
    });
    if c.imported {
        data["imported_key_allow_rotation"] = json!(c.allow_imported_rotation);
    }
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
        let keys: Map<String, Value> = key
            .versions()
            .map(|v| {
                let shown = json!({
                    "name": key.public_key_name(),
                    "public_key": d.public_keys.get(&v.number),
                    "certificate_chain": "",
                    "creation_time": rfc3339(Some(v.created)),
                });
                (v.number.to_string(), shown)
            })
            .collect();
        data["keys"] = Value::Object(keys);
    }
    data
}
