//! One `path` block, checked the way Vault checks it. HCL and JSON policies both arrive
//! here as JSON values, so the two syntaxes cannot drift apart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Capabilities, PolicyError};

/// Keys Vault accepts in a path block. Those naming a constraint this appliance cannot
/// enforce (MFA, control groups, event subscriptions) are recognised so the refusal can
/// say why, rather than calling them unknown.
const VALID_KEYS: &[&str] = &[
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

/// One `path` block.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// As written, less one leading `/`; a trailing `*` and `+` segments are wildcards.
    pub pattern: String,
    pub capabilities: Capabilities,
    /// Parameter names are lowercased, as Vault does.
    pub allowed_parameters: Option<BTreeMap<String, Vec<Value>>>,
    pub denied_parameters: Option<BTreeMap<String, Vec<Value>>>,
    pub required_parameters: Vec<String>,
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
    /// Keys set to something the appliance cannot enforce, with why. A policy write with
    /// any is refused; a stored one (from before they were refused) denies every request
    /// its rule governs, so it fails closed.
    pub unenforceable: Vec<(&'static str, &'static str)>,
}

/// Why each key that would constrain requests cannot be honoured here.
const UNENFORCEABLE: &[(&str, &str)] = &[
    (
        "mfa_methods",
        "per-path MFA (a Vault Enterprise feature) is not supported on this appliance",
    ),
    (
        "control_group",
        "control groups (a Vault Enterprise feature) are not supported on this appliance",
    ),
    (
        "subscribe_event_types",
        "event subscriptions are not supported on this appliance",
    ),
];

/// Whether `key`'s value asks for anything: an empty list is Vault's "no constraint",
/// which is harmless to accept.
fn constrains(key: &str, v: &Value) -> bool {
    match (key, v) {
        (_, Value::Null) => false,
        ("control_group", _) => true,
        (_, Value::Array(items)) => !items.is_empty(),
        (_, Value::String(s)) => !s.is_empty(),
        _ => true,
    }
}

/// What a block's `policy = "..."` shorthand stands for, in Vault's words. `write` predates
/// `patch` and, as in Vault, does not include it.
fn shorthand(path: &str, policy: &str) -> Result<Capabilities, PolicyError> {
    use Capabilities as C;
    let write = C::CREATE
        .union(C::READ)
        .union(C::UPDATE)
        .union(C::DELETE)
        .union(C::LIST);
    match policy.trim().to_ascii_lowercase().as_str() {
        "deny" => Ok(C::DENY),
        "read" => Ok(C::READ.union(C::LIST)),
        "write" => Ok(write),
        "sudo" => Ok(write.union(C::SUDO)),
        _ => Err(PolicyError::bad_path(
            path,
            format!("invalid policy {policy:?} (expected read, write, sudo or deny)"),
        )),
    }
}

/// Patterns Vault would accept but that can never do what their author meant.
fn check_pattern(pattern: &str) -> Result<(), PolicyError> {
    if let Some(i) = pattern.find('*') {
        if i != pattern.len() - 1 {
            // Vault takes such a '*' literally, so the rule silently never matches.
            return Err(PolicyError::bad_path(
                pattern,
                "'*' is only a wildcard as the last character; use '+' for one path segment",
            ));
        }
    }
    if pattern.contains("+*") {
        return Err(PolicyError::bad_path(
            pattern,
            "invalid use of wildcards ('+*' is forbidden)",
        ));
    }
    let mut rest = pattern;
    while let Some(open) = rest.find("{{") {
        match rest[open..].find("}}") {
            Some(close) => rest = &rest[open + close + 2..],
            None => {
                return Err(PolicyError::bad_path(
                    pattern,
                    "failed to validate policy templating: unclosed '{{'",
                ))
            }
        }
    }
    Ok(())
}

fn string_list(path: &str, key: &str, v: &Value) -> Result<Vec<String>, PolicyError> {
    let not_strings = || PolicyError::bad_path(path, format!("{key} must be a list of strings"));
    match v {
        // HCL1, which Vault parses policies with, turns a lone string into a list.
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(not_strings))
            .collect(),
        _ => Err(not_strings()),
    }
}

fn parameters(
    path: &str,
    key: &str,
    v: &Value,
) -> Result<BTreeMap<String, Vec<Value>>, PolicyError> {
    let Value::Object(map) = v else {
        return Err(PolicyError::bad_path(
            path,
            format!("{key} must be a map of parameter names to lists of values"),
        ));
    };
    Ok(map
        .iter()
        .map(|(k, v)| {
            let values = match v {
                Value::Array(items) => items.clone(),
                Value::Null => Vec::new(),
                other => vec![other.clone()],
            };
            (k.to_lowercase(), values)
        })
        .collect())
}

