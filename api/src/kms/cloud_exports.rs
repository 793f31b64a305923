//! `/api/v1/keys/{keyId}/cloud-exports`: `GET` lists a key's exports (`keys:read`),
//! `POST` creates one and runs its initial export; `.../{exportId}/auto-sync` (`PATCH
//! {"enabled": bool}`), `.../{exportId}/sync` (`POST`) and `.../{exportId}` (`DELETE`).
//! Records are shown as the engine stores them (camelCase, RFC 3339); the credentials
//! never are.

use std::sync::Arc;

use engine::cloud_exports::{CreateExport, ExportRecord, Provider};
use engine::ops::cloud_exports::{
    ExportAutoSync, ExportCreate, ExportDelete, ExportList, ExportSync, Synced,
};
use engine::ops::Decoded;
use engine::Core;
use hyper::StatusCode;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{apply, invalid, ApiReply, ApiRequest, ApiResult};

const CREATE_FIELDS: &[&str] = &[
    "provider",
    "providerMetadata",
    "credentials",
    "vaultSecretId",
    "autoSyncEnabled",
    "saveCredentials",
];

fn record_json(record: &ExportRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// 200 (or 201 for `created`) once the sync finished; 202 while it goes on.
fn synced(done: StatusCode, synced: Synced) -> ApiResult {
    Ok(ApiReply {
        status: if synced.finished {
            done
        } else {
            StatusCode::ACCEPTED
        },
        body: Some(record_json(&synced.record)),
    })
}

/// Refuses a body field outside `allowed`, naming it.
fn only_fields(req: &ApiRequest, allowed: &[&str]) -> Decoded<()> {
    match req.body.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) if allowed.is_empty() => Err(invalid(
            "UNKNOWN_FIELD",
            format!("field {unknown:?} is not one this endpoint takes (it takes no body)"),
        )),
        Some(unknown) => Err(invalid(
            "UNKNOWN_FIELD",
            format!(
                "field {unknown:?} is not one this endpoint takes (it takes {})",
                allowed.join(", ")
            ),
        )),
    }
}

fn bool_field(req: &ApiRequest, name: &str, default: bool) -> Decoded<bool> {
    match req.body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(
            "INVALID_FIELD",
            format!("field {name:?} must be true or false"),
        )),
    }
}

fn create_request(req: &ApiRequest) -> Decoded<CreateExport> {
    only_fields(req, CREATE_FIELDS)?;
    let name = req.required_str("provider")?;
    let provider = Provider::parse(name).ok_or_else(|| {
        invalid(
            "INVALID_FIELD",
            format!(
                "field \"provider\" must be one of {}, not {name:?}",
                Provider::ALL.map(Provider::as_str).join(", ")
            ),
        )
    })?;
    let provider_metadata = match req.body.get("providerMetadata") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => {
            return Err(invalid(
                "MISSING_FIELD",
                "field \"providerMetadata\" (an object) is required",
            ))
        }
        Some(_) => {
            return Err(invalid(
                "INVALID_FIELD",
                "field \"providerMetadata\" must be an object",
            ))
        }
    };
    let credentials = match req.body.get("credentials") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(_)) => Some(Zeroizing::new(c.to_string())),
        Some(_) => {
            return Err(invalid(
                "INVALID_FIELD",
                "field \"credentials\" must be an object",
            ))
        }
    };
    let vault_secret_id = req
        .str_field("vaultSecretId")?
        .map(|s| {
            uuid::Uuid::parse_str(s).map_err(|_| {
                invalid(
                    "INVALID_FIELD",
                    "field \"vaultSecretId\" must be the id (a UUID) of saved credentials",
                )
            })
        })
        .transpose()?;
    Ok(CreateExport {
        provider,
        provider_metadata,
        credentials,
        vault_secret_id,
        auto_sync_enabled: bool_field(req, "autoSyncEnabled", false)?,
        save_credentials: bool_field(req, "saveCredentials", true)?,
    })
}

pub async fn create(core: &Arc<Core>, req: &ApiRequest, key: &str) -> ApiResult {
    let op = ExportCreate {
        key: key.to_string(),
        request: create_request(req),
    };
    apply(core, req, op, |s| synced(StatusCode::CREATED, s)).await
}

pub async fn list(core: &Arc<Core>, req: &ApiRequest, key: &str) -> ApiResult {
    let op = ExportList {
        key: key.to_string(),
    };
    apply(core, req, op, |records| {
        Ok(ApiReply::ok(json!({
            "cloudExports": records.iter().map(record_json).collect::<Vec<_>>(),
        })))
    })
    .await
}

fn enabled(req: &ApiRequest) -> Decoded<bool> {
    only_fields(req, &["enabled"])?;
    match req.body.get("enabled") {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Err(invalid(
            "MISSING_FIELD",
            "field \"enabled\" (true or false) is required",
        )),
        Some(_) => Err(invalid(
            "INVALID_FIELD",
            "field \"enabled\" must be true or false",
        )),
    }
}

pub async fn auto_sync(core: &Arc<Core>, req: &ApiRequest, key: &str, export: &str) -> ApiResult {
    let op = ExportAutoSync {
        key: key.to_string(),
        export: export.to_string(),
        enabled: enabled(req),
    };
    apply(core, req, op, |record| {
        Ok(ApiReply::ok(record_json(&record)))
    })
    .await
}

pub async fn sync(core: &Arc<Core>, req: &ApiRequest, key: &str, export: &str) -> ApiResult {
    let op = ExportSync {
        key: key.to_string(),
        export: export.to_string(),
        body: only_fields(req, &[]),
    };
    apply(core, req, op, |s| synced(StatusCode::OK, s)).await
}

pub async fn delete(core: &Arc<Core>, req: &ApiRequest, key: &str, export: &str) -> ApiResult {
    let op = ExportDelete {
        key: key.to_string(),
        export: export.to_string(),
    };
    apply(core, req, op, |()| {
        Ok(ApiReply {
            status: StatusCode::NO_CONTENT,
            body: None,
        })
    })
    .await
}
