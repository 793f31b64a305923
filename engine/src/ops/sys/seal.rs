//! `sys/seal-status`, `sys/unseal`, `sys/seal`.

use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::seal::{Migration, SealStatus, UnsealStep};

/// `sys/seal-status`. Anyone may read it, so a seal error is only its category; a
/// caller whose token holds `read` and `sudo` on the path also gets the details (which
/// needs the appliance unsealed: while sealed no token can be checked). A token that
/// does not qualify is not an error here: the caller gets what everyone gets.
pub struct SealStatusRead;

impl Op for SealStatusRead {
    type Output = SealStatus;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<SealStatus> {
        if holds_sudo(&cx) {
            cx.core.seal_status_detailed()
        } else {
            cx.core.seal_status()
        }
    }
}

/// Unlike an `AclSudo` check this spends none of the token's uses: `bao status` sends
/// `VAULT_TOKEN` with every call, and reading a public endpoint must not use the token up.
fn holds_sudo(cx: &Context<'_>) -> bool {
    let req = cx.request;
    let core: &Core = cx.core;
    if req.token.is_empty() || core.is_sealed() {
        return false;
    }
    let Ok(caller) =
        core.tokens
            .authenticate_without_use(req.token, req.path, Operation::Read, req.remote)
    else {
        return false;
    };
    core.acl(&caller).is_ok_and(|acl| {
        acl.allows(req.path, Operation::Read, req.params) && acl.has_sudo(req.path)
    })
}

/// What one `sys/unseal` call brings.
pub struct UnsealRequest {
    /// A key share, or a reset that discards the shares given so far.
    pub step: UnsealStep,
    /// Whether the call completes a pending seal migration.
    pub migration: Migration,
}

pub struct Unseal {
    pub request: Decoded<UnsealRequest>,
}

impl Op for Unseal {
    type Output = SealStatus;

    fn access(&self) -> Access {
        Access::Public
    }

    /// A source whose shares did not open the appliance waits longer before each new
    /// attempt, as a failed login does. Only an unseal clears it: a share that merely
    /// adds progress proves nothing.
    async fn run(self, cx: Context<'_>) -> Result<SealStatus> {
        let r = self.request?;
        if matches!(r.step, UnsealStep::Reset) {
            return cx.core.unseal_with(r.step, r.migration).await;
        }
        let throttle = &cx.core.unseal_throttle;
        let source = crate::ops::auth::source_key(&cx);
        throttle.check(&source)?;
        match cx.core.unseal_with(r.step, r.migration).await {
            Ok(status) => {
                if !status.sealed {
                    throttle.succeeded(&source);
                }
                Ok(status)
            }
            Err(e @ EngineError::BadRequest(_)) => {
                throttle.failed(&source);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// `sys/seal`: a root path.
pub struct Seal;

impl Op for Seal {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.seal().await;
        Ok(())
    }
}
