//! `random(/:source)(/:bytes)` and `hash(/:algorithm)`: no key involved.

use super::Encoding;
use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::transit::hash::hash;
use crate::transit::random::{random_bytes, Source};

pub struct TransitRandom {
    pub request: Decoded<RandomRequest>,
}

pub struct RandomRequest {
    pub source: Source,
    pub bytes: i64,
    pub encoding: Encoding,
}

pub struct RandomBytes {
    pub encoded: String,
    /// Vault's warning when the source asked for is not available.
    pub warning: Option<&'static str>,
}

impl Op for TransitRandom {
    type Output = RandomBytes;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<RandomBytes> {
        let r = self.request?;
        let (bytes, warning) = random_bytes(r.bytes, r.source)?;
        Ok(RandomBytes {
            encoded: r.encoding.encode(&bytes),
            warning,
        })
    }
}

pub struct TransitHash {
    pub request: Decoded<HashRequest>,
}

pub struct HashRequest {
    pub algorithm: String,
    pub input: Vec<u8>,
    pub encoding: Encoding,
}

impl Op for TransitHash {
    /// The digest, encoded.
    type Output = String;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, _cx: Context<'_>) -> Result<String> {
        let r = self.request?;
        Ok(r.encoding.encode(&hash(&r.algorithm, &r.input)?))
    }
}
