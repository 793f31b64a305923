//! The ACL granted by a set of policies, and Vault's rules for which pattern governs a
//! path: an exact pattern wins; among wildcard patterns the most specific one does.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use super::{Capabilities, Operation, Policy};

#[derive(Debug, Clone)]
struct WildRule {
    pattern: String,
    segments: Vec<String>,
    glob: bool,
    caps: Capabilities,
}

#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Capabilities>,
    wild: Vec<WildRule>,
}

/// The position of the first `+` or `*`, or the length for a pattern without one.
fn first_wildcard(p: &str) -> usize {
    p.find(['+', '*']).unwrap_or(p.len())
}

fn plus_count(p: &str) -> usize {
    p.split('/').filter(|s| *s == "+").count()
}

/// Vault's priority rules ("Priority matching" in its policy docs): Greater means `a`
/// governs over `b`.
fn priority(a: &str, b: &str) -> Ordering {
    first_wildcard(a)
        .cmp(&first_wildcard(b))
        .then_with(|| b.ends_with('*').cmp(&a.ends_with('*')))
        .then_with(|| plus_count(b).cmp(&plus_count(a)))
        .then_with(|| a.len().cmp(&b.len()))
        .then_with(|| a.cmp(b))
}

impl WildRule {
    fn new(pattern: String, caps: Capabilities) -> Self {
        let glob = pattern.ends_with('*');
        let body = pattern.trim_end_matches('*');
        WildRule {
            segments: body.split('/').map(String::from).collect(),
            pattern,
            glob,
            caps,
        }
    }

