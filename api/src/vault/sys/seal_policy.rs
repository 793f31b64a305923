//! `sys/seal-policy`: the hardware seal's platform policy (TPM PCRs), sudo only.
//!
//! - `GET sys/seal-policy`: the seal's PCRs, their current values, the signed values.
//! - `POST sys/seal-policy/authorize-pcrs`: signs the PCR values of the next boot before a
//!   planned update. `pcrs` gives expected values, `extend` digests to extend into the
//!   current values, each as `{"16": "<hex>"}`, `"16=<hex>,23=<hex>"` or a list of
//!   `"16=<hex>"` (`extend` applies repeated entries in order). PCRs not named keep their
//!   current value.
//! - `POST sys/seal-policy/reseal`: re-creates the sealed root key for the current PCR
//!   values (after an unseal with the recovery keys, or to move to the signed policy).

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::ops::sys::seal_policy::{AuthorizePcrs, Reseal, SealPolicyRead};
use engine::policy::Operation;
use engine::Core;
use engine::{PcrTarget, SealPolicyReport};
use serde_json::{json, Value};

use super::{apply, not_allowed};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(core: &Arc<Core>, req: &VaultRequest, tail: &str) -> Result<Reply, ApiError> {
    match (tail, req.op) {
        ("", Operation::Read) => {
            let op = SealPolicyRead {
                params: req.refuse_unknown(&[]).map_err(Into::into),
            };
            apply(core, req, op, reply).await
        }
        ("authorize-pcrs", Operation::Update) => {
            let op = AuthorizePcrs {
                targets: targets(req).map_err(Into::into),
            };
            apply(core, req, op, reply).await
        }
        ("reseal", Operation::Update) => {
            let op = Reseal {
                params: req.refuse_unknown(&[]).map_err(Into::into),
            };
            apply(core, req, op, reply).await
        }
        ("" | "authorize-pcrs" | "reseal", _) => not_allowed(core, req).await,
        _ => crate::vault::no_route(core, req).await,
    }
}

/// The PCR values to sign: `pcrs` gives them, `extend` digests to extend into the
/// current values.
fn targets(req: &VaultRequest) -> Result<BTreeMap<u8, PcrTarget>, ApiError> {
    req.refuse_unknown(&["pcrs", "extend"])?;
    let mut targets = BTreeMap::new();
    for (pcr, value) in entries(req.field("pcrs"), "pcrs")? {
        if targets.insert(pcr, PcrTarget::Value(value)).is_some() {
            return Err(ApiError::bad(format!("pcrs names PCR {pcr} twice")));
        }
    }
    for (pcr, digest) in entries(req.field("extend"), "extend")? {
        match targets
            .entry(pcr)
            .or_insert_with(|| PcrTarget::Extend(Vec::new()))
        {
            PcrTarget::Extend(list) => list.push(digest),
            PcrTarget::Value(_) => {
                return Err(ApiError::bad(format!(
                    "PCR {pcr} is in both pcrs and extend: give one or the other"
                )))
            }
        }
    }
    Ok(targets)
}

/// `(pcr, sha256 digest)` pairs in the order given.
fn entries(field: Option<Value>, name: &str) -> Result<Vec<(u8, Vec<u8>)>, ApiError> {
    let mut raw: Vec<(String, String)> = Vec::new();
    let bad = || {
        ApiError::bad(format!(
            "{name} must be a map of PCR index to hex SHA-256 value, or \"16=<hex>,...\""
        ))
    };
    let push_pairs = |raw: &mut Vec<(String, String)>, s: &str| -> Result<(), ApiError> {
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            raw.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(())
    };
    match field {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_pairs(&mut raw, &s)?,
        Some(Value::Array(items)) => {
            for item in items {
                let Value::String(s) = item else {
                    return Err(bad());
                };
                push_pairs(&mut raw, &s)?;
            }
        }
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => raw.push((k, s)),
                    Value::Array(list) => {
                        for d in list {
                            let Value::String(s) = d else {
                                return Err(bad());
                            };
                            raw.push((k.clone(), s));
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        }
        Some(_) => return Err(bad()),
    }
    raw.into_iter()
        .map(|(k, v)| {
            let pcr: u8 =
                k.parse().ok().filter(|p| *p < 24).ok_or_else(|| {
                    ApiError::bad(format!("{name}: {k:?} is not a PCR index (0-23)"))
                })?;
            let value = hex::decode(v.trim_start_matches("0x"))
                .ok()
                .filter(|d| d.len() == 32)
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "{name}: the value for PCR {pcr} must be 32 bytes of hex (SHA-256 bank)"
                    ))
                })?;
            Ok((pcr, value))
        })
        .collect()
}

fn reply(r: SealPolicyReport) -> Result<Reply, ApiError> {
    Ok(Reply::data(json!({
        "pcrs": r.pcrs,
        "signed_policy": r.signed_policy,
        "current": r.current,
        "current_authorized": r.current_authorized,
        "authorized": r.authorized,
    })))
}
