//! `/api/v1/keys` (create, list) and `/api/v1/keys/{keyId}` (get; DELETE schedules
//! destruction with the default window, in `destruction.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use engine::managed_keys::{material, Algorithm, CreateKey, KeyState, ListKeys, ManagedKey, Usage};
use engine::ops::managed_keys::{KeyCreate, KeyGet, KeyList};
use engine::ops::Decoded;
use engine::Core;
use serde_json::{json, Value};

use super::{apply, invalid, ApiReply, ApiRequest, ApiResult};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

fn rfc3339(t: time::OffsetDateTime) -> Value {
    t.format(&time::format_description::well_known::Rfc3339)
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// The key as the API shows it.
pub fn key_json(key: &ManagedKey) -> Value {
    let versions: Vec<Value> = key
        .versions
        .iter()
        .map(|v| {
            let mut o = json!({
                "version": v.version,
                "state": v.state,
                "createTime": rfc3339(v.create_time),
                "protection": v.protection,
                "origin": v.origin,
            });
            if let Some(e) = material::encryption_algorithm(key.algorithm, v.protection)
                .filter(|_| key.usage == Usage::EncryptDecrypt)
            {
                o["encryptionAlgorithm"] = e.into();
            }
            if let Some(p) = &v.public_key {
                match material::public_pem(key.algorithm, p) {
                    Some(pem) => o["publicKeyPem"] = pem.into(),
                    None => {
                        o["publicKey"] = base64::engine::general_purpose::STANDARD.encode(p).into()
                    }
                }
            }
            o
        })
        .collect();
    let mut out = json!({
        "id": key.id,
        "name": key.name,
        "algorithm": key.algorithm,
        "usage": key.usage,
        "labels": key.labels,
        "state": key.state,
        "createTime": rfc3339(key.create_time),
        "destroyTime": key.destroy_time.map(rfc3339).unwrap_or(Value::Null),
        "primaryVersion": key.primary_version,
        "exportable": key.exportable,
        "allowUnwrappedExport": key.allow_unwrapped_export,
        "versions": versions,
    });
    if let Ok(primary) = key.primary() {
        out["protection"] = json!(primary.protection);
        if let Some(p) = &primary.public_key {
            match material::public_pem(key.algorithm, p) {
                Some(pem) => out["publicKeyPem"] = pem.into(),
                None => {
                    out["publicKey"] = base64::engine::general_purpose::STANDARD.encode(p).into()
                }
            }
            let kid = format!("{}/{}", key.id, primary.version);
            if let Some(jwk) = material::public_jwk(key.algorithm, p, &kid) {
                out["publicKeyJwk"] = jwk;
            }
        }
    }
    out
}

pub async fn create(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let op = KeyCreate {
        request: create_request(req),
    };
    apply(core, req, op, |key| Ok(ApiReply::created(key_json(&key)))).await
}

fn create_request(req: &ApiRequest) -> Decoded<CreateKey> {
    let name = req.required_str("name")?;
    let algorithm = Algorithm::parse(req.required_str("algorithm")?)?;
    let usage = req.str_field("usage")?.map(Usage::parse).transpose()?;
    let flag = |name: &str| match req.body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(
            "INVALID_FIELD",
            format!("field {name:?} must be true or false"),
        )),
    };
    let exportable = flag("exportable")?;
    let allow_unwrapped_export = flag("allowUnwrappedExport")?;
    let labels = match req.body.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid(
                    "INVALID_LABELS",
                    format!("label {k:?} must have a string value"),
                )),
            })
            .collect::<Decoded<_>>()?,
        Some(_) => {
            return Err(invalid(
                "INVALID_LABELS",
                "\"labels\" must be an object of strings",
            ))
        }
    };
    Ok(CreateKey {
        name: name.to_string(),
        algorithm,
        usage,
        labels,
        exportable,
        allow_unwrapped_export,
    })
}

pub async fn list(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let op = KeyList {
        query: list_query(req),
    };
    apply(core, req, op, |page| {
        Ok(ApiReply::ok(json!({
            "keys": page.keys.iter().map(key_json).collect::<Vec<_>>(),
            "nextPageToken": page.next_page_token,
        })))
    })
    .await
}

fn list_query(req: &ApiRequest) -> Decoded<ListKeys> {
    let page_size = match req.query.get("pageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "INVALID_PAGE_SIZE",
                    format!("pageSize must be between 1 and {MAX_PAGE_SIZE}"),
                ))
            }
        },
    };
    let algorithm = req
        .query
        .get("algorithm")
        .map(|a| Algorithm::parse(a))
        .transpose()?;
    let page_token = match req.query.get("pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            uuid::Uuid::parse_str(t)
                .map_err(|_| invalid("INVALID_PAGE_TOKEN", "pageToken is not one this API issued"))?
                .to_string(),
        ),
    };
    let state = match req.query.get("state").map(String::as_str) {
        None | Some("") => None,
        Some("ENABLED") => Some(KeyState::Enabled),
        Some("PENDING_DESTRUCTION") => Some(KeyState::PendingDestruction),
        Some(other) => {
            return Err(invalid(
                "INVALID_STATE",
                format!("unknown state {other:?}: use ENABLED or PENDING_DESTRUCTION"),
            ))
        }
    };
    let label = match req.query.get("label").filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
            _ => return Err(invalid("INVALID_LABEL", "label must be name=value")),
        },
    };
    Ok(ListKeys {
        page_size,
        page_token,
        name_prefix: req.query.get("name").cloned(),
        algorithm,
        state,
        label,
    })
}

pub async fn get(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    let op = KeyGet {
        key: id.to_string(),
    };
    apply(core, req, op, |key| Ok(ApiReply::ok(key_json(&key)))).await
}
