//! Auth method operations: each method's paths (`approle`, `cert`, `jwt`, `userpass`; the
//! `config` and role paths cert and jwt share in `roles`), and what every login shares:
//! the throttle of failed attempts and the token a success issues.

pub mod approle;
pub mod cert;
pub mod jwt;
pub mod roles;
pub mod userpass;

use std::collections::BTreeMap;

use crate::auth::cert::PeerChain;
use crate::auth::{AuthMountRef, LoginGrant, TokenParams};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::ops::Context;
use crate::token::{CreateRequest, IssuedToken, MethodOrigin, Renewal, TokenEntry};

impl Core {
    /// The auth method mount at `path` below `auth/` (its longest mounted prefix), and the
    /// rest of the path.
    pub fn route_auth(&self, path: &str) -> Option<(AuthMountRef, String)> {
        self.auth_mounts.route(path)
    }

    /// How a token may be renewed: a token store's token within the store's TTLs; a login
    /// token within its auth mount's, and as the method that issued it decides now (None:
    /// it declines).
    pub(crate) fn renewal(
        &self,
        entry: &TokenEntry,
        chain: Option<&PeerChain>,
    ) -> Result<Option<Renewal>> {
        let mounted = entry
            .mount_accessor
            .as_deref()
            .and_then(|a| self.auth_mounts.by_accessor(a));
        let Some(mounted) = mounted else {
            return Ok(Some(self.tokens.own_renewal()));
        };
        let ttls = mounted
            .entry
            .config
            .ttls()
            .effective(self.tokens.system_ttls());
        let meta = entry.meta.clone().unwrap_or_default();
        Ok(mounted
            .method
            .renewal(&meta, &entry.policies, &entry.internal, chain)?
            .map(|role| Renewal {
                ttls,
                role: Some(role),
            }))
    }
}

/// Issues the token a successful login earned: an orphan carrying the mount's accessor,
/// the role's policies and metadata, its TTL capped by the role's `token_max_ttl`, the
/// mount's and the system's maxima (and renewable within them), bound to the role's
/// CIDRs and use count.
pub(crate) async fn issue(
    cx: &Context<'_>,
    mount: &AuthMountRef,
    grant: LoginGrant,
) -> Result<IssuedToken> {
    issue_keeping(cx, mount, grant, BTreeMap::new()).await
}

/// [`issue`], the token keeping `internal` for the method's renewal checks.
pub(crate) async fn issue_keeping(
    cx: &Context<'_>,
    mount: &AuthMountRef,
    grant: LoginGrant,
    internal: BTreeMap<String, String>,
) -> Result<IssuedToken> {
    let entry = &mount.0.entry;
    let TokenParams {
        token_policies,
        token_ttl,
        token_max_ttl,
        token_explicit_max_ttl,
        token_period,
        token_num_uses,
        token_no_default_policy,
        token_bound_cidrs,
        token_type: _,
    } = grant.params;
    if token_policies.iter().any(|p| p == "root") {
        return Err(EngineError::bad("auth methods cannot create root tokens"));
    }
    let source = entry.path.trim_end_matches('/').replace('/', "-");
    let display_name = format!("{source}-{}", grant.display_name)
        .trim_end_matches('-')
        .to_string();
    let nonzero = |v: u64| (v > 0).then_some(v);
    cx.core
        .tokens
        .create(
            None,
            CreateRequest {
                policies: token_policies,
                meta: Some(grant.metadata),
                no_parent: true,
                no_default_policy: token_no_default_policy,
                renewable: Some(true),
                ttl: nonzero(token_ttl),
                explicit_max_ttl: nonzero(token_explicit_max_ttl),
                period: nonzero(token_period),
                display_name: Some(display_name),
                num_uses: token_num_uses,
                path: grant.path,
                max_ttl: token_max_ttl,
                bound_cidrs: token_bound_cidrs,
                internal,
                method: Some(MethodOrigin {
                    accessor: entry.accessor.clone(),
                    ttls: entry.config.ttls().effective(cx.core.tokens.system_ttls()),
                }),
                ..Default::default()
            },
        )
        .await
}

/// Runs a login's credential check under the mount's throttle: refused unchecked while
/// `keys` are locked; a failure locks them for longer each time, a success clears them.
pub(crate) async fn throttled<T>(
    mount: &AuthMountRef,
    keys: &[String],
    check: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let throttle = &mount.0.throttle;
    for k in keys {
        throttle.check(k)?;
    }
    match check.await {
        Ok(v) => {
            for k in keys {
                throttle.succeeded(k);
            }
            Ok(v)
        }
        // Only a refusal of the credentials counts, not a failure of the appliance.
        Err(e @ EngineError::BadRequest(_)) => {
            for k in keys {
                throttle.failed(k);
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The throttle key of the request's source.
pub(crate) fn source_key(cx: &Context<'_>) -> String {
    cx.request
        .remote
        .map(|r| r.to_canonical().to_string())
        .unwrap_or_default()
}

/// Metadata a method attaches to the token.
pub(crate) fn metadata<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
