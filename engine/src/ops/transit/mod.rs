//! Transit operations, one file per path family as OpenBao's `builtin/logical/transit`
//! has them. Each runs against the transit engine of the mount the door routed to; the
//! CPU-heavy work goes to the compute pool inside the engine's own methods.

mod backup;
mod encrypt;
mod export;
mod import;
mod keys;
mod random;
mod sign;
#[cfg(test)]
mod tests;

pub use self::backup::{RestoreRequest, TransitBackup, TransitRestore};
pub use self::encrypt::{
    DataKey, DatakeyRequest, Decrypt, EncryptRequest, Encryption, Rewrap, TransitDatakey,
    TransitDecrypt, TransitEncrypt, TransitRewrap,
};
pub use self::export::{Exported, TransitExport};
pub use self::import::{TransitImport, TransitImportVersion, TransitWrappingKey, Wrapped};
pub use self::keys::{
    KeyDescription, TransitKeyConfig, TransitKeyCreate, TransitKeyDelete, TransitKeyList,
    TransitKeyRead, TransitKeyRotate, TransitKeyTrim,
};
pub use self::random::{HashRequest, RandomBytes, RandomRequest, TransitHash, TransitRandom};
pub use self::sign::{
    HmacRequest, SignRequest, TransitHmac, TransitSign, TransitVerify, VerifyRequest,
};

use std::future::Future;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{Access, Context, Decoded, Op};
use crate::error::{EngineError, Result};
use crate::mounts::MountRef;
use crate::policy::Operation;
use crate::transit::{CipherItem, InputItem, ItemResult, TransitEngine, TransitResult};

/// The items of a request: its `batch_input`, or one item made of the request's own
/// fields (`batch` false).
pub struct Items<I> {
    pub items: Vec<I>,
    pub batch: bool,
}

/// What a request's items came to. A request without `batch_input` fails as a whole
/// when its one item fails; a batch reports each item's outcome with its `reference`.
pub enum Answered<T> {
    One(T),
    Batch(Vec<ItemAnswer<T>>),
}

pub struct ItemAnswer<T> {
    pub result: ItemResult<T>,
    pub reference: String,
}

/// An item that carries the caller's `reference`, echoed in its batch result.
pub trait Referenced {
    fn reference(&self) -> &str;
}

impl Referenced for CipherItem {
    fn reference(&self) -> &str {
        &self.reference
    }
}

impl Referenced for InputItem {
    fn reference(&self) -> &str {
        &self.reference
    }
}

impl<I: Referenced> Items<I> {
    /// Pairs the engine's outcomes, one per item in order, with the items.
    fn answered<T>(&self, results: Vec<ItemResult<T>>) -> Result<Answered<T>> {
        if !self.batch {
            return match results.into_iter().next() {
                Some(result) => Ok(Answered::One(result?)),
                None => Err(EngineError::internal("no outcome for the request's item")),
            };
        }
        Ok(Answered::Batch(
            results
                .into_iter()
                .zip(&self.items)
                .map(|(result, item)| ItemAnswer {
                    result,
                    reference: item.reference().to_string(),
                })
                .collect(),
        ))
    }
}

/// An operation on a request's items with the named key of a transit mount: decrypt,
/// rewrap, sign, verify, hmac. `R` is what the request asks besides its items.
pub struct OnItems<R: ItemsRequest> {
    pub mount: MountRef,
    pub key: String,
    pub request: Decoded<Asked<R>>,
}

/// A request on items: what it asks, and its items.
pub struct Asked<R: ItemsRequest> {
    pub what: R,
    pub items: Items<R::Item>,
}

/// What a request on items asks of the transit engine: one outcome per item, in order.
pub trait ItemsRequest: Send + Sync {
    type Item: Referenced + Send + Sync;
    type Answer: Send;

    fn run(
        &self,
        transit: &TransitEngine,
        key: &str,
        items: &[Self::Item],
    ) -> impl Future<Output = TransitResult<Vec<ItemResult<Self::Answer>>>> + Send;
}

impl<R: ItemsRequest> Op for OnItems<R> {
    type Output = Answered<R::Answer>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<Self::Output> {
        let Asked { what, items } = self.request?;
        let results = what
            .run(self.mount.transit()?, &self.key, &items.items)
            .await?;
        items.answered(results)
    }
}

/// How `random` and `hash` write their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

impl Encoding {
    /// `"hex"` or `"base64"`.
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "hex" => Some(Encoding::Hex),
            "base64" => Some(Encoding::Base64),
            _ => None,
        }
    }

    fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => STANDARD.encode(bytes),
        }
    }
}
