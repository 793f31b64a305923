//! Token roles (`auth/token/roles/<name>`), and how one shapes a token created through
//! `auth/token/create/<name>`: the policies it may carry, orphan, renewable, its period,
//! explicit max TTL, use count and bound CIDRs, as OpenBao's token store applies them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::CreateRequest;
use crate::auth::TokenParams;
use crate::error::{EngineError, Result};
use crate::request_values::bool_from_json;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenRole {
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    /// Of the `token_*` fields, a token role takes the period, explicit max TTL, use
    /// count, bound CIDRs, type and `token_no_default_policy`.
    pub token: TokenParams,
}

/// The fields a role write takes.
pub const ROLE_FIELDS: &[&str] = &[
    "allowed_policies",
    "disallowed_policies",
    "allowed_policies_glob",
    "disallowed_policies_glob",
    "orphan",
    "renewable",
    "path_suffix",
    "token_period",
    "token_explicit_max_ttl",
    "token_num_uses",
    "token_bound_cidrs",
    "token_type",
    "token_no_default_policy",
    "token_strictly_bind_ip",
    "period",
    "explicit_max_ttl",
    "bound_cidrs",
];

/// go-glob, as OpenBao's `StrListContainsGlob` matches: `*` anywhere stands for any run.
fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    value.ends_with(last)
}

fn policy_list(v: &Value, name: &str) -> Result<Vec<String>> {
    Ok(crate::auth::policy_names(v, name)?
        .into_iter()
        .map(|p| p.to_lowercase())
        .collect())
}

impl TokenRole {
    /// Creates or updates from a write's fields; those not given are kept.
    pub fn update_from(&mut self, fields: &Map<String, Value>, creating: bool) -> Result<()> {
        if creating {
            self.renewable = true;
        }
        for (name, slot) in [
            ("allowed_policies", &mut self.allowed_policies),
            ("disallowed_policies", &mut self.disallowed_policies),
            ("allowed_policies_glob", &mut self.allowed_policies_glob),
            (
                "disallowed_policies_glob",
                &mut self.disallowed_policies_glob,
            ),
        ] {
            if let Some(v) = fields.get(name).filter(|v| !v.is_null()) {
                *slot = policy_list(v, name)?;
            }
        }
        for (name, slot) in [
            ("orphan", &mut self.orphan),
            ("renewable", &mut self.renewable),
        ] {
            if let Some(v) = fields.get(name).filter(|v| !v.is_null()) {
                *slot = bool_from_json(v)
                    .ok_or_else(|| EngineError::bad(format!("invalid '{name}': not a boolean")))?;
            }
        }
        if let Some(v) = fields.get("path_suffix").filter(|v| !v.is_null()) {
            let suffix = v
                .as_str()
                .ok_or_else(|| EngineError::bad("invalid 'path_suffix'"))?;
            if suffix.contains("..") {
                return Err(EngineError::bad(
                    "error registering path suffix: \"..\" is not allowed",
                ));
            }
            self.path_suffix = suffix.trim_matches('/').to_string();
        }
        self.token
            .update_from(fields, &["period", "explicit_max_ttl", "bound_cidrs"])
    }

    pub fn to_json(&self, name: &str) -> Value {
        let t = &self.token;
        let mut data = json!({
            "name": name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "allowed_entity_aliases": null,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "token_period": t.token_period,
            "period": t.token_period,
            "token_explicit_max_ttl": t.token_explicit_max_ttl,
            "explicit_max_ttl": t.token_explicit_max_ttl,
            "token_bound_cidrs": t.token_bound_cidrs,
            "bound_cidrs": t.token_bound_cidrs,
            "token_no_default_policy": t.token_no_default_policy,
            "token_type": t.token_type.as_str(),
        });
        if t.token_num_uses > 0 {
            data["token_num_uses"] = t.token_num_uses.into();
        }
        data
    }

