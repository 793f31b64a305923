//! Biscuit minting and verification. The authority block names the token's store entry
//! (`token(id)`) and its policies; a holder may append blocks with checks on `path`,
//! `operation` and `time`, and those checks are enforced on every request.

use biscuit_auth::builder::{fact, string, Fact};
use biscuit_auth::datalog::RunLimits;
use biscuit_auth::macros::authorizer;
use biscuit_auth::{Biscuit, KeyPair, PrivateKey};
use zeroize::Zeroizing;

use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::policy::Operation;

const SIGNING_KEY_PATH: &str = "sys/token/signing-key";

/// A base64url Biscuit is long and has no dots; opaque ids chosen by operators are
/// usually short. Anything not parsing as a Biscuit is refused rather than reinterpreted.
pub fn looks_like_biscuit(token: &str) -> bool {
    token.len() >= 100
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
}

pub struct BiscuitSigner {
    keypair: KeyPair,
}

impl BiscuitSigner {
    pub async fn load_or_create(barrier: &Barrier) -> Result<Self> {
        let bytes = barrier
            .get_or_create(SIGNING_KEY_PATH, || {
                Zeroizing::new(KeyPair::new().private().to_bytes().to_vec())
            })
            .await?;
        let key = PrivateKey::from_bytes(&bytes, biscuit_auth::Algorithm::Ed25519)
            .map_err(|_| EngineError::Corrupt(SIGNING_KEY_PATH.into()))?;
        Ok(BiscuitSigner {
            keypair: KeyPair::from(&key),
        })
    }

    pub fn mint(
        &self,
        id: &str,
        policies: &[String],
        scopes: &[String],
    ) -> Result<Zeroizing<String>> {
        let mut builder = Biscuit::builder()
            .fact(fact("token", &[string(id)]))
            .map_err(EngineError::internal)?;
        for p in policies {
            builder = builder
                .fact(fact("policy", &[string(p)]))
                .map_err(EngineError::internal)?;
        }
        for s in scopes {
            builder = builder
                .fact(fact("scope", &[string(s)]))
                .map_err(EngineError::internal)?;
        }
        let token = builder
            .build(&self.keypair)
            .map_err(EngineError::internal)?;
        token
            .to_base64()
            .map(Zeroizing::new)
            .map_err(EngineError::internal)
    }

    /// Checks the signature chain and returns the store id the token names.
    pub fn verify(&self, token: &str) -> Result<(String, Biscuit)> {
        let parsed = Biscuit::from_base64(token, self.keypair.public())
            .map_err(|_| EngineError::Unauthenticated)?;
        // Only the authority block, signed by the appliance, may name the entry: later
        // blocks belong to holders and can only narrow what the token may do.
        let source = parsed
            .print_block_source(0)
            .map_err(|_| EngineError::Unauthenticated)?;
        let id = parse_token_fact(&source).ok_or(EngineError::Unauthenticated)?;
        Ok((id, parsed))
    }
}

/// Reads `token("…")` from the authority block's source. Ids are UUIDs, so no escaping
/// can occur inside the quotes.
fn parse_token_fact(source: &str) -> Option<String> {
    let start = source.find("token(\"")? + "token(\"".len();
    let rest = &source[start..];
    let end = rest.find('"')?;
    let id = &rest[..end];
    uuid::Uuid::parse_str(id).ok()?;
    Some(id.to_string())
}

/// What a key-API request is, as facts for the holder's checks.
pub struct KeyRequestFacts<'a> {
    pub path: &'a str,
    pub operation: &'a str,
    pub scope: &'a str,
    pub key_name: Option<&'a str>,
    pub key_id: Option<&'a str>,
}

/// A Biscuit already verified once; attenuated ones are re-authorised per request.
pub struct VerifiedBiscuit {
    pub key: String,
    attenuated: Option<Biscuit>,
    /// The revocation ids (hex) of the blocks holders appended, oldest first. The last
    /// one names this exact attenuated token: revoking it is storing that id, and a token
    /// attenuated further from it carries it too, so it dies with it.
    block_ids: Vec<String>,
    /// The length of the token string, for the cache's size estimate.
    encoded_len: usize,
}