/// Vault's `ParseDurationSecond`: a number of seconds, `"<n>d"`, or a Go duration such as
/// `"1h30m"`.
pub(crate) fn parse_duration(v: &Value) -> Result<Duration, String> {
    let s = match v {
        Value::Number(n) => {
            return n
                .as_f64()
                .and_then(|f| Duration::try_from_secs_f64(f).ok())
                .ok_or_else(|| format!("invalid duration {n}"));
        }
        Value::String(s) => s.trim(),
        other => return Err(format!("invalid duration {other}")),
    };
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if let Some(days) = s.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("invalid duration {s:?}"));
    }
    go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

fn go_duration(s: &str) -> Option<Duration> {
    const UNITS: [(&str, f64); 8] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("μs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let mut rest = s.strip_prefix('+').filter(|r| !r.is_empty()).unwrap_or(s);
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        // The longest unit that fits, or "ms" would read as "m" followed by garbage.
        let (unit, scale) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn ttl(path: &str, key: &str, v: &Value) -> Result<Duration, PolicyError> {
    parse_duration(v).map_err(|e| PolicyError::bad_path(path, format!("error parsing {key}: {e}")))
}

/// Builds the rule for `path "<pattern>" { <keys> }`. `None` for an identity-templated
/// path: Ironseal has no identity entities, and Vault skips templated paths for tokens
/// without one.
pub(crate) fn build(
    pattern: &str,
    keys: &BTreeMap<String, Value>,
) -> Result<Option<PathRule>, PolicyError> {
    let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
    check_pattern(pattern)?;
    if let Some(k) = keys.keys().find(|k| !VALID_KEYS.contains(&k.as_str())) {
        return Err(PolicyError::bad_path(pattern, format!("invalid key {k:?}")));
    }
    let caps = keys.get("capabilities");
    let short = keys.get("policy");
    if caps.is_none() && short.is_none() {
        return Err(PolicyError::bad_path(
            pattern,
            "no capabilities: add capabilities = [\"read\", ...] to the path block",
        ));
    }
    let mut capabilities = match caps {
        Some(v) => Capabilities::from_names(&string_list(pattern, "capabilities", v)?)
            .map_err(|e| e.in_path(pattern))?,
        None => Capabilities::NONE,
    };
    if let Some(short) = short {
        let Value::String(s) = short else {
            return Err(PolicyError::bad_path(pattern, "policy must be a string"));
        };
        capabilities = capabilities.union(shorthand(pattern, s)?).effective();
    }
    let params = |key| {
        keys.get(key)
            .map(|v| parameters(pattern, key, v))
            .transpose()
    };
    let ttl = |key| keys.get(key).map(|v| ttl(pattern, key, v)).transpose();
    let mut rule = PathRule {
        pattern: pattern.to_string(),
        capabilities,
        allowed_parameters: params("allowed_parameters")?,
        denied_parameters: params("denied_parameters")?,
        required_parameters: keys
            .get("required_parameters")
            .map(|v| string_list(pattern, "required_parameters", v))
            .transpose()?
            .unwrap_or_default(),
        min_wrapping_ttl: ttl("min_wrapping_ttl")?.filter(|d| !d.is_zero()),
        max_wrapping_ttl: ttl("max_wrapping_ttl")?.filter(|d| !d.is_zero()),
        unenforceable: UNENFORCEABLE
            .iter()
            .filter(|(k, _)| keys.get(*k).is_some_and(|v| constrains(k, v)))
            .copied()
            .collect(),
    };
    // Vault reads `"*"` as "any other parameter" whatever its list holds, so values there
    // would be silently dropped.
    let star_with_values = |map: &Option<BTreeMap<String, Vec<Value>>>| {
        map.as_ref()
            .and_then(|m| m.get("*"))
            .is_some_and(|values| !values.is_empty())
    };
    for (key, bad) in [
        (
            "allowed_parameters",
            star_with_values(&rule.allowed_parameters),
        ),
        (
            "denied_parameters",
            star_with_values(&rule.denied_parameters),
        ),
    ] {
        if bad {
            rule.unenforceable.push((
                key,
                "\"*\" stands for every parameter and takes only [] as its values",
            ));
        }
    }
    if let (Some(min), Some(max)) = (rule.min_wrapping_ttl, rule.max_wrapping_ttl) {
        if max < min {
            return Err(PolicyError::bad_path(
                pattern,
                "max_wrapping_ttl cannot be less than min_wrapping_ttl",
            ));
        }
    }
    Ok((!pattern.contains("{{")).then_some(rule))
}
