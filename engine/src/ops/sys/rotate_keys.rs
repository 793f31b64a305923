//! `sys/rotate/root/*` and `sys/rotate/recovery/*`: new operator keys from a quorum of
//! the current ones. As in OpenBao 2.4+, these need a token whose policy grants the path
//! (the quorum alone no longer suffices, unlike the old unauthenticated `sys/rekey`).

use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::rotate::{
    RotateConfig, RotateStatus, RotateTarget, RotateUpdate, VerifyStatus, VerifyUpdate,
};
use crate::UnsealShare;

pub struct RotateRead {
    pub target: RotateTarget,
}

impl Op for RotateRead {
    type Output = RotateStatus;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<RotateStatus> {
        cx.core.rotation_status(self.target)
    }
}

pub struct RotateStart {
    pub target: RotateTarget,
    pub config: Decoded<RotateConfig>,
}

impl Op for RotateStart {
    type Output = RotateStatus;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<RotateStatus> {
        cx.core.rotation_init(self.target, self.config?).await
    }
}

pub struct RotateCancel {
    pub target: RotateTarget,
}

impl Op for RotateCancel {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.rotation_cancel(self.target).await;
        Ok(())
    }
}

/// One key and the nonce of the attempt (or of its verification) it is for.
pub struct RotateKey {
    pub share: UnsealShare,
    pub nonce: String,
}

/// One current key towards the quorum.
pub struct RotateUpdateKey {
    pub target: RotateTarget,
    pub key: Decoded<RotateKey>,
}

impl Op for RotateUpdateKey {
    type Output = RotateUpdate;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<RotateUpdate> {
        let key = self.key?;
        cx.core
            .rotation_update(self.target, key.share, &key.nonce)
            .await
    }
}

pub struct RotateVerifyRead {
    pub target: RotateTarget,
}

impl Op for RotateVerifyRead {
    type Output = VerifyStatus;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<VerifyStatus> {
        cx.core.rotation_verify_status(self.target)
    }
}

/// One new key towards the verification.
pub struct RotateVerifyKey {
    pub target: RotateTarget,
    pub key: Decoded<RotateKey>,
}

impl Op for RotateVerifyKey {
    type Output = VerifyUpdate;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<VerifyUpdate> {
        let key = self.key?;
        cx.core
            .rotation_verify(self.target, key.share, &key.nonce)
            .await
    }
}

/// Starts the verification over (DELETE on `verify`), keeping the attempt.
pub struct RotateVerifyRestart {
    pub target: RotateTarget,
}

impl Op for RotateVerifyRestart {
    type Output = VerifyStatus;

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<VerifyStatus> {
        cx.core.rotation_verify_restart(self.target).await
    }
}

/// `sys/rotate/*/backup`: OpenBao keeps PGP-encrypted copies of the new keys there when
/// asked (`backup`); this appliance refuses PGP and backups, so there is never one to
/// read, and deleting finds nothing.
pub struct RotateBackup {
    pub operation: Operation,
}

impl Op for RotateBackup {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(self.operation)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        match self.operation {
            Operation::Delete => Ok(()),
            _ => Err(EngineError::bad(
                "no backed-up keys found: this appliance does not keep backups of rotated keys (pgp_keys and backup are not supported)",
            )),
        }
    }
}
