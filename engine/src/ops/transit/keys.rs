//! `keys/`: list; `keys/:name`: create, read, delete; `keys/:name/config`, `/rotate`,
//! `/trim`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::mounts::MountRef;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::transit::{ConfigUpdate, CreateKey, Key};

/// A key as Vault's read shows it.
pub struct KeyDescription {
    pub key: Arc<Key>,
    /// Each version's public key as shown for the request's context (asymmetric keys).
    pub public_keys: BTreeMap<u32, String>,
    /// Vault's warning about a configuration change, if any.
    pub warning: Option<String>,
}

impl KeyDescription {
    fn new(key: Arc<Key>, context: &[u8], warning: Option<String>) -> Result<Self> {
        let mut public_keys = BTreeMap::new();
        if key.kind().is_asymmetric() {
            for v in key.versions() {
                public_keys.insert(v.number, key.shown_public_key(v, context)?);
            }
        }
        Ok(KeyDescription {
            key,
            public_keys,
            warning,
        })
    }
}

pub struct TransitKeyList {
    pub mount: MountRef,
}

impl Op for TransitKeyList {
    type Output = Vec<String>;

    fn access(&self) -> Access {
        Access::Acl(Operation::List)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Vec<String>> {
        Ok(self.mount.transit()?.list()?)
    }
}

pub struct TransitKeyRead {
    pub mount: MountRef,
    pub key: String,
    /// The context deriving the public keys shown (empty: none).
    pub context: Decoded<Vec<u8>>,
}

impl Op for TransitKeyRead {
    type Output = KeyDescription;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KeyDescription> {
        let Some(key) = self.mount.transit()?.get(&self.key)? else {
            return Err(EngineError::NotFound("transit key".into()));
        };
        KeyDescription::new(key, &self.context?, None)
    }
}

pub struct TransitKeyCreate {
    pub mount: MountRef,
    pub key: String,
    pub spec: Decoded<CreateKey>,
}

impl Op for TransitKeyCreate {
    /// The key, created or as it was (OpenBao 2.7 gives no warning for an existing one).
    type Output = KeyDescription;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KeyDescription> {
        let (key, _created) = self.mount.transit()?.create(&self.key, self.spec?).await?;
        KeyDescription::new(key, &[], None)
    }
}

pub struct TransitKeyDelete {
    pub mount: MountRef,
    pub key: String,
}

impl Op for TransitKeyDelete {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        Ok(self.mount.transit()?.delete(&self.key).await?)
    }
}

pub struct TransitKeyConfig {
    pub mount: MountRef,
    pub key: String,
    pub update: Decoded<ConfigUpdate>,
}

impl Op for TransitKeyConfig {
    type Output = KeyDescription;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KeyDescription> {
        let update = self.update?;
        let (key, warning) = self.mount.transit()?.configure(&self.key, update).await?;
        KeyDescription::new(key, &[], warning)
    }
}

pub struct TransitKeyRotate {
    pub mount: MountRef,
    pub key: String,
}

impl Op for TransitKeyRotate {
    type Output = KeyDescription;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KeyDescription> {
        let key = self.mount.transit()?.rotate(&self.key).await?;
        KeyDescription::new(key, &[], None)
    }
}

/// `keys/:name/trim`: deletes every version below `min_available_version` for good.
pub struct TransitKeyTrim {
    pub mount: MountRef,
    pub key: String,
    pub min_available_version: Decoded<i64>,
}

impl Op for TransitKeyTrim {
    type Output = KeyDescription;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<KeyDescription> {
        let min = self.min_available_version?;
        let key = self.mount.transit()?.trim(&self.key, min).await?;
        KeyDescription::new(key, &[], None)
    }
}
