//! What the store keeps for each token, and the rules that shape a new one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ttl::{calculate, LeaseTtls, TtlRequest};
use super::Caller;
use crate::error::{EngineError, Result};
use crate::policy::RESPONSE_WRAPPING_POLICY_NAME;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum TokenKind {
    #[default]
    Biscuit,
    Opaque,
}

impl TokenKind {
    pub(super) fn domain(self) -> &'static str {
        match self {
            TokenKind::Biscuit => "biscuit:",
            TokenKind::Opaque => "opaque:",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub kind: TokenKind,
    pub accessor: String,
    pub policies: Vec<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub display_name: String,
    pub path: String,
    pub creation_time: i64,
    pub creation_ttl: u64,
    pub explicit_max_ttl: u64,
    pub expire_time: Option<i64>,
    pub renewable: bool,
    /// Uses left; 0 means unlimited.
    pub num_uses: u32,
    /// The parent's store key; children die with their parent.
    pub parent: Option<String>,
    pub orphan: bool,
    pub period: u64,
    /// Key-API scopes (`keys:read`, `keys:write`, `keys:use`); root tokens hold all.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The accessor of the auth method mount that issued the token at a login; None for
    /// the token store's own tokens. Its TTLs bound renewals, and disabling it revokes.
    #[serde(default)]
    pub mount_accessor: Option<String>,
    /// A role's `token_max_ttl`, below the mount's maximum: it bounds every renewal too
    /// (0: none).
    #[serde(default)]
    pub max_ttl: u64,
    /// Where the token may be used from (`token_bound_cidrs`); empty: anywhere.
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// What the auth method that issued the token keeps for its renewals, never shown
    /// (OpenBao's `InternalData`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub internal: BTreeMap<String, String>,
}

/// The scopes of the key API (`/api/v1`).
pub const SCOPES: &[&str] = &["keys:read", "keys:write", "keys:use"];

/// The parameters of `auth/token/create`, already parsed.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub id: Option<String>,
    pub policies: Vec<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub no_parent: bool,
    pub no_default_policy: bool,
    pub renewable: Option<bool>,
    pub ttl: Option<u64>,
    pub explicit_max_ttl: Option<u64>,
    pub period: Option<u64>,
    pub display_name: Option<String>,
    pub num_uses: u32,
    /// Key-API scopes; empty: none, unless the token is a root token.
    pub scopes: Vec<String>,
    /// Where the token comes from: `auth/token/create`, or `auth/token/root` for root
    /// tokens from init and generate-root.
    pub path: String,
    /// A role's `token_max_ttl` (0: none).
    pub max_ttl: u64,
    /// Parsed CIDR blocks the token is bound to.
    pub bound_cidrs: Vec<String>,
    /// Set when an auth method issues the token at a login.
    pub method: Option<MethodOrigin>,
    /// See [`TokenEntry::internal`].
    pub internal: BTreeMap<String, String>,
    /// A token role with allowed or disallowed policies decided `policies`: they are
    /// not held to the parent's.
    pub policies_from_role: bool,
}

/// The auth method mount a login token comes from: its TTLs bound the token in place of
/// the token store's, and its display name is the method's, as given.
#[derive(Debug, Clone)]
pub struct MethodOrigin {
    pub accessor: String,
    pub ttls: LeaseTtls,
}

/// How a token is renewed: within `ttls`, and a login token with the token settings its
/// role has now, which replace those it was issued with (OpenBao's `pathLoginRenew`).
#[derive(Debug, Clone, Copy)]
pub struct Renewal {
    pub ttls: LeaseTtls,
    pub role: Option<RoleTtls>,
}

/// A role's `token_ttl`, `token_max_ttl` and `token_period`, in seconds (0: not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleTtls {
    pub ttl: u64,
    pub max_ttl: u64,
    pub period: u64,
}

