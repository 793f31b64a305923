//! `sign/:name`, `verify/:name` (signatures or HMACs) and `hmac/:name`, each with an
//! optional hash algorithm in the URL.

use super::{ItemsRequest, OnItems};
use crate::transit::{InputItem, ItemResult, SignOptions, Signed, TransitEngine, TransitResult};

pub type TransitSign = OnItems<SignRequest>;

pub struct SignRequest {
    pub options: SignOptions,
    pub key_version: i64,
}

impl ItemsRequest for SignRequest {
    type Item = InputItem;
    type Answer = Signed;

    async fn run(
        &self,
        transit: &TransitEngine,
        key: &str,
        items: &[InputItem],
    ) -> TransitResult<Vec<ItemResult<Signed>>> {
        transit
            .sign(key, items, self.key_version, &self.options)
            .await
    }
}

pub type TransitVerify = OnItems<VerifyRequest>;

/// What a `verify` request checks: signatures, or HMACs (with the hash named).
pub enum VerifyRequest {
    Signature(SignOptions),
    Hmac(String),
}

impl ItemsRequest for VerifyRequest {
    type Item = InputItem;
    /// Whether the item's signature or HMAC is valid.
    type Answer = bool;

    async fn run(
        &self,
        transit: &TransitEngine,
        key: &str,
        items: &[InputItem],
    ) -> TransitResult<Vec<ItemResult<bool>>> {
        match self {
            VerifyRequest::Signature(opts) => transit.verify_signatures(key, items, opts).await,
            VerifyRequest::Hmac(algorithm) => transit.verify_hmacs(key, items, algorithm).await,
        }
    }
}

pub type TransitHmac = OnItems<HmacRequest>;

/// The hash, and the key version (0: the latest).
pub struct HmacRequest {
    pub algorithm: String,
    pub key_version: i64,
}

impl ItemsRequest for HmacRequest {
    type Item = InputItem;
    /// The HMAC, `vault:v<version>:<base64>`.
    type Answer = String;

    async fn run(
        &self,
        transit: &TransitEngine,
        key: &str,
        items: &[InputItem],
    ) -> TransitResult<Vec<ItemResult<String>>> {
        let hmacs = transit
            .hmac(key, items, self.key_version, &self.algorithm)
            .await?;
        Ok(hmacs
            .into_iter()
            .map(|r| r.map(|(hmac, _version)| hmac))
            .collect())
    }
}
