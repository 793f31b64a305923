//! `export/:type/:name(/:version)`: key material, refused for private material unless
//! the key is exportable.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::error::{EngineError, Result};
use crate::mounts::MountRef;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::transit::{ExportFormat, ExportType, KeyType};

pub struct TransitExport {
    pub mount: MountRef,
    pub key: String,
    pub what: Decoded<ExportType>,
    pub format: Decoded<ExportFormat>,
    /// `latest`, `3` or `v3`; None: every version held.
    pub version: Option<String>,
}

pub struct Exported {
    pub name: String,
    pub kind: KeyType,
    pub keys: BTreeMap<u32, Zeroizing<String>>,
}

impl Op for TransitExport {
    type Output = Exported;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Exported> {
        let what = self.what?;
        let format = self.format?;
        let Some(key) = self.mount.transit()?.get(&self.key)? else {
            return Err(EngineError::NotFound("transit key".into()));
        };
        let keys = key.export(what, format, self.version.as_deref())?;
        Ok(Exported {
            name: key.name().to_string(),
            kind: key.kind(),
            keys,
        })
    }
}