fn new_accessor() -> String {
    let mut bytes = [0u8; 18];
    hsm_bridge::fill_random(&mut bytes);
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenEntry {
    /// `ttls` are the lease TTLs in force for `auth/token/` (system config and tune).
    pub fn from_request(
        parent: Option<&Caller>,
        req: &CreateRequest,
        ttls: LeaseTtls,
        now: i64,
    ) -> Result<Self> {
        // Orphans are the operation's to allow (create-orphan needs no sudo); a chosen id
        // stays a root token's privilege.
        if req.id.is_some() && !parent.is_none_or(|p| p.is_root()) {
            return Err(EngineError::bad(
                "root or sudo privileges required to specify token id",
            ));
        }
        let mut policies: Vec<String> = req
            .policies
            .iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if policies.is_empty() {
            if let Some(p) = parent {
                policies = p.entry.policies.clone();
            }
        }
        if let Some(p) = parent.filter(|p| !p.is_root() && !req.policies_from_role) {
            let outside: Vec<&String> = policies
                .iter()
                .filter(|want| *want != "default" && !p.entry.policies.contains(want))
                .collect();
            if !outside.is_empty() {
                return Err(EngineError::bad(format!(
                    "child policies must be subset of parent: {outside:?} not held by the parent"
                )));
            }
        }
        if policies.iter().any(|p| p == RESPONSE_WRAPPING_POLICY_NAME) {
            return Err(EngineError::bad(format!(
                "cannot assign policy {RESPONSE_WRAPPING_POLICY_NAME:?}"
            )));
        }
        let is_root = policies.iter().any(|p| p == "root");
        if !is_root && !req.no_default_policy && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();

        let ttls = req.method.as_ref().map_or(ttls, |m| m.ttls);
        let explicit_max_ttl = req.explicit_max_ttl.unwrap_or(0);
        let period = req.period.unwrap_or(0);
        let asked = req.ttl.unwrap_or(0);
        // As OpenBao's handleCreateCommon: every token but a root token asked for no TTL
        // gets one, bounded by the mount's maximum from its creation time.
        let mut ttl = 0;
        if period > 0 || asked > 0 || !is_root {
            ttl = calculate(
                ttls,
                TtlRequest {
                    increment: 0,
                    ttl: asked,
                    period,
                    explicit_max_ttl,
                    max_ttl: req.max_ttl,
                    start: now,
                },
                now,
            )?;
        }
        // Root tokens are still bound by an explicit max TTL.
        if ttl == 0 && explicit_max_ttl > 0 {
            ttl = explicit_max_ttl;
        }
        if ttl == 0 && parent.is_some_and(|p| p.entry.expire_time.is_some()) {
            return Err(EngineError::bad(
                "expiring root tokens cannot create non-expiring root tokens",
            ));
        }
        let display_name = match &req.display_name {
            Some(d) if req.method.is_some() => d.clone(),
            Some(d) if !d.is_empty() => format!("token-{d}"),
            _ if req.path == "auth/token/root" => "root".to_string(),
            _ => "token".to_string(),
        };
        let orphan = req.no_parent || parent.is_none();
        let mut scopes: Vec<String> = req.scopes.iter().map(|s| s.trim().to_string()).collect();
        scopes.sort();
        scopes.dedup();
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(EngineError::bad(format!(
                "unknown scope {bad:?}: scopes are {}",
                SCOPES.join(", ")
            )));
        }
        if let Some(p) = parent.filter(|p| !p.is_root()) {
            if let Some(missing) = scopes.iter().find(|s| !p.has_scope(s)) {
                return Err(EngineError::bad(format!(
                    "child scopes must be a subset of the parent's: {missing:?} is not held by the parent"
                )));
            }
        }
        Ok(TokenEntry {
            scopes,
            kind: TokenKind::Biscuit,
            accessor: new_accessor(),
            policies,
            meta: req.meta.clone(),
            display_name,
            path: req.path.clone(),
            creation_time: now,
            creation_ttl: ttl,
            explicit_max_ttl,
            expire_time: (ttl > 0)
                .then(|| now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
            renewable: req.renewable.unwrap_or(true) && ttl > 0,
            num_uses: req.num_uses,
            parent: if orphan {
                None
            } else {
                parent.map(|p| p.key.clone())
            },
            orphan,
            period,
            mount_accessor: req.method.as_ref().map(|m| m.accessor.clone()),
            max_ttl: req.max_ttl,
            bound_cidrs: req.bound_cidrs.clone(),
            internal: req.internal.clone(),
        })
    }

    /// A response-wrapping token, as Vault makes one: an orphan holding only the
    /// `response-wrapping` policy, good for one use within `ttl` seconds and never
    /// renewed. `path` is the request whose response it wraps.
    pub(super) fn wrapping(path: &str, ttl: u64, now: i64) -> Self {
        TokenEntry {
            kind: TokenKind::Biscuit,
            accessor: new_accessor(),
            policies: vec![RESPONSE_WRAPPING_POLICY_NAME.to_string()],
            meta: None,
            display_name: String::new(),
            path: path.to_string(),
            creation_time: now,
            creation_ttl: ttl,
            explicit_max_ttl: ttl,
            expire_time: Some(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
            renewable: false,
            num_uses: 1,
            parent: None,
            orphan: true,
            period: 0,
            scopes: Vec::new(),
            mount_accessor: None,
            max_ttl: 0,
            bound_cidrs: Vec::new(),
            internal: BTreeMap::new(),
        }
    }

    /// Whether this is a response-wrapping token (Vault's test: its one policy).
    pub fn is_wrapping(&self) -> bool {
        matches!(self.policies.as_slice(), [p] if p == RESPONSE_WRAPPING_POLICY_NAME)
    }

    /// Roughly the heap bytes this entry holds, for the byte-bounded cache.
    pub(super) fn approx_bytes(&self) -> usize {
        let strings = |v: &[String]| v.iter().map(|s| s.len() + 24).sum::<usize>();
        let meta = self
            .meta
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| k.len() + v.len() + 64).sum::<usize>())
            .unwrap_or(0);
        std::mem::size_of::<Self>()
            + self.accessor.len()
            + self.display_name.len()
            + self.path.len()
            + self.parent.as_ref().map_or(0, String::len)
            + strings(&self.policies)
            + strings(&self.scopes)
            + strings(&self.bound_cidrs)
            + self
                .internal
                .iter()
                .map(|(k, v)| k.len() + v.len() + 64)
                .sum::<usize>()
            + self.mount_accessor.as_ref().map_or(0, String::len)
            + meta
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_time.is_some_and(|t| now >= t)
    }

    /// Seconds left, 0 for a token that does not expire.
    pub fn ttl_left(&self, now: i64) -> u64 {
        self.expire_time
            .map(|t| (t - now).max(0) as u64)
            .unwrap_or(0)
    }

    /// Extends the token from `now` by `increment` (else its TTL, or its period), never
    /// past its creation time plus the maximum in force. A login token takes its role's
    /// settings as they are now.
    pub(super) fn renew(
        &mut self,
        increment: Option<u64>,
        renewal: Renewal,
        now: i64,
    ) -> Result<()> {
        if self.expire_time.is_none() {
            return Ok(());
        }
        if let Some(role) = renewal.role {
            self.max_ttl = role.max_ttl;
            self.period = role.period;
        }
        let ttl = calculate(
            renewal.ttls,
            TtlRequest {
                increment: increment.unwrap_or(0),
                ttl: renewal.role.map_or(self.creation_ttl, |r| r.ttl),
                period: self.period,
                explicit_max_ttl: self.explicit_max_ttl,
                max_ttl: self.max_ttl,
                start: self.creation_time,
            },
            now,
        )?;
        self.expire_time = Some(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
        Ok(())
    }
}
