//! Parsing policies from Vault's HCL syntax or its JSON equivalent.

use hcl::{Body, Expression};
use serde_json::Value;
use thiserror::Error;

use super::Capabilities;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    #[error("failed to parse policy: invalid capability {0:?}")]
    UnknownCapability(String),
    #[error("failed to parse policy: path {path:?}: {message}")]
    BadPath { path: String, message: String },
    #[error("invalid policy name {0:?}: use letters, digits, '-', '_', '.' and '/'")]
    BadName(String),
}

/// One `path` block.
#[derive(Debug, Clone)]
pub struct PathRule {
    pub pattern: String,
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub raw: String,
    pub rules: Vec<PathRule>,
}

/// Keys Vault accepts in a path block. Only `capabilities` and `policy` grant anything;
/// the parameter and wrapping constraints are accepted so Vault policies load unchanged.
const KNOWN_KEYS: &[&str] = &[
    "capabilities",
    "policy",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

fn shorthand(policy: &str) -> Result<Capabilities, PolicyError> {
    use Capabilities as C;
    let write = C::CREATE
        .union(C::READ)
        .union(C::UPDATE)
        .union(C::PATCH)
        .union(C::DELETE)
        .union(C::LIST);
    match policy {
        "deny" => Ok(C::DENY),
        "read" => Ok(C::READ.union(C::LIST)),
        "write" => Ok(write),
        "sudo" => Ok(write.union(C::SUDO)),
        other => Err(PolicyError::UnknownCapability(other.to_string())),
    }
}

fn validate_pattern(pattern: &str) -> Result<(), PolicyError> {
    let bad = |message: &str| PolicyError::BadPath {
        path: pattern.to_string(),
        message: message.to_string(),
    };
    if let Some(i) = pattern.find('*') {
        if i != pattern.len() - 1 {
            return Err(bad("a glob '*' may only end a path"));
        }
    }
    for seg in pattern.trim_end_matches('*').split('/') {
        if seg.contains('+') && seg != "+" {
            return Err(bad("a '+' wildcard must be a whole path segment"));
        }
    }
    Ok(())
}

fn rule(pattern: &str, caps: Vec<String>, short: Option<String>) -> Result<PathRule, PolicyError> {
    let pattern = pattern.trim_start_matches('/').to_string();
    validate_pattern(&pattern)?;
    let mut capabilities = Capabilities::from_names(&caps)?;
    if let Some(s) = short {
        capabilities = capabilities.union(shorthand(&s.to_lowercase())?);
    }
    if caps.is_empty() && capabilities.is_empty() {
        return Err(PolicyError::BadPath {
            path: pattern,
            message: "no capabilities given".into(),
        });
    }
    Ok(PathRule {
        pattern,
        capabilities,
    })
}

fn string_list(e: &Expression, key: &str) -> Result<Vec<String>, PolicyError> {
    match e {
        Expression::Array(items) => items
            .iter()
            .map(|i| match i {
                Expression::String(s) => Ok(s.clone()),
                _ => Err(PolicyError::Syntax(format!(
                    "{key} must be a list of strings"
                ))),
            })
            .collect(),
        _ => Err(PolicyError::Syntax(format!(
            "{key} must be a list of strings"
        ))),
    }
}

fn parse_hcl(text: &str) -> Result<Vec<PathRule>, PolicyError> {
    let body: Body = hcl::parse(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    if let Some(attr) = body.attributes().find(|a| a.key() != "name") {
        return Err(PolicyError::Syntax(format!("invalid key {:?}", attr.key())));
    }
    let mut rules = Vec::new();
    for block in body.blocks() {
        if block.identifier() != "path" {
            return Err(PolicyError::Syntax(format!(
                "invalid key {:?}: a policy holds path blocks",
                block.identifier()
            )));
        }
        let [label] = block.labels() else {
            return Err(PolicyError::Syntax("a path block needs one path".into()));
        };
        let pattern = label.as_str();
        let mut caps = Vec::new();
        let mut short = None;
        for attr in block.body().attributes() {
            match attr.key() {
                "capabilities" => caps = string_list(attr.expr(), "capabilities")?,
                "policy" => match attr.expr() {
                    Expression::String(s) => short = Some(s.clone()),
                    _ => return Err(PolicyError::Syntax("policy must be a string".into())),
                },
                k if KNOWN_KEYS.contains(&k) => {}
                k => {
                    return Err(PolicyError::BadPath {
                        path: pattern.to_string(),
                        message: format!("invalid key {k:?}"),
                    })
                }
            }
        }
        if let Some(b) = block
            .body()
            .blocks()
            .find(|b| !KNOWN_KEYS.contains(&b.identifier()))
        {
            return Err(PolicyError::BadPath {
                path: pattern.to_string(),
                message: format!("invalid key {:?}", b.identifier()),
            });
        }
        rules.push(rule(pattern, caps, short)?);
    }
    Ok(rules)
}

/// Vault's JSON form: `{"path": {"secret/*": {"capabilities": ["read"]}}}`.
fn parse_json(text: &str) -> Result<Vec<PathRule>, PolicyError> {
    let v: Value = serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    let paths = v
        .get("path")
        .and_then(Value::as_object)
        .ok_or_else(|| PolicyError::Syntax("a JSON policy holds a \"path\" object".into()))?;
    let mut rules = Vec::new();
    for (pattern, body) in paths {
        let caps = match body.get("capabilities") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(String::from)
                        .ok_or_else(|| PolicyError::Syntax("capabilities must be strings".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(PolicyError::Syntax("capabilities must be a list".into())),
        };
        let short = body.get("policy").and_then(Value::as_str).map(String::from);
        rules.push(rule(pattern, caps, short)?);
    }
    Ok(rules)
}

impl Policy {
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let rules = if text.trim_start().starts_with('{') {
            parse_json(text)?
        } else {
            parse_hcl(text)?
        };
        Ok(Policy {
            name: name.to_string(),
            raw: text.to_string(),
            rules,
        })
    }
}

pub fn validate_name(name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_./@".contains(&b))
        && !name.starts_with('/')
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(PolicyError::BadName(name.to_string()))
    }
}
