//! The ACL granted by a set of policies, and Vault's rules for which pattern governs a
//! path: an exact pattern wins; among the others the most specific one does, and only
//! that one counts.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::permissions::Permissions;
use super::{Capabilities, Operation, Policy};

/// Vault's test: a `+` after a `/` (or a leading one) makes a pattern segment-matched,
/// and then each segment is compared whole, so a `+` inside a segment is literal.
fn is_segmented(pattern: &str) -> bool {
    pattern == "+" || pattern.contains("/+") || pattern.starts_with("+/")
}

/// A pattern with a wildcard, classified as Vault classifies it.
#[derive(Debug, Clone)]
struct WildRule {
    /// The pattern less its trailing `*`.
    stem: String,
    /// `stem` split on `/`; empty for a plain glob, which is a prefix match.
    segments: Vec<String>,
    glob: bool,
    /// Where the first wildcard sits: for a plain glob the `*`, otherwise the first `+`
    /// character, even one inside a segment (which Vault also measures from).
    first_wildcard: usize,
    plus_segments: usize,
    perms: Permissions,
}

impl WildRule {
    /// `None` for a pattern Vault matches exactly.
    fn new(pattern: &str, perms: Permissions) -> Option<WildRule> {
        let glob = pattern.ends_with('*');
        let stem = pattern.strip_suffix('*').unwrap_or(pattern);
        if is_segmented(pattern) {
            let segments: Vec<String> = stem.split('/').map(String::from).collect();
            Some(WildRule {
                plus_segments: segments.iter().filter(|s| *s == "+").count(),
                segments,
                stem: stem.to_string(),
                glob,
                first_wildcard: pattern.find('+').unwrap_or(stem.len()),
                perms,
            })
        } else if glob {
            Some(WildRule {
                stem: stem.to_string(),
                segments: Vec::new(),
                glob,
                first_wildcard: stem.len(),
                plus_segments: 0,
                perms,
            })
        } else {
            None
        }
    }

    /// `parts` is `path` split on `/`, done once per lookup rather than once per rule.
    fn matches(&self, path: &str, parts: &[&str]) -> bool {
        if self.segments.is_empty() {
            return path.starts_with(&self.stem);
        }
        let n = self.segments.len();
        if parts.len() < n || (!self.glob && parts.len() != n) {
            return false;
        }
        self.segments
            .iter()
            .zip(parts)
            .enumerate()
            .all(|(i, (seg, part))| {
                // A '+' takes any one segment, even an empty one, as in Vault.
                seg == "+"
                    || seg == part
                    || (self.glob && i == n - 1 && part.starts_with(seg.as_str()))
            })
    }

    /// Vault's "priority matching"; `Greater` means `self` governs over `other`:
    /// a later first wildcard, then not ending in `*`, then fewer `+` segments, then the
    /// longer pattern, then the lexicographically greater one.
    fn priority(&self, other: &WildRule) -> Ordering {
        self.first_wildcard
            .cmp(&other.first_wildcard)
            .then_with(|| other.glob.cmp(&self.glob))
            .then_with(|| other.plus_segments.cmp(&self.plus_segments))
            .then_with(|| self.stem.len().cmp(&other.stem.len()))
            .then_with(|| self.stem.cmp(&other.stem))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Permissions>,
    /// Highest priority first, so the first match is the one that governs.
    wild: Vec<WildRule>,
}

impl Acl {
    /// The union of `policies`. As in Vault, a policy named `root` makes this the root ACL.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        if policies.iter().any(|p| p.name == "root") {
            return Acl::root();
        }
        let mut exact: HashMap<String, Permissions> = HashMap::new();
        // Keyed by the pattern as written, so `kv/a` and `kv/a*` stay separate rules.
        let mut wild: HashMap<String, Permissions> = HashMap::new();
        for rule in policies.iter().flat_map(|p| p.rules.iter()) {
            let pattern = &rule.pattern;
            let target = if is_segmented(pattern) || pattern.ends_with('*') {
                &mut wild
            } else {
                &mut exact
            };
            match target.get_mut(pattern) {
                Some(perms) => perms.merge(rule),
                None => {
                    target.insert(pattern.clone(), Permissions::from_rule(rule));
                }
            }
        }
        let mut wild: Vec<WildRule> = wild
            .into_iter()
            .filter_map(|(p, perms)| WildRule::new(&p, perms))
            .collect();
        wild.sort_by(|a, b| b.priority(a));
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

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The rule governing `path`. `list` adds Vault's fallbacks for list requests, whose
    /// paths may carry a trailing `/` the policy was written without.
    fn lookup(&self, path: &str, list: bool) -> Option<&Permissions> {
        let path = path.trim_start_matches('/');
        let trimmed = path.strip_suffix('/');
        let exact = |p: &str| self.exact.get(p);
        let wild = |p: &str| {
            let parts: Vec<&str> = p.split('/').collect();
            self.wild
                .iter()
                .find(|r| r.matches(p, &parts))
                .map(|r| &r.perms)
        };
        exact(path)
            .or_else(|| trimmed.filter(|_| list).and_then(exact))
            .or_else(|| wild(path))
            .or_else(|| trimmed.filter(|_| list).and_then(wild))
    }

    /// What the caller may do on `path`: `ROOT` for root, `DENY` alone when the governing
    /// rule denies, empty when no rule matches. Like Vault's `sys/capabilities`, this
    /// applies the list fallbacks.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        self.lookup(path, true)
            .map(|p| p.caps.effective())
            .unwrap_or(Capabilities::NONE)
    }

    /// Whether a request may perform `op` on `path` carrying `data` (its body, or the query
    /// of a read): the governing rule must grant the capability, and the request must meet
    /// the rule's parameter constraints. Root skips both, as in Vault; `sudo` skips
    /// neither.
    pub fn allows(&self, path: &str, op: Operation, data: &Map<String, Value>) -> bool {
        self.allows_wrapped(path, op, data, None)
    }

    /// [`Acl::allows`] for a request asking for response wrapping with `wrap_ttl` (None:
    /// not wrapped), which must also meet the rule's `min_wrapping_ttl` and
    /// `max_wrapping_ttl`.
    pub fn allows_wrapped(
        &self,
        path: &str,
        op: Operation,
        data: &Map<String, Value>,
        wrap_ttl: Option<Duration>,
    ) -> bool {
        self.root
            || self.lookup(path, op == Operation::List).is_some_and(|p| {
                p.caps.allows(op) && p.admits_wrapping(wrap_ttl) && p.admits(op, data)
            })
    }

    pub fn has_sudo(&self, path: &str) -> bool {
        self.root || self.lookup(path, false).is_some_and(|p| p.caps.has_sudo())
    }
}
