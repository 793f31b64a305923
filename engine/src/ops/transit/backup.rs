//! `backup/:name` and `restore(/:name)`: a key in Vault's plaintext backup format, for
//! keys that allow it.

use zeroize::Zeroizing;

use crate::error::Result;
use crate::mounts::MountRef;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;

pub struct TransitBackup {
    pub mount: MountRef,
    pub key: String,
}

impl Op for TransitBackup {
    type Output = Zeroizing<String>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Zeroizing<String>> {
        Ok(self.mount.transit()?.backup(&self.key)?)
    }
}

/// What `restore` asks.
pub struct RestoreRequest {
    pub backup: Zeroizing<String>,
    /// Replace a key of the same name.
    pub force: bool,
}

pub struct TransitRestore {
    pub mount: MountRef,
    /// The name to restore under (`restore/:name`); None: the backup's own.
    pub name: Decoded<Option<String>>,
    pub request: Decoded<RestoreRequest>,
}

impl Op for TransitRestore {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        let name = self.name?;
        let request = self.request?;
        self.mount
            .transit()?
            .restore(name.as_deref(), &request.backup, request.force)
            .await?;
        Ok(())
    }
}
