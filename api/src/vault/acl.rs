//! What the ACL sees of a `/v1` request: its parameters, so that `allowed_parameters`,
//! `denied_parameters` and `required_parameters` apply to every request that carries any.

use std::borrow::Cow;

use engine::policy::Operation;
use serde_json::{Map, Value};

use crate::request::VaultRequest;

/// The parameters the ACL checks. Vault takes the body of a write and the query of a
/// read; handlers here read a field from the body and fall back to the query whatever
/// the method (`VaultRequest::field`), so both count, or a query parameter could slip
/// past a constraint written for the body.
pub(crate) fn parameters(req: &VaultRequest) -> Cow<'_, Map<String, Value>> {
    if req.query.is_empty() {
        return Cow::Borrowed(&req.body);
    }
    let mut data = req.body.clone();
    for (name, value) in &req.query {
        // `?list=true` is the method of a list request, not one of its parameters.
        if req.op == Operation::List && name == "list" {
            continue;
        }
        data.entry(name.clone())
            .or_insert_with(|| Value::String(value.clone()));
    }
    Cow::Owned(data)
}
