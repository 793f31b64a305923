//! `sys/auth` (the token store is the one auth method) and the tune of the token auth
//! mount, whose default and max lease TTL bound every token.

use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::{LeaseTtls, MountTtls};

/// `sys/auth`: the token auth mount's tuned TTLs, for the listing.
pub struct AuthList;

impl Op for AuthList {
    type Output = MountTtls;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<MountTtls> {
        Ok(cx.core.tokens.mount_ttls())
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
