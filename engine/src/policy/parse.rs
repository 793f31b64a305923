//! Policies from Vault's HCL syntax or its JSON equivalent, and policy names.

use std::collections::BTreeMap;

use hcl::{Body, Expression, ObjectKey};
use serde_json::{Map, Value};

use super::rule::{self, PathRule};
use super::PolicyError;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// The text as written, for `sys/policy` reads.
    pub raw: String,
    pub rules: Vec<PathRule>,
    /// Whether some paths used identity templating and were left out (see `rule::build`).
    pub templated: bool,
}

/// Each `path` block as its pattern and its keys.
type PathBlocks = Vec<(String, BTreeMap<String, Value>)>;

impl Policy {
    /// Parses a policy being written: besides what [`Policy::load`] checks, refuses any
    /// constraint the appliance cannot enforce, so a policy that loads means what it says.
    pub fn parse(name: &str, hcl_text: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::load(name, hcl_text)?;
        if let Some((rule, (key, why))) = policy
            .rules
            .iter()
            .find_map(|r| r.unenforceable.first().map(|u| (r, *u)))
        {
            return Err(PolicyError::bad_path(
                &rule.pattern,
                format!("{key} cannot be enforced: {why}; remove it from the path block"),
            ));
        }
        Ok(policy)
    }

    /// Parses a stored policy. One stored before unenforceable constraints were refused
    /// still loads, and the rules carrying them deny every request they govern.
    pub fn load(name: &str, hcl_text: &str) -> Result<Policy, PolicyError> {
        // Neither an HCL body nor a comment can begin with '{'.
        let blocks = if hcl_text.trim_start().starts_with('{') {
            json_blocks(hcl_text)?
        } else {
            hcl_blocks(hcl_text)?
        };
        let mut rules = Vec::with_capacity(blocks.len());
        let mut templated = false;
        for (pattern, keys) in &blocks {
            match rule::build(pattern, keys)? {
                Some(r) => rules.push(r),
                None => templated = true,
            }
        }
        Ok(Policy {
            name: name.to_string(),
            raw: hcl_text.to_string(),
            rules,
            templated,
        })
    }
}

fn hcl_blocks(text: &str) -> Result<PathBlocks, PolicyError> {
    crate::hcl_bounds::check(text).map_err(|e| PolicyError::Syntax {
        line: e.line(),
        column: 1,
        message: e.to_string(),
    })?;
    let body: Body = hcl::parse(text).map_err(|e| match e {
        hcl::Error::Parse(p) => PolicyError::Syntax {
            line: p.location().line(),
            column: p.location().column(),
            message: p.message().to_string(),
        },
        other => PolicyError::Invalid(other.to_string()),
    })?;
    if let Some(attr) = body.attributes().find(|a| a.key() != "name") {
        return Err(invalid_key(attr.key()));
    }
    let mut blocks = Vec::new();
    for block in body.blocks() {
        if block.identifier() != "path" {
            return Err(invalid_key(block.identifier()));
        }
        let [label] = block.labels() else {
            return Err(PolicyError::Invalid(
                "a path block takes exactly one path: path \"secret/*\" { ... }".into(),
            ));
        };
        let pattern = label.as_str();
        let keys = body_to_map(block.body()).map_err(|m| PolicyError::bad_path(pattern, m))?;
        blocks.push((pattern.to_string(), keys.into_iter().collect()));
    }
    Ok(blocks)
}

fn invalid_key(key: &str) -> PolicyError {
    PolicyError::Invalid(format!(
        "invalid key {key:?}: a policy holds path \"...\" {{ ... }} blocks and an optional name"
    ))
}

/// A block body as a JSON object; nested blocks (`allowed_parameters { ... }`, HCL1 style)
/// become objects keyed by their labels.
fn body_to_map(body: &Body) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for attr in body.attributes() {
        out.insert(attr.key().to_string(), expr_to_json(attr.expr())?);
    }
    for block in body.blocks() {
        let mut value = Value::Object(body_to_map(block.body())?);
        for label in block.labels().iter().rev() {
            value = Value::Object(Map::from_iter([(label.as_str().to_string(), value)]));
        }
        let slot = out
            .entry(block.identifier().to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match (slot, value) {
            (Value::Object(existing), Value::Object(new)) => existing.extend(new),
            (slot, value) => *slot = value,
        }
    }
    Ok(out)
}

/// Policies are data: literals only, no variables, functions or interpolation.
fn expr_to_json(e: &Expression) -> Result<Value, String> {
    Ok(match e {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => serde_json::to_value(n).map_err(|e| e.to_string())?,
        Expression::String(s) => Value::String(s.clone()),
        Expression::Array(items) => items.iter().map(expr_to_json).collect::<Result<_, _>>()?,
        Expression::Object(obj) => obj
            .iter()
            .map(|(k, v)| Ok((object_key(k)?, expr_to_json(v)?)))
            .collect::<Result<Map<_, _>, String>>()?
            .into(),
        Expression::Parenthesis(inner) => expr_to_json(inner)?,
        _ => {
            return Err(
                "values must be literal strings, numbers, lists or maps (no variables, \
                 function calls or interpolation)"
                    .into(),
            )
        }
    })
}

fn object_key(k: &ObjectKey) -> Result<String, String> {
    match k {
        ObjectKey::Identifier(i) => Ok(i.to_string()),
        ObjectKey::Expression(Expression::String(s)) => Ok(s.clone()),
        _ => Err("map keys must be names or quoted strings".into()),
    }
}

/// Vault's JSON form: `{"path": {"secret/*": {"capabilities": ["read"]}}}`, or HCL1's
/// `"path": [{"secret/*": {...}}, ...]` for repeated patterns.
fn json_blocks(text: &str) -> Result<PathBlocks, PolicyError> {
    let v: Value = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Value::Object(top) = v else {
        return Err(PolicyError::Invalid("a JSON policy is an object".into()));
    };
    if let Some(k) = top.keys().find(|k| *k != "name" && *k != "path") {
        return Err(invalid_key(k));
    }
    let groups: Vec<&Map<String, Value>> = match top.get("path") {
        None => Vec::new(),
        Some(Value::Object(m)) => vec![m],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_object().ok_or_else(json_shape))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(json_shape()),
    };
    let mut blocks = Vec::new();
    for (pattern, body) in groups.into_iter().flatten() {
        let Value::Object(keys) = body else {
            return Err(PolicyError::bad_path(
                pattern,
                "a path's rules are an object",
            ));
        };
        blocks.push((pattern.clone(), keys.clone().into_iter().collect()));
    }
    Ok(blocks)
}

fn json_shape() -> PolicyError {
    PolicyError::Invalid(
        "\"path\" maps each path to its rules: {\"path\": {\"secret/*\": {\"capabilities\": \
         [\"read\"]}}}"
            .into(),
    )
}

/// Policy names as stored: lowercase (callers lowercase first, as Vault does), and safe
/// to use as a storage key and a URL segment.
pub fn validate_name(name: &str) -> Result<(), PolicyError> {
    let bad = |reason| {
        Err(PolicyError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a policy needs a name");
    }
    if name == "root" {
        return Err(PolicyError::Immutable(name.to_string()));
    }
    if name.len() > 128 {
        return bad("names are at most 128 characters");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("policy names are lowercase");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.@/".contains(&b))
    {
        return bad("use lowercase letters, digits, '-', '_', '.', '@' and '/'");
    }
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("'/' must separate non-empty segments other than '.' and '..'");
    }
    Ok(())
}
