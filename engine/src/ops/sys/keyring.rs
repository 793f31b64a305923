//! `sys/rotate` and `sys/key-status`: the barrier keyring, root paths.

use crate::barrier::KeyStatus;
use crate::error::Result;
use crate::ops::{Access, Context, Op};
use crate::policy::Operation;

pub struct KeyringRotate;

impl Op for KeyringRotate {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let status = cx.core.rotate_keyring().await?;
        tracing::info!(term = status.term, "barrier keyring rotated");
        Ok(())
    }
}

pub struct KeyringStatus;

impl Op for KeyringStatus {
    type Output = KeyStatus;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<KeyStatus> {
        cx.core.key_status()
    }
}
