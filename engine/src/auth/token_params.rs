//! The `token_*` fields every role of every method takes (OpenBao's `tokenutil`), parsed
//! here once, and what they make of the token a login issues.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::cidr::parse_cidrs;
use crate::duration::duration_from_json;
use crate::error::{EngineError, Result};
use crate::request_values::{bool_from_json, list_from_text};
use crate::token::RoleTtls;

/// The token types a role or mount may name. Batch tokens are not issued here: naming
/// them is refused, never turned into service tokens silently.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum TokenType {
    #[default]
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "service")]
    Service,
    #[serde(rename = "default-service")]
    DefaultService,
}

impl TokenType {
    pub fn parse(s: &str) -> Result<TokenType> {
        match s {
            "" | "default" => Ok(TokenType::Default),
            "service" => Ok(TokenType::Service),
            "default-service" => Ok(TokenType::DefaultService),
            "batch" | "default-batch" => Err(EngineError::bad(format!(
                "'token_type' {s:?} is not supported: this appliance issues service tokens only"
            ))),
            other => Err(EngineError::bad(format!(
                "invalid 'token_type' value {other:?}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Default => "default",
            TokenType::Service => "service",
            TokenType::DefaultService => "default-service",
        }
    }
}

/// A role's token settings, as stored with the role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenParams {
    pub token_policies: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_explicit_max_ttl: u64,
    pub token_period: u64,
    pub token_num_uses: u32,
    pub token_no_default_policy: bool,
    /// Normalised CIDR blocks (`10.0.0.1` is stored as `10.0.0.1/32`).
    pub token_bound_cidrs: Vec<String>,
    pub token_type: TokenType,
}

impl TokenParams {
    /// The fields [`Self::update_from`] reads.
    pub const FIELDS: &'static [&'static str] = &[
        "token_policies",
        "token_ttl",
        "token_max_ttl",
        "token_explicit_max_ttl",
        "token_period",
        "token_num_uses",
        "token_no_default_policy",
        "token_bound_cidrs",
        "token_type",
        "token_strictly_bind_ip",
    ];

    /// Sets the fields `fields` gives, leaving the others, as a role update does. Each
    /// name in `legacy` (`policies`, `period`, `ttl`, `max_ttl`, `bound_cidrs`) is read
    /// as its `token_` field when that one is not given, as OpenBao upgrades them.
    pub fn update_from(&mut self, fields: &Map<String, Value>, legacy: &[&str]) -> Result<()> {
        let get = |name: &str| -> Option<&Value> {
            let modern = fields.get(name).filter(|v| !v.is_null());
            modern.or_else(|| {
                let old = name.strip_prefix("token_")?;
                if !legacy.contains(&old) {
                    return None;
                }
                fields.get(old).filter(|v| !v.is_null())
            })
        };
        let duration = |name: &str| -> Result<Option<u64>> {
            get(name)
                .map(|v| {
                    duration_from_json(v)
                        .map_err(|e| EngineError::bad(format!("invalid '{name}': {e}")))
                })
                .transpose()
        };
        if let Some(v) = get("token_policies") {
            self.token_policies = normalise_policies(list(v, "token_policies")?);
        }
        if let Some(v) = get("token_bound_cidrs") {
            self.token_bound_cidrs = parse_cidrs(&list(v, "token_bound_cidrs")?)?;
        }
        if let Some(ttl) = duration("token_ttl")? {
            self.token_ttl = ttl;
        }
        if let Some(ttl) = duration("token_max_ttl")? {
            self.token_max_ttl = ttl;
        }
        if let Some(ttl) = duration("token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = ttl;
        }
        if let Some(p) = duration("token_period")? {
            self.token_period = p;
        }
        if let Some(v) = get("token_no_default_policy") {
            self.token_no_default_policy = bool_from_json(v).ok_or_else(|| {
                EngineError::bad("invalid 'token_no_default_policy': not a boolean")
            })?;
        }
        if let Some(v) = get("token_num_uses") {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| EngineError::bad("invalid 'token_num_uses': not an integer"))?;
            if n < 0 {
                return Err(EngineError::bad("'token_num_uses' cannot be negative"));
            }
            self.token_num_uses =
                u32::try_from(n).map_err(|_| EngineError::bad("'token_num_uses' is too large"))?;
        }
        if let Some(v) = get("token_type") {
            let s = v
                .as_str()
                .ok_or_else(|| EngineError::bad("invalid 'token_type': not a string"))?;
            self.token_type = TokenType::parse(s)?;
        }
        if let Some(v) = get("token_strictly_bind_ip") {
            if bool_from_json(v) != Some(false) {
                return Err(EngineError::bad(
                    "'token_strictly_bind_ip' is not supported by this appliance: bind tokens with 'token_bound_cidrs'",
                ));
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(EngineError::bad(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }

    /// The TTLs a token gets from these settings, at login and at each renewal.
    pub fn role_ttls(&self) -> RoleTtls {
        RoleTtls {
            ttl: self.token_ttl,
            max_ttl: self.token_max_ttl,
            period: self.token_period,
        }
    }

    /// The fields as a role read shows them.
    pub fn to_json(&self, out: &mut Map<String, Value>) {
        let fields = json!({
            "token_policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_period": self.token_period,
            "token_num_uses": self.token_num_uses,
            "token_no_default_policy": self.token_no_default_policy,
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_type": self.token_type.as_str(),
            "token_strictly_bind_ip": false,
        });
        if let Value::Object(m) = fields {
            out.extend(m);
        }
    }
}

/// Policies as Vault keeps them: trimmed, lower case, without empties or repeats.
pub(crate) fn normalise_policies(policies: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = policies
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A list given as a JSON array or a comma-separated string.
pub(crate) fn list(v: &Value, name: &str) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(list_from_text(s)),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.trim().to_string()),
                _ => Err(EngineError::bad(format!(
                    "invalid '{name}': not a list of strings"
                ))),
            })
            .filter(|s| !matches!(s, Ok(s) if s.is_empty()))
            .collect(),
        _ => Err(EngineError::bad(format!("invalid '{name}': not a list"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(fields: Value, legacy: &[&str]) -> Result<TokenParams> {
        let mut p = TokenParams::default();
        let Value::Object(m) = fields else {
            unreachable!()
        };
        p.update_from(&m, legacy)?;
        Ok(p)
    }

    #[test]
    fn parses_every_field_and_the_legacy_names() {
        let p = update(
            json!({"token_policies": "B, a", "token_ttl": "1h", "token_max_ttl": 7200,
                   "token_num_uses": "3", "token_bound_cidrs": ["10.0.0.1", "10.1.0.0/16"],
                   "period": "5m"}),
            &["period"],
        )
        .unwrap();
        assert_eq!(p.token_policies, vec!["a", "b"]);
        assert_eq!(
            (p.token_ttl, p.token_max_ttl, p.token_period),
            (3600, 7200, 300)
        );
        assert_eq!(p.token_num_uses, 3);
        assert_eq!(p.token_bound_cidrs, vec!["10.0.0.1/32", "10.1.0.0/16"]);
        // A legacy name the method does not take is not read.
        assert_eq!(
            update(json!({"period": "5m"}), &[]).unwrap().token_period,
            0
        );
    }

    #[test]
    fn refuses_what_cannot_be_honoured() {
        for (fields, needle) in [
            (json!({"token_type": "batch"}), "not supported"),
            (json!({"token_type": "nope"}), "invalid 'token_type'"),
            (
                json!({"token_ttl": 10, "token_max_ttl": 5}),
                "cannot be greater",
            ),
            (json!({"token_num_uses": -1}), "cannot be negative"),
            (json!({"token_bound_cidrs": "300.0.0.0/8"}), "CIDR"),
            (json!({"token_strictly_bind_ip": true}), "not supported"),
        ] {
            let e = update(fields.clone(), &[]).unwrap_err().to_string();
            assert!(e.contains(needle), "{fields}: {e}");
        }
    }
}
