//! `sys/generate-root/*`: a new root token from a quorum of unseal keys (Shamir) or
//! recovery keys (hardware seal), Vault's OTP flow. The quorum is the authorisation, so
//! these are public: an operator who lost every root token has no token to present.

use crate::error::Result;
use crate::generate_root::GenerateRootStatus;
use crate::ops::{Access, Context, Decoded, Op};
use crate::UnsealShare;

pub struct GenerateRootRead;

impl Op for GenerateRootRead {
    type Output = GenerateRootStatus;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<GenerateRootStatus> {
        cx.core.generate_root_status()
    }
}

/// Starts an attempt; without an OTP one is generated and returned (once).
pub struct GenerateRootStart {
    pub otp: Decoded<Option<String>>,
    pub pgp_key: Decoded<Option<String>>,
}

impl Op for GenerateRootStart {
    type Output = GenerateRootStatus;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<GenerateRootStatus> {
        let otp = self.otp?;
        cx.core.generate_root_init(otp, self.pgp_key?)
    }
}

pub struct GenerateRootCancel;

impl Op for GenerateRootCancel {
    type Output = ();

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.generate_root_cancel();
        Ok(())
    }
}

/// One key of the quorum, for the attempt `nonce` names.
pub struct GenerateRootKey {
    pub share: UnsealShare,
    pub nonce: String,
}

pub struct GenerateRootUpdate {
    pub key: Decoded<GenerateRootKey>,
}

impl Op for GenerateRootUpdate {
    type Output = GenerateRootStatus;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<GenerateRootStatus> {
        let key = self.key?;
        cx.core.generate_root_update(key.share, &key.nonce).await
    }
}
