//! What the rules written for one pattern grant once merged across policies, and the check
//! of a request's parameters against them: Vault's `ACLPermissions`, its merge in `NewACL`
//! and the parameter half of `AllowOperation`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Number, Value};

use super::{Capabilities, Operation, PathRule};
use crate::request_values::{bool_from_json, bool_from_text, list_from_text};

/// Lowercased parameter name to the values it may (or may not) take; an empty list means
/// any value.
pub(crate) type ParameterMap = BTreeMap<String, Vec<Value>>;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Permissions {
    pub caps: Capabilities,
    pub allowed: ParameterMap,
    pub denied: ParameterMap,
    /// As written: Vault lowercases them only when it looks them up.
    pub required: Vec<String>,
    /// Some rule for this pattern sets a constraint the appliance cannot enforce.
    pub unenforceable: bool,
    /// Response-wrapping bounds: a request must ask for wrapping with a TTL within them.
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
}

/// Vault's merge of wrapping bounds across policies: the lesser of the two, so the
/// wrapping token lives as short as any policy asks.
fn lesser(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Permissions {
    pub fn from_rule(rule: &PathRule) -> Permissions {
        Permissions {
            caps: rule.capabilities.effective(),
            allowed: rule.allowed_parameters.clone().unwrap_or_default(),
            denied: rule.denied_parameters.clone().unwrap_or_default(),
            required: rule.required_parameters.clone(),
            unenforceable: !rule.unenforceable.is_empty(),
            min_wrapping_ttl: rule.min_wrapping_ttl,
            max_wrapping_ttl: rule.max_wrapping_ttl,
        }
    }

    /// Folds in another rule for the same pattern, as Vault does: `deny` on either side
    /// leaves only `deny`; otherwise capabilities add up, and parameter constraints from
    /// both apply, a name's value lists being joined (an empty list, "any value", wins).
    pub fn merge(&mut self, rule: &PathRule) {
        if self.caps.contains(Capabilities::DENY) {
            return;
        }
        let caps = rule.capabilities.effective();
        if caps.contains(Capabilities::DENY) {
            self.caps = Capabilities::DENY;
            self.allowed.clear();
            self.denied.clear();
            return;
        }
        self.caps = self.caps.union(caps);
        if let Some(allowed) = &rule.allowed_parameters {
            merge_parameters(&mut self.allowed, allowed);
        }
        if let Some(denied) = &rule.denied_parameters {
            merge_parameters(&mut self.denied, denied);
        }
        for r in &rule.required_parameters {
            if !self.required.contains(r) {
                self.required.push(r.clone());
            }
        }
        self.unenforceable |= !rule.unenforceable.is_empty();
        self.min_wrapping_ttl = lesser(self.min_wrapping_ttl, rule.min_wrapping_ttl);
        self.max_wrapping_ttl = lesser(self.max_wrapping_ttl, rule.max_wrapping_ttl);
    }

    /// Whether a request asking for response wrapping with `wrap_ttl` (None: not
    /// wrapped) meets the wrapping bounds, as Vault's `AllowOperation` checks them: with a
    /// bound set, an unwrapped request is refused, and bounds merged into an empty range
    /// refuse everything.
    pub fn admits_wrapping(&self, wrap_ttl: Option<Duration>) -> bool {
        if self.min_wrapping_ttl.is_none() && self.max_wrapping_ttl.is_none() {
            return true;
        }
        let Some(ttl) = wrap_ttl else {
            return false;
        };
        let above_min = self.min_wrapping_ttl.is_none_or(|min| ttl >= min);
        let below_max = self.max_wrapping_ttl.is_none_or(|max| ttl <= max);
        let range_ok = match (self.min_wrapping_ttl, self.max_wrapping_ttl) {
            (Some(min), Some(max)) => min <= max,
            _ => true,
        };
        above_min && below_max && range_ok
    }

    /// Whether a request whose capability is granted also meets the parameter
    /// constraints. Vault checks them for the operations that carry request data (read,
    /// create, update, patch); `data` is that data: the body, or the query of a read.
    pub fn admits(&self, op: Operation, data: &Map<String, Value>) -> bool {
        if self.unenforceable {
            return false;
        }
        if !matches!(
            op,
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch
        ) {
            return true;
        }
        if self
            .required
            .iter()
            .any(|r| !data.contains_key(&r.to_lowercase()))
        {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        if !self.denied.is_empty() {
            if self.denied.contains_key("*") {
                return false;
            }
            let denied = data.iter().any(|(name, value)| {
                self.denied
                    .get(&name.to_lowercase())
                    .is_some_and(|list| denied_in_list(value, list))
            });
            if denied {
                return false;
            }
        }
        if self.allowed.is_empty() {
            return true;
        }
        let allow_any_name = self.allowed.contains_key("*");
        data.iter().all(
            |(name, value)| match self.allowed.get(&name.to_lowercase()) {
                Some(list) => allowed_in_list(value, list),
                None => allow_any_name,
            },
        )
    }
}

/// Vault's merge of `allowed_parameters` (or `denied_parameters`) from a second rule: the
/// new values go first, and an empty list on either side makes the result empty.
fn merge_parameters(into: &mut ParameterMap, from: &ParameterMap) {
    for (name, values) in from {
        match into.get_mut(name) {
            Some(existing) if existing.is_empty() => {}
            _ if values.is_empty() => {
                into.insert(name.clone(), Vec::new());
            }
            Some(existing) => {
                let mut joined = values.clone();
                joined.append(existing);
                *existing = joined;
            }
            None => {
                into.insert(name.clone(), values.clone());
            }
        }
    }
}

/// Vault's `valueInParameterList`: an empty list holds every value.
fn value_in_list(value: &Value, list: &[Value]) -> bool {
    list.is_empty() || list.iter().any(|listed| value_matches(listed, value))
}

/// Whether a request value is denied by `list`. Handlers read values loosely (`"1"`,
/// `"t"` or `2` as true, `"a,b"` as a list), so the value is denied when any reading a
/// handler could give it matches: its own text, its boolean meaning, each item of a
/// comma-separated string, each item of an array. A boolean is denied by listing
/// `"true"` or `"false"` (or `true`/`false`): its other spellings all read as those.
fn denied_in_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() {
        return true;
    }
    let mut readings = Vec::new();
    collect_readings(value, &mut readings);
    list.iter()
        .any(|listed| readings.iter().any(|r| value_matches(listed, r)))
}

/// The value and every reading a handler could give it (see `denied_in_list`).
fn collect_readings(value: &Value, into: &mut Vec<Value>) {
    into.push(value.clone());
    match value {
        Value::String(s) => {
            if let Some(b) = bool_from_text(s) {
                into.push(Value::Bool(b));
            }
            if s.contains(',') {
                for item in list_from_text(s) {
                    collect_readings(&Value::String(item), into);
                }
            }
        }
        Value::Number(_) => into.extend(bool_from_json(value).map(Value::Bool)),
        Value::Array(items) => items.iter().for_each(|item| collect_readings(item, into)),
        _ => {}
    }
}

/// Whether a request value is allowed by `list`. Strict, to fail closed: another
/// spelling of a listed value (`"1"` or `"t"` for `true`) is refused unless listed too,
/// so operators list each spelling they accept. A comma-separated string, which a
/// handler may read as a list, is allowed only when each of its items is allowed as
/// well, so a glob such as `"aes*"` cannot carry `"aes256-gcm96,rsa-4096"` through.
fn allowed_in_list(value: &Value, list: &[Value]) -> bool {
    if !value_in_list(value, list) {
        return false;
    }
    match value {
        Value::String(s) if s.contains(',') => list_from_text(s)
            .into_iter()
            .all(|item| value_in_list(&Value::String(item), list)),
        _ => true,
    }
}

/// Whether a request value matches one listed in a policy. Strings compare with Vault's
/// leading/trailing `*` globs; other values compare equal. Unlike Vault, which compares
/// JSON types strictly (so over HTTP a listed number never matches, and `"true"` never
/// matches `true`), a string and a number or boolean compare by their text: the handlers
/// here read `"true"` and `true` alike, so a strict comparison would let a caller step
/// around a denied value by changing its JSON type.
fn value_matches(listed: &Value, value: &Value) -> bool {
    match (listed, value) {
        (Value::Null, _) | (_, Value::Null) => listed == value,
        (Value::String(pattern), v) => scalar_text(v).is_some_and(|t| glob_match(pattern, &t)),
        (l, Value::String(text)) => scalar_text(l).is_some_and(|t| t == *text),
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        _ => listed == value,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64().zip(b.as_f64()).is_some_and(|(x, y)| x == y),
    }
}

/// Vault's `strutil.GlobbedStringsMatch`: a `*` at the start and/or the end of `pattern`
/// is a wildcard; anywhere else, and in a pattern of one character, it is literal.
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return value == pattern;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => value == pattern,
    }
}