impl VerifiedBiscuit {
    pub fn new(key: String, parsed: Biscuit, encoded_len: usize) -> Self {
        let block_ids = parsed
            .revocation_identifiers()
            .iter()
            .skip(1)
            .map(hex::encode)
            .collect();
        let attenuated = (parsed.block_count() > 1).then_some(parsed);
        VerifiedBiscuit {
            key,
            attenuated,
            block_ids,
            encoded_len,
        }
    }

    /// An opaque token: nothing to re-check per request beyond its store entry.
    pub fn opaque(key: String) -> Self {
        VerifiedBiscuit {
            key,
            attenuated: None,
            block_ids: Vec::new(),
            encoded_len: 0,
        }
    }

    /// The identity of an attenuated token (its last block's revocation id); None for a
    /// token as the appliance minted it.
    pub fn revocation_id(&self) -> Option<&str> {
        self.block_ids.last().map(String::as_str)
    }

    pub(super) fn block_ids(&self) -> &[String] {
        &self.block_ids
    }

    /// Roughly the heap bytes this holds: a parsed Biscuit keeps its blocks and their
    /// serialised form, a small multiple of the token string.
    pub(super) fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.key.len()
            + self.block_ids.iter().map(|b| b.len() + 24).sum::<usize>()
            + if self.attenuated.is_some() {
                self.encoded_len * 4
            } else {
                0
            }
    }

    pub fn authorize(&self, path: &str, op: Operation) -> Result<()> {
        if self.attenuated.is_none() {
            return Ok(());
        }
        // Revoking itself only takes authority away, so a holder can always end the
        // attenuated token it holds, whatever paths its checks allow.
        if path == "auth/token/revoke-self" && op == Operation::Update {
            return Ok(());
        }
        self.authorize_facts(vec![
            fact("path", &[string(path)]),
            fact("operation", &[string(op.as_str())]),
        ])
    }

    /// Whether the token was attenuated by its holder (has blocks beyond the authority).
    pub fn is_attenuated(&self) -> bool {
        self.attenuated.is_some()
    }

    /// Checks the holder's attenuations against a key-API request. The facts supplied:
    /// `path`, `operation` ("read", "write" or "use"), `required_scope`, `time`, and for
    /// requests on one key `key_name` and `key_id`.
    pub fn authorize_key_request(&self, req: &KeyRequestFacts) -> Result<()> {
        if self.attenuated.is_none() {
            return Ok(());
        }
        let mut facts = vec![
            fact("path", &[string(req.path)]),
            fact("operation", &[string(req.operation)]),
            fact("required_scope", &[string(req.scope)]),
        ];
        if let Some(n) = req.key_name {
            facts.push(fact("key_name", &[string(n)]));
        }
        if let Some(id) = req.key_id {
            facts.push(fact("key_id", &[string(id)]));
        }
        self.authorize_facts(facts)
    }

    fn authorize_facts(&self, facts: Vec<Fact>) -> Result<()> {
        let Some(token) = &self.attenuated else {
            return Ok(());
        };
        let mut builder = authorizer!("allow if true;").time().set_limits(RunLimits {
            // The library's default of 1 ms of wall time refuses genuine tokens at random
            // on a loaded machine (the clock runs while the thread waits for a core); the
            // fact and iteration limits are what bound a hostile block's work.
            max_time: std::time::Duration::from_millis(100),
            ..RunLimits::default()
        });
        for f in facts {
            builder = builder.fact(f).map_err(EngineError::internal)?;
        }
        let mut auth = builder.build(token).map_err(|_| EngineError::Forbidden)?;
        auth.authorize()
            .map(|_| ())
            .map_err(|_| EngineError::Forbidden)
    }
}

#[cfg(test)]
pub fn tests_support_token_id(source: &str) -> Option<String> {
    parse_token_fact(source)
}
