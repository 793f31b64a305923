//! Checks shared by every provider's `validate`: the fields an object holds, and the
//! locations the appliance may reach.

use serde_json::{Map, Value};

/// `object` (named `what` in messages: `providerMetadata`, `credentials`) holds every
/// `required` field as a non-empty string, optional ones only as strings, and nothing
/// else.
pub(crate) fn check_fields(
    what: &str,
    object: &Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
    {
        return Err(format!(
            "{what}.{unknown} is not a field this provider takes (it takes {})",
            required
                .iter()
                .chain(optional)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for name in required {
        match object.get(*name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(format!("{what}.{name} is required"))
            }
            Some(_) => return Err(format!("{what}.{name} must be a string")),
        }
    }
    for name in optional {
        match object.get(*name) {
            None | Some(Value::String(_)) => {}
            Some(_) => return Err(format!("{what}.{name} must be a string")),
        }
    }
    Ok(())
}
