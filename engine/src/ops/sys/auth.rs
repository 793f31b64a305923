//! `sys/auth`: the auth method mounts (enable, disable, tune, list) beside the built-in
//! token store, whose tune's default and max lease TTL bound the tokens it creates.

use std::collections::BTreeMap;

use crate::auth::{AuthConfig, AuthEntry, TokenType};
use crate::error::{EngineError, Result};
use crate::mounts::normalize_mount_path;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::{LeaseTtls, MountTtls};

/// What `sys/auth` lists.
pub struct AuthListing {
    /// The token store's tune.
    pub token: MountTtls,
    pub methods: Vec<AuthEntry>,
}

/// `sys/auth`: every auth mount.
pub struct AuthList;

impl Op for AuthList {
    type Output = AuthListing;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<AuthListing> {
        Ok(AuthListing {
            token: cx.core.tokens.mount_ttls(),
            methods: cx.core.auth_mounts.list(),
        })
    }
}

/// What a new auth mount is.
pub struct AuthSpec {
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub config: AuthConfig,
}

/// `sys/auth/<path>` write: a root path (sudo), as Vault's `sys/auth/*`.
pub struct AuthEnable {
    pub path: String,
    pub spec: Decoded<AuthSpec>,
}

impl Op for AuthEnable {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let spec = self.spec?;
        let entry = cx
            .core
            .auth_mounts
            .enable(
                &self.path,
                &spec.kind,
                spec.description,
                spec.options,
                spec.config,
            )
            .await?;
        tracing::info!(path = %entry.path, kind = entry.kind.as_str(), "auth method enabled");
        Ok(())
    }
}

/// `sys/auth/<path>` read: the mount's entry.
pub struct AuthRead {
    pub path: String,
}

impl Op for AuthRead {
    type Output = AuthEntry;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<AuthEntry> {
        let path = normalize_mount_path(&self.path)?;
        cx.core
            .auth_mounts
            .get(&path)
            .ok_or_else(|| no_auth_mount(&path))
    }
}

fn no_auth_mount(path: &str) -> EngineError {
    EngineError::bad(format!("No auth engine at {path}"))
}

/// `sys/auth/<path>` delete: the mount goes, every token it issued is revoked, then its
/// data is removed. A path with nothing mounted is not an error, as in Vault.
pub struct AuthDisable {
    pub path: String,
}

impl Op for AuthDisable {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let path = normalize_mount_path(&self.path)?;
        if path == "token/" {
            return Err(EngineError::bad(
                "token credential backend cannot be disabled",
            ));
        }
        // Out of the table first: no new login can start once the revocation has begun.
        let Some(entry) = cx.core.auth_mounts.disable(&path).await? else {
            return Ok(());
        };
        let revoked = cx.core.tokens.revoke_issued_by(&entry.accessor).await?;
        cx.core.auth_mounts.destroy_data(&entry).await?;
        tracing::info!(path = %entry.path, revoked, "auth method disabled");
        Ok(())
    }
}

/// `sys/auth/<path>/tune` read (not `token/`, which [`TokenTuneRead`] serves).
pub struct AuthTuneRead {
    pub path: String,
    pub via: TuneVia,
}

impl Op for AuthTuneRead {
    type Output = AuthEntry;

    fn access(&self) -> Access {
        self.via.access(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<AuthEntry> {
        let path = normalize_mount_path(&self.path)?;
        cx.core
            .auth_mounts
            .get(&path)
            .ok_or_else(|| no_auth_mount(&path))
    }
}

/// The settings a tune gives; the rest are kept. TTLs: 0 is the system's.
#[derive(Default)]
pub struct AuthTuneSpec {
    pub default_lease_ttl: Option<u64>,
    pub max_lease_ttl: Option<u64>,
    pub description: Option<String>,
    pub token_type: Option<TokenType>,
    pub listing_visibility: Option<String>,
}

pub struct AuthTune {
    pub path: String,
    pub via: TuneVia,
    pub spec: Decoded<AuthTuneSpec>,
}

impl Op for AuthTune {
    type Output = ();

    fn access(&self) -> Access {
        self.via.access(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let spec = self.spec?;
        let path = normalize_mount_path(&self.path)?;
        cx.core
            .auth_mounts
            .tune(&path, |e| {
                if let Some(d) = spec.description {
                    e.description = d;
                }
                if let Some(ttl) = spec.default_lease_ttl {
                    e.config.default_lease_ttl = ttl;
                }
                if let Some(ttl) = spec.max_lease_ttl {
                    e.config.max_lease_ttl = ttl;
                }
                if let Some(t) = spec.token_type {
                    e.config.token_type = t;
                }
                if let Some(v) = spec.listing_visibility {
                    e.config.listing_visibility = v;
                }
            })
            .await
    }
}

/// Where a token tune came in: `sys/auth/token/tune` needs `sudo` on top of the
/// capability (as Vault's `sys/auth/*`), `sys/mounts/auth/token/tune` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuneVia {
    Auth,
    Mounts,
}

impl TuneVia {
    fn access(self, verb: Operation) -> Access {
        match self {
            TuneVia::Auth => Access::AclSudo(verb),
            TuneVia::Mounts => Access::Acl(verb),
        }
    }
}

/// The TTLs in force (the tune, or the system's where it sets none).
pub struct TokenTuneRead {
    pub via: TuneVia,
}

impl Op for TokenTuneRead {
    type Output = LeaseTtls;

    fn access(&self) -> Access {
        self.via.access(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<LeaseTtls> {
        Ok(cx.core.tokens.effective_ttls())
    }
}

/// The TTLs a tune sets (0: back to the system's); the ones left out are kept.
#[derive(Default)]
pub struct TokenTtlUpdate {
    pub default_lease_ttl: Option<u64>,
    pub max_lease_ttl: Option<u64>,
}

pub struct TokenTune {
    pub via: TuneVia,
    pub update: Decoded<TokenTtlUpdate>,
}

impl Op for TokenTune {
    type Output = ();

    fn access(&self) -> Access {
        self.via.access(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let update = self.update?;
        let mut tune = cx.core.tokens.mount_ttls();
        if let Some(ttl) = update.default_lease_ttl {
            tune.default_lease_ttl = ttl;
        }
        if let Some(ttl) = update.max_lease_ttl {
            tune.max_lease_ttl = ttl;
        }
        cx.core.tokens.tune(tune).await
    }
}
