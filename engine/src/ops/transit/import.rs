//! `wrapping_key`, `keys/:name/import` and `keys/:name/import_version`: keys brought in
//! wrapped in Vault's BYOK format.

use zeroize::Zeroizing;

use crate::error::Result;
use crate::mounts::MountRef;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::transit::{ImportBoundary, ImportKey, OaepHash};

pub struct TransitWrappingKey {
    pub mount: MountRef,
}

impl Op for TransitWrappingKey {
    /// The public key, PEM.
    type Output = String;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<String> {
        let boundary = ImportBoundary::of(cx.core.root()?);
        Ok(self.mount.transit()?.wrapping_public_pem(&boundary).await?)
    }
}

/// The wrapped key of an import: `ciphertext` decoded, and the OAEP hash it was made
/// with.
pub struct Wrapped {
    pub ciphertext: Zeroizing<Vec<u8>>,
    pub hash: OaepHash,
}

pub struct TransitImport {
    pub mount: MountRef,
    pub key: String,
    pub spec: Decoded<ImportKey>,
    pub wrapped: Decoded<Wrapped>,
}

impl Op for TransitImport {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let spec = self.spec?;
        let wrapped = self.wrapped?;
        let boundary = ImportBoundary::of(cx.core.root()?);
        self.mount
            .transit()?
            .import(
                &self.key,
                spec,
                wrapped.ciphertext.to_vec(),
                wrapped.hash,
                &boundary,
            )
            .await?;
        Ok(())
    }
}

pub struct TransitImportVersion {
    pub mount: MountRef,
    pub key: String,
    pub wrapped: Decoded<Wrapped>,
    /// The existing version to complete, if given.
    pub version: Decoded<Option<i64>>,
}

impl Op for TransitImportVersion {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let wrapped = self.wrapped?;
        let version = self.version?;
        let boundary = ImportBoundary::of(cx.core.root()?);
        self.mount
            .transit()?
            .import_version(
                &self.key,
                wrapped.ciphertext.to_vec(),
                wrapped.hash,
                version,
                &boundary,
            )
            .await?;
        Ok(())
    }
}
