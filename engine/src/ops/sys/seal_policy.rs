//! `sys/seal-policy`: the hardware seal's platform policy (TPM PCRs), root paths.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::{PcrTarget, SealPolicyReport};

/// The seal's PCRs, their current values, the signed values. `params`: the request
/// takes none, so this is the door's error if it named any.
pub struct SealPolicyRead {
    pub params: Decoded<()>,
}

impl Op for SealPolicyRead {
    type Output = SealPolicyReport;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<SealPolicyReport> {
        self.params?;
        cx.core.seal_policy().await
    }
}

/// Signs the PCR values of the next boot before a planned update.
pub struct AuthorizePcrs {
    pub targets: Decoded<BTreeMap<u8, PcrTarget>>,
}

impl Op for AuthorizePcrs {
    type Output = SealPolicyReport;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<SealPolicyReport> {
        cx.core.authorize_pcrs(self.targets?).await
    }
}

/// Re-creates the sealed root key for the current PCR values. `params` as for
/// [`SealPolicyRead`].
pub struct Reseal {
    pub params: Decoded<()>,
}

impl Op for Reseal {
    type Output = SealPolicyReport;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<SealPolicyReport> {
        self.params?;
        cx.core.reseal().await
    }
}
