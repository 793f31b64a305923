//! `batch_input` as Vault reads it, and the status of a batch answer.

use engine::transit::{CipherItem, InputItem, TransitError};
use hyper::StatusCode;
use serde_json::{Map, Value};

use super::i64_field;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The raw `batch_input` array, if the request has one. A JSON string holding the array
/// is accepted too, as the CLI sends `batch_input=@file.json`.
fn batch_array(req: &VaultRequest) -> Result<Option<Vec<Value>>, ApiError> {
    let items = match req.body.get("batch_input") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => serde_json::from_str::<Vec<Value>>(s)
            .map_err(|e| ApiError::bad(format!("failed to parse batch input: {e}")))?,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "failed to parse batch input: source data must be an array or slice, got {}",
                type_name(other)
            )))
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad("missing batch input to process"));
    }
    Ok(Some(items))
}

/// Reads one item's fields; a field of the wrong type marks the item malformed.
struct ItemReader<'a> {
    index: usize,
    obj: &'a Map<String, Value>,
    malformed: Option<String>,
}

impl<'a> ItemReader<'a> {
    fn new(index: usize, v: &'a Value) -> Result<Self, ApiError> {
        match v {
            Value::Object(obj) => Ok(ItemReader {
                index,
                obj,
                malformed: None,
            }),
            other => Err(ApiError::bad(format!(
                "failed to parse batch input: [{index}] expected a map, got '{}'",
                type_name(other)
            ))),
        }
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.malformed.get_or_insert_with(|| {
                    format!(
                        "'[{}].{field}' expected type 'string', got unconvertible type '{}'",
                        self.index,
                        type_name(other)
                    )
                });
                None
            }
        }
    }

    fn int(&mut self, field: &str) -> i64 {
        let parsed = match self.obj.get(field) {
            None | Some(Value::Null) => Some(0),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        parsed.unwrap_or_else(|| {
            self.malformed.get_or_insert_with(|| {
                format!(
                    "'[{}].{field}' expected type 'int', got unconvertible type",
                    self.index
                )
            });
            0
        })
    }
}

/// The items of an encrypt, decrypt or rewrap request: its `batch_input`, or one item
/// made of the request's own fields. True when it was a batch.
pub(super) fn cipher_items(req: &VaultRequest) -> Result<(Vec<CipherItem>, bool), ApiError> {
    let Some(raw) = batch_array(req)? else {
        let item = CipherItem {
            plaintext: req.str_field("plaintext")?,
            ciphertext: req.str_field("ciphertext")?,
            context: req.str_field("context")?,
            key_version: i64_field(req, "key_version")?.unwrap_or(0),
            associated_data: req.str_field("associated_data")?,
            nonce: req.str_field("nonce")?,
            reference: String::new(),
            malformed: None,
        };
        return Ok((vec![item], false));
    };
    let items = raw
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = ItemReader::new(i, v)?;
            let item = CipherItem {
                plaintext: r.string("plaintext"),
                ciphertext: r.string("ciphertext"),
                context: r.string("context"),
                key_version: r.int("key_version"),
                associated_data: r.string("associated_data"),
                nonce: r.string("nonce"),
                reference: r.string("reference").unwrap_or_default(),
                malformed: None,
            };
            Ok(CipherItem {
                malformed: r.malformed,
                ..item
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((items, true))
}

/// The items of a sign, verify or hmac request.
pub(super) fn input_items(req: &VaultRequest) -> Result<(Vec<InputItem>, bool), ApiError> {
    let Some(raw) = batch_array(req)? else {
        let item = InputItem {
            input: req.str_field("input")?,
            context: req.str_field("context")?,
            signature: req.str_field("signature")?,
            hmac: req.str_field("hmac")?,
            reference: String::new(),
            malformed: None,
        };
        return Ok((vec![item], false));
    };
    let items = raw
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = ItemReader::new(i, v)?;
            let item = InputItem {
                input: r.string("input"),
                context: r.string("context"),
                signature: r.string("signature"),
                hmac: r.string("hmac"),
                reference: r.string("reference").unwrap_or_default(),
                malformed: None,
            };
            Ok(InputItem {
                malformed: r.malformed,
                ..item
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((items, true))
}

/// How the items of a batch fared.
#[derive(Default)]
pub(super) struct Tally {
    pub successes: bool,
    pub user_errors: bool,
    pub internal_errors: bool,
}

impl Tally {
    /// The `error` text of a failed item, counted as the caller's or the appliance's.
    pub fn failed(&mut self, e: &TransitError) -> String {
        if e.is_user_error() {
            self.user_errors = true;
        } else {
            self.internal_errors = true;
        }
        e.item_message()
    }
}

/// Vault's status for an encrypt or decrypt batch: 400 if any item was the caller's
/// mistake (500 if the appliance failed one), unless some items succeeded and
/// `partial_failure_response_code` asks for another code.
pub(super) fn batch_reply(
    req: &VaultRequest,
    data: Value,
    tally: &Tally,
) -> Result<Reply, ApiError> {
    let mut reply = Reply::data(data);
    if !(tally.user_errors || tally.internal_errors) {
        return Ok(reply);
    }
    let mut code = if tally.user_errors {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if tally.successes {
        if let Some(raw) = i64_field(req, "partial_failure_response_code")? {
            match u16::try_from(raw)
                .ok()
                .filter(|c| (1..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(c) => code = c,
                None => {
                    if let Some(body) = reply.body.as_mut() {
                        body["warnings"] = Value::from(vec![format!(
                            "invalid HTTP response code override from partial_failure_response_code, reverting to {}",
                            code.as_u16()
                        )]);
                    }
                }
            }
        }
    }
    Ok(reply.with_status(code))
}

/// The `reference` of each item, echoed in batch results.
pub(super) fn reference(s: &str) -> Value {
    Value::String(s.to_string())
}
