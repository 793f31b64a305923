//! `batch_input` as Vault reads it.

use engine::ops::transit::Items;
use engine::transit::{CipherItem, InputItem};
use engine::EngineError;
use serde_json::{Map, Value};

use super::i64_field;
use crate::error::ApiError;
use crate::request::VaultRequest;

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

/// A transit item as read from the request's own fields or from one `batch_input` entry.
trait Item: Sized {
    fn from_request(req: &VaultRequest) -> Result<Self, ApiError>;
    /// Reads the entry's fields; a field of the wrong type is recorded by the reader.
    fn from_entry(r: &mut ItemReader) -> Self;
    fn set_malformed(&mut self, malformed: Option<String>);
}

impl Item for CipherItem {
    fn from_request(req: &VaultRequest) -> Result<Self, ApiError> {
        Ok(CipherItem {
            plaintext: req.str_field("plaintext")?,
            ciphertext: req.str_field("ciphertext")?,
            context: req.str_field("context")?,
            key_version: i64_field(req, "key_version")?.unwrap_or(0),
            associated_data: req.str_field("associated_data")?,
            nonce: req.str_field("nonce")?,
            reference: String::new(),
            malformed: None,
        })
    }

    fn from_entry(r: &mut ItemReader) -> Self {
        CipherItem {
            plaintext: r.string("plaintext"),
            ciphertext: r.string("ciphertext"),
            context: r.string("context"),
            key_version: r.int("key_version"),
            associated_data: r.string("associated_data"),
            nonce: r.string("nonce"),
            reference: r.string("reference").unwrap_or_default(),
            malformed: None,
        }
    }

    fn set_malformed(&mut self, malformed: Option<String>) {
        self.malformed = malformed;
    }
}

impl Item for InputItem {
    fn from_request(req: &VaultRequest) -> Result<Self, ApiError> {
        Ok(InputItem {
            input: req.str_field("input")?,
            context: req.str_field("context")?,
            signature: req.str_field("signature")?,
            hmac: req.str_field("hmac")?,
            reference: String::new(),
            malformed: None,
        })
    }

    fn from_entry(r: &mut ItemReader) -> Self {
        InputItem {
            input: r.string("input"),
            context: r.string("context"),
            signature: r.string("signature"),
            hmac: r.string("hmac"),
            reference: r.string("reference").unwrap_or_default(),
            malformed: None,
        }
    }

    fn set_malformed(&mut self, malformed: Option<String>) {
        self.malformed = malformed;
    }
}

/// The request's `batch_input`, or one item made of the request's own fields.
fn items<T: Item>(req: &VaultRequest) -> Result<Items<T>, ApiError> {
    let Some(raw) = batch_array(req)? else {
        return Ok(Items {
            items: vec![T::from_request(req)?],
            batch: false,
        });
    };
    let items = raw
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = ItemReader::new(i, v)?;
            let mut item = T::from_entry(&mut r);
            item.set_malformed(r.malformed);
            Ok(item)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Items { items, batch: true })
}

/// The items of an encrypt, decrypt or rewrap request.
pub(super) fn cipher_items(req: &VaultRequest) -> Result<Items<CipherItem>, ApiError> {
    items(req)
}

/// The items of a sign, verify or hmac request.
pub(super) fn input_items(req: &VaultRequest) -> Result<Items<InputItem>, ApiError> {
    items(req)
}

/// The items of a decrypt or rewrap request; a request without `batch_input` needs a
/// ciphertext.
pub(super) fn ciphertexts(req: &VaultRequest) -> Result<Items<CipherItem>, EngineError> {
    let items = cipher_items(req)?;
    let missing = |i: &CipherItem| i.ciphertext.as_deref().unwrap_or("").is_empty();
    if !items.batch && items.items.iter().any(missing) {
        return Err(ApiError::bad("missing ciphertext to decrypt").into());
    }
    Ok(items)
}
