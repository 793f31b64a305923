//! `encrypt/:name`, `decrypt/:name`, `rewrap/:name` and `datakey/:kind/:name`.

use zeroize::Zeroizing;

use super::{Answered, Items, ItemsRequest, OnItems};
use crate::core::Core;
use crate::error::Result;
use crate::mounts::MountRef;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::transit::{
    CipherItem, Encrypted, ItemResult, SecretBytes, TransitEngine, TransitResult,
};

/// Encrypts base64 plaintexts, creating the key on first use: Vault's upsert, which
/// needs the `create` capability when the key does not exist yet.
pub struct TransitEncrypt {
    pub mount: MountRef,
    pub key: String,
    pub request: Decoded<EncryptRequest>,
}

pub struct EncryptRequest {
    pub items: Items<CipherItem>,
    /// The type of a key created on first use.
    pub key_type: Option<String>,
    pub convergent: bool,
}

pub struct Encryption {
    pub answered: Answered<Encrypted>,
    pub warnings: Vec<String>,
}

impl Op for TransitEncrypt {
    type Output = Encryption;

    fn access(&self) -> Access {
        Access::AclCreateOrUpdate
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        Ok(self.mount.transit()?.exists(&self.key)?)
    }

    async fn run(self, cx: Context<'_>) -> Result<Encryption> {
        let r = self.request?;
        let (results, created) = self
            .mount
            .transit()?
            .encrypt(
                &self.key,
                &r.items.items,
                r.key_type.as_deref(),
                r.convergent,
            )
            .await?;
        // Vault warns when the create capability was used but another request made the
        // key in the meantime.
        let warnings = if cx.granted == Operation::Create && !created {
            vec!["Attempted creation of the key during the encrypt operation, but it was created beforehand".to_string()]
        } else {
            vec![]
        };
        Ok(Encryption {
            answered: r.items.answered(results)?,
            warnings,
        })
    }
}

/// `decrypt/:name`: base64 plaintexts. Every failure to decrypt a well-formed
/// ciphertext, an unknown key name included, reads "Unable to decrypt the secret".
pub type TransitDecrypt = OnItems<Decrypt>;

pub struct Decrypt;

impl ItemsRequest for Decrypt {
    type Item = CipherItem;
    type Answer = Zeroizing<String>;

    async fn run(
        &self,
        transit: &TransitEngine,
        key: &str,
        items: &[CipherItem],
    ) -> TransitResult<Vec<ItemResult<Self::Answer>>> {
        transit.decrypt(key, items).await
    }
}

/// `rewrap/:name`: ciphertexts re-encrypted under the latest (or a given) version, the
/// plaintext never leaving the engine.
pub type TransitRewrap = OnItems<Rewrap>;

pub struct Rewrap;

impl ItemsRequest for Rewrap {
    type Item = CipherItem;
    type Answer = Encrypted;

    async fn run(
        &self,
        transit: &TransitEngine,
        key: &str,
        items: &[CipherItem],
    ) -> TransitResult<Vec<ItemResult<Encrypted>>> {
        transit.rewrap(key, items).await
    }
}

/// A new random key encrypted under the named key, with (`datakey/plaintext`) or
/// without (`datakey/wrapped`) its plaintext.
pub struct TransitDatakey {
    pub mount: MountRef,
    pub key: String,
    pub request: Decoded<DatakeyRequest>,
}

pub struct DatakeyRequest {
    pub with_plaintext: bool,
    pub bits: u64,
    pub key_version: i64,
    pub context: Option<String>,
    pub associated_data: Option<String>,
}

pub struct DataKey {
    /// None for `wrapped`.
    pub plaintext: Option<SecretBytes>,
    pub encrypted: Encrypted,
}

impl Op for TransitDatakey {
    type Output = DataKey;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<DataKey> {
        let r = self.request?;
        let (data_key, encrypted) = self
            .mount
            .transit()?
            .datakey(
                &self.key,
                r.bits,
                r.key_version,
                &r.context,
                &r.associated_data,
            )
            .await?;
        Ok(DataKey {
            plaintext: r.with_plaintext.then_some(data_key),
            encrypted,
        })
    }
}