    /// Applies the role to a create request from a caller holding `parent_policies`.
    pub fn shape(
        &self,
        name: &str,
        req: &mut CreateRequest,
        parent_policies: &[String],
    ) -> Result<()> {
        self.shape_policies(req, parent_policies)?;
        if self.orphan {
            req.no_parent = true;
        }
        if !self.renewable {
            req.renewable = Some(false);
        }
        let t = &self.token;
        let lesser = |asked: Option<u64>, role: u64| match (asked.filter(|a| *a > 0), role) {
            (a, 0) => a,
            (None, r) => Some(r),
            (Some(a), r) => Some(a.min(r)),
        };
        req.explicit_max_ttl = lesser(req.explicit_max_ttl, t.token_explicit_max_ttl);
        req.period = lesser(req.period, t.token_period);
        if t.token_num_uses > 0 && (req.num_uses == 0 || req.num_uses > t.token_num_uses) {
            req.num_uses = t.token_num_uses;
        }
        if !t.token_bound_cidrs.is_empty() {
            req.bound_cidrs = t.token_bound_cidrs.clone();
        }
        req.path = if self.path_suffix.is_empty() {
            format!("auth/token/create/{name}")
        } else {
            format!("auth/token/create/{name}/{}", self.path_suffix)
        };
        Ok(())
    }

    fn shape_policies(&self, req: &mut CreateRequest, parent_policies: &[String]) -> Result<()> {
        let restricts = !(self.allowed_policies.is_empty()
            && self.disallowed_policies.is_empty()
            && self.allowed_policies_glob.is_empty()
            && self.disallowed_policies_glob.is_empty());
        if !restricts {
            return Ok(());
        }
        let add_default = !req.no_default_policy
            && !self.token.token_no_default_policy
            && !self.disallowed_policies.iter().any(|p| p == "default")
            && !self
                .disallowed_policies_glob
                .iter()
                .any(|g| glob(g, "default"));
        let sanitize = |policies: &[String]| {
            let mut out: Vec<String> = policies
                .iter()
                .map(|p| p.trim().to_lowercase())
                .filter(|p| !p.is_empty())
                .collect();
            if add_default && !out.iter().any(|p| p == "default") {
                out.push("default".into());
            }
            out.sort();
            out.dedup();
            out
        };
        let mut policies = sanitize(&req.policies);
        if !self.allowed_policies.is_empty() || !self.allowed_policies_glob.is_empty() {
            let allowed = sanitize(&self.allowed_policies);
            if req.policies.is_empty() {
                policies = allowed;
            } else if let Some(p) = policies.iter().find(|p| {
                !allowed.contains(p) && !self.allowed_policies_glob.iter().any(|g| glob(g, p))
            }) {
                return Err(EngineError::bad(format!(
                    "token policies ({policies:?}) must be subset of the role's allowed policies ({allowed:?}) or glob policies ({:?}): {p:?} is not",
                    self.allowed_policies_glob
                )));
            }
        } else if req.policies.is_empty() {
            policies = sanitize(parent_policies);
        }
        if let Some(p) = policies.iter().find(|p| {
            self.disallowed_policies.contains(p)
                || self.disallowed_policies_glob.iter().any(|g| glob(g, p))
        }) {
            return Err(EngineError::bad(format!(
                "token policy {p:?} is disallowed by this role"
            )));
        }
        req.policies = policies;
        // The role decided the set: no default added on top, no subset of the parent.
        req.no_default_policy = true;
        req.policies_from_role = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_go_glob() {
        assert!(glob("app-*", "app-web"));
        assert!(glob("*-read", "kv-read"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxc"));
        assert!(glob("exact", "exact"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn a_role_with_allowed_policies_decides_the_set() {
        let role = TokenRole {
            allowed_policies: vec!["app".into()],
            disallowed_policies: vec!["admin".into()],
            renewable: true,
            ..Default::default()
        };
        let mut req = CreateRequest::default();
        role.shape("r", &mut req, &["root".into()]).unwrap();
        assert_eq!(req.policies, vec!["app", "default"]);
        assert_eq!(req.path, "auth/token/create/r");
        let mut req = CreateRequest {
            policies: vec!["admin".into()],
            ..Default::default()
        };
        let e = role.shape("r", &mut req, &[]).unwrap_err().to_string();
        assert!(e.contains("must be subset"), "{e}");
    }
}
