//! How handlers read loosely typed request values. The ACL's parameter constraints must
//! see a value the way a handler will, so both read booleans and lists through here and
//! the two cannot drift apart.

use serde_json::Value;

/// The boolean a handler reads from `text`, or `None` when it is no boolean spelling.
/// These are Go's `strconv.ParseBool` spellings, which Vault's field parser accepts, plus
/// the empty string as false.
pub fn bool_from_text(text: &str) -> Option<bool> {
    match text {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Some(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" | "" => Some(false),
        _ => None,
    }
}

/// The boolean a handler reads from a JSON value: a boolean, a boolean spelling, or a
/// number (any number but zero is true). `None` for anything else, null included.
pub fn bool_from_json(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => bool_from_text(s),
        Value::Number(n) => Some(n.as_f64() != Some(0.0)),
        _ => None,
    }
}

/// The items a handler reads from a list given as a comma-separated string.
pub fn list_from_text(text: &str) -> Vec<String> {
    text.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}