    fn matches(&self, path: &str) -> bool {
        if !self.pattern.contains('+') {
            // A plain glob is a prefix match.
            return path.starts_with(&self.pattern[..self.pattern.len() - 1]);
        }
        let parts: Vec<&str> = path.split('/').collect();
        let n = self.segments.len();
        if parts.len() < n || (!self.glob && parts.len() != n) {
            return false;
        }
        for (i, seg) in self.segments.iter().enumerate() {
            let part = parts[i];
            let last = i == n - 1;
            let ok = if seg == "+" {
                !part.is_empty() || last && self.glob
            } else if last && self.glob {
                part.starts_with(seg.as_str())
            } else {
                part == seg
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

impl Acl {
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let mut exact: HashMap<String, Capabilities> = HashMap::new();
        let mut wild: HashMap<String, Capabilities> = HashMap::new();
        for rule in policies.iter().flat_map(|p| p.rules.iter()) {
            let target = if rule.pattern.contains(['*', '+']) {
                &mut wild
            } else {
                &mut exact
            };
            let slot = target.entry(rule.pattern.clone()).or_default();
            *slot = slot.union(rule.capabilities);
        }
        let mut wild: Vec<WildRule> = wild.into_iter().map(|(p, c)| WildRule::new(p, c)).collect();
        // Most specific first, so the first match governs.
        wild.sort_by(|a, b| priority(&b.pattern, &a.pattern));
        Acl {
            root: false,
            exact,
            wild,
        }
    }

    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Default::default()
        }
    }

    /// What the caller may do on `path`; `Capabilities::DENY` or empty when nothing.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        if let Some(c) = self.exact.get(path) {
            return c.effective();
        }
        self.wild
            .iter()
            .find(|r| r.matches(path))
            .map(|r| r.caps.effective())
            .unwrap_or(Capabilities::NONE)
    }

    pub fn allows(&self, path: &str, op: Operation) -> bool {
        self.capabilities(path).allows(op)
    }

    pub fn has_sudo(&self, path: &str) -> bool {
        let c = self.capabilities(path);
        c.contains(Capabilities::ROOT)
            || (c.contains(Capabilities::SUDO) && !c.contains(Capabilities::DENY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_POLICY;

    fn acl(texts: &[&str]) -> Acl {
        let policies: Vec<Arc<Policy>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Policy::parse(&format!("p{i}"), t).unwrap()))
            .collect();
        Acl::new(&policies)
    }

    fn caps(a: &Acl, path: &str) -> Vec<&'static str> {
        a.capabilities(path).names()
    }

    #[test]
    fn exact_glob_and_segment_wildcards() {
        let a = acl(&[r#"
            path "secret/data/app/*" { capabilities = ["read"] }
            path "secret/data/app/exact" { capabilities = ["update"] }
            path "secret/data/+/shared" { capabilities = ["list"] }
        "#]);
        assert_eq!(caps(&a, "secret/data/app/x"), vec!["read"]);
        assert_eq!(caps(&a, "secret/data/app/exact"), vec!["update"]);
        assert_eq!(caps(&a, "secret/data/team/shared"), vec!["list"]);
        assert!(caps(&a, "secret/data/team/other").is_empty());
        assert!(caps(&a, "secret/data/team/shared/deeper").is_empty());
        assert!(a.allows("secret/data/app/x", Operation::Read));
        assert!(!a.allows("secret/data/app/x", Operation::Update));
        assert!(!a.allows("secret/data/db/x", Operation::Read));
    }

    #[test]
    fn vaults_priority_rules() {
        // The later first wildcard wins.
        let a = acl(&[r#"
            path "secret/*" { capabilities = ["read"] }
            path "secret/data/*" { capabilities = ["update"] }
        "#]);
        assert_eq!(caps(&a, "secret/data/x"), vec!["update"]);
        // Equal wildcard position: the one not ending in * wins.
        let a = acl(&[r#"
            path "secret/+/x" { capabilities = ["read"] }
            path "secret/+/x*" { capabilities = ["update"] }
        "#]);
        assert_eq!(caps(&a, "secret/a/x"), vec!["read"]);
        // Fewer + segments win.
        let a = acl(&[r#"
            path "secret/+/+/x" { capabilities = ["read"] }
            path "secret/+/b/x" { capabilities = ["update"] }
        "#]);
        assert_eq!(caps(&a, "secret/a/b/x"), vec!["update"]);
        // Last, the lexicographically greater pattern.
        let a = acl(&[r#"
            path "secret/+/+/x" { capabilities = ["read"] }
            path "secret/+/b/+" { capabilities = ["update"] }
        "#]);
        assert_eq!(caps(&a, "secret/a/b/x"), vec!["update"]);
        // Longer wins.
        let a = acl(&[r#"
            path "secret/+/ab*" { capabilities = ["read"] }
            path "secret/+/a*" { capabilities = ["update"] }
        "#]);
        assert_eq!(caps(&a, "secret/z/abc"), vec!["read"]);
    }

    #[test]
    fn union_across_policies_and_deny() {
        let a = acl(&[
            r#"path "kv/*" { capabilities = ["read"] }"#,
            r#"path "kv/*" { capabilities = ["list"] }"#,
        ]);
        assert_eq!(caps(&a, "kv/x"), vec!["read", "list"]);
        let a = acl(&[
            r#"path "kv/*" { capabilities = ["read"] }"#,
            r#"path "kv/*" { capabilities = ["deny"] }"#,
        ]);
        assert_eq!(caps(&a, "kv/x"), vec!["deny"]);
        assert!(!a.allows("kv/x", Operation::Read));
        let a = acl(&[r#"
            path "kv/*" { capabilities = ["read", "sudo"] }
            path "kv/secret" { capabilities = ["deny"] }
        "#]);
        assert!(a.has_sudo("kv/x"));
        assert!(!a.has_sudo("kv/secret"));
    }

    #[test]
    fn default_policy_and_root() {
        let a = acl(&[DEFAULT_POLICY]);
        assert!(a.allows("auth/token/lookup-self", Operation::Read));
        assert!(a.allows("auth/token/renew-self", Operation::Update));
        assert!(!a.allows("secret/data/x", Operation::Read));
        let r = Acl::root();
        assert_eq!(r.capabilities("anything").names(), vec!["root"]);
        assert!(r.has_sudo("sys/seal"));
    }

    #[test]
    fn parse_errors_and_forms() {
        assert!(matches!(
            Policy::parse("p", r#"path "a" { capabilities = ["reed"] }"#),
            Err(crate::policy::PolicyError::UnknownCapability(_))
        ));
        assert!(Policy::parse("p", r#"path "a*b" { capabilities = ["read"] }"#).is_err());
        assert!(Policy::parse("p", r#"path "a" { capabilitiez = ["read"] }"#).is_err());
        assert!(Policy::parse("p", "path \"a\" {").is_err());
        let p = Policy::parse("p", r#"path "a/*" { policy = "write" }"#).unwrap();
        assert!(p.rules[0].capabilities.contains(Capabilities::UPDATE));
        let j = Policy::parse("p", r#"{"path": {"a/*": {"capabilities": ["read"]}}}"#).unwrap();
        assert_eq!(j.rules[0].pattern, "a/*");
        assert!(crate::policy::validate_name("app-read").is_ok());
        assert!(crate::policy::validate_name("Bad Name").is_err());
    }
}
