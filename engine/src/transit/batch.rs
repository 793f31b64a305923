//! Requests as Vault takes them: one item or a `batch_input` of items, fields in base64,
//! one key lookup for the whole batch, and an outcome per item. A malformed item gets
//! its own error; the others are still processed. Problems with the request as a whole
//! (no such key, mixed use of `context`, an operation the key type cannot do) fail it.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::{TransitError, TransitResult};
use super::hash::HashAlgorithm;
use super::key_policy::{CreateKey, Key};
use super::keytype::KeyType;
use super::material::SecretBytes;
use super::signing::{SignOptions, Signed};
use super::{base64_error, decode_base64, TransitEngine};
use crate::compute;

/// An item of `encrypt`, `decrypt` or `rewrap` (or the request's own fields when it has
/// no `batch_input`).
#[derive(Debug, Clone, Default)]
pub struct CipherItem {
    pub plaintext: Option<String>,
    pub ciphertext: Option<String>,
    pub context: Option<String>,
    pub key_version: i64,
    pub associated_data: Option<String>,
    pub nonce: Option<String>,
    pub reference: String,
    /// Why the item could not be read (a field of the wrong type), if it could not.
    pub malformed: Option<String>,
}

/// An item of `sign`, `verify` or `hmac`.
#[derive(Debug, Clone, Default)]
pub struct InputItem {
    pub input: Option<String>,
    pub context: Option<String>,
    pub signature: Option<String>,
    pub hmac: Option<String>,
    pub reference: String,
    pub malformed: Option<String>,
}

pub type ItemResult<T> = Result<T, TransitError>;

/// What an encrypt answers per item.
#[derive(Debug, Clone)]
pub struct Encrypted {
    pub ciphertext: String,
    pub key_version: u32,
}

/// Which check a `verify` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    Signature,
    Hmac,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn decode_context(item_context: &Option<String>) -> ItemResult<Zeroizing<Vec<u8>>> {
    match non_empty(item_context) {
        None => Ok(Zeroizing::new(Vec::new())),
        Some(c) => decode_base64(c)
            .map(Zeroizing::new)
            .map_err(|_| TransitError::invalid("failed to base64-decode context")),
    }
}

fn decode_field(value: Option<&str>, what: &str) -> ItemResult<Zeroizing<Vec<u8>>> {
    match value {
        None | Some("") => Ok(Zeroizing::new(Vec::new())),
        Some(v) => decode_base64(v).map(Zeroizing::new).map_err(|e| {
            TransitError::invalid(format!(
                "unable to decode {what} as base64: {}",
                base64_error(&e)
            ))
        }),
    }
}

fn malformed(m: &Option<String>) -> ItemResult<()> {
    match m {
        Some(e) => Err(TransitError::invalid(e.clone())),
        None => Ok(()),
    }
}

/// Vault's rule: either every item carries a context or none does.
fn contexts_consistent<'a>(
    mut contexts: impl Iterator<Item = &'a Option<String>>,
) -> TransitResult<bool> {
    let Some(first) = contexts.next() else {
        return Err(TransitError::invalid("missing batch input to process"));
    };
    let set = non_empty(first).is_some();
    if contexts.any(|c| non_empty(c).is_some() != set) {
        return Err(TransitError::invalid(
            "context should be set either in all the request blocks or in none",
        ));
    }
    Ok(set)
}

/// Decides between signature and HMAC verification, with Vault's messages for requests
/// that give neither, both, or a mix.
pub fn verify_mode(items: &[InputItem], batch: bool) -> TransitResult<VerifyMode> {
    let sig = items.iter().any(|i| i.signature.is_some());
    let hmac = items
        .iter()
        .any(|i| i.signature.is_none() && i.hmac.is_some());
    let missing = items
        .iter()
        .any(|i| i.signature.is_none() && i.hmac.is_none());
    let err = |m: &str| Err(TransitError::invalid(m));
    let single_both = !batch
        && items
            .iter()
            .any(|i| i.signature.is_some() && i.hmac.is_some());
    match () {
        _ if single_both => err("provide one of 'signature' or 'hmac'"),
        _ if !batch && !sig && !hmac => {
            err("neither a 'signature' nor an 'hmac' were given to verify")
        }
        _ if sig && hmac => {
            err("elements of batch_input must all provide 'signature' or all provide 'hmac'")
        }
        _ if missing && sig => err("some elements of batch_input are missing 'signature'"),
        _ if missing && hmac => err("some elements of batch_input are missing 'hmac'"),
        _ if missing => err("no batch_input elements have 'signature' or 'hmac'"),
        _ if hmac => Ok(VerifyMode::Hmac),
        _ => Ok(VerifyMode::Signature),
    }
}

/// Up to this many items of this many input bytes in all, a batch for a symmetric key
/// (AES-GCM, ChaCha20-Poly1305, HMAC) runs where the request is handled: a few
/// microseconds per item, less than handing it to a pool thread would cost. Anything
/// larger, and every operation with an asymmetric key, runs on the compute pool.
const INLINE_ITEMS: usize = 256;
const INLINE_BYTES: usize = 256 * 1024;

/// Items per turn on the compute pool: a turn of RSA private-key operations lasts tens of
/// milliseconds, so other requests waiting for the pool are not held long.
fn chunk_for(kind: KeyType) -> usize {
    if kind.is_rsa() {
        8
    } else if kind.is_asymmetric() {
        32
    } else {
        256
    }
}

/// Whether work on `items` items with `bytes` bytes of input under `kind` leaves the
/// async workers.
fn offload(kind: KeyType, items: usize, bytes: usize) -> bool {
    kind.is_asymmetric() || items > INLINE_ITEMS || bytes > INLINE_BYTES
}

fn field_len(v: &Option<String>) -> usize {
    v.as_ref().map_or(0, String::len)
}

/// Applies `f` to every item with a key of `kind`: inline when the work is small, else
/// on the compute pool.
async fn per_item<I, T, F>(
    kind: KeyType,
    key: Arc<Key>,
    items: &[I],
    bytes: usize,
    f: F,
) -> TransitResult<Vec<T>>
where
    I: Clone + Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(&Key, &I) -> T + Send + Sync + 'static,
{
    if !offload(kind, items.len(), bytes) {
        return Ok(items.iter().map(|i| f(&key, i)).collect());
    }
    Ok(compute::map(items.to_vec(), chunk_for(kind), move |i| f(&key, i)).await?)
}

impl TransitEngine {
    /// Refuses a `batch_input` longer than the appliance allows, naming the limit.
    fn check_batch<I>(&self, items: &[I]) -> TransitResult<()> {
        let max = self.settings.max_batch_items;
        if items.len() > max {
            return Err(TransitError::invalid(format!(
                "batch_input has {} items, more than the limit of {max} (max_batch_items in the server configuration)",
                items.len()
            )));
        }
        Ok(())
    }

    /// `encrypt/:name`. A missing key is created first (Vault's upsert), of `key_type`
    /// (an AEAD type), derived when the items carry a context. Returns the outcomes and
    /// whether the key was created.
    pub async fn encrypt(
        &self,
        name: &str,
        items: &[CipherItem],
        key_type: Option<&str>,
        convergent: bool,
    ) -> TransitResult<(Vec<ItemResult<Encrypted>>, bool)> {
        self.check_batch(items)?;
        let context_set = contexts_consistent(items.iter().map(|i| &i.context))?;
        let (key, created) = match self.get(name)? {
            Some(k) => (k, false),
            None => {
                if convergent && !context_set {
                    return Err(TransitError::invalid(
                        "convergent encryption requires derivation to be enabled, so context is required",
                    ));
                }
                let kind = KeyType::parse(key_type.unwrap_or("aes256-gcm96"))?;
                if !kind.is_aead() {
                    return Err(TransitError::invalid(format!(
                        "key type {kind} not supported for this operation"
                    )));
                }
                let spec = CreateKey {
                    kind,
                    derived: context_set,
                    convergent_encryption: convergent,
                    ..Default::default()
                };
                self.create(name, spec).await?
            }
        };
        let bytes = items.iter().map(|i| field_len(&i.plaintext)).sum();
        let results = per_item(key.kind(), key, items, bytes, encrypt_item).await?;
        Ok((results, created))
    }

    /// `decrypt/:name`: base64 plaintexts. An unknown key name fails every item exactly
    /// as a wrong key does.
    pub async fn decrypt(
        &self,
        name: &str,
        items: &[CipherItem],
    ) -> TransitResult<Vec<ItemResult<Zeroizing<String>>>> {
        self.check_batch(items)?;
        contexts_consistent(items.iter().map(|i| &i.context))?;
        let key = self.key_for_decrypt(name)?;
        let bytes = items.iter().map(|i| field_len(&i.ciphertext)).sum();
        per_item(key.kind(), key, items, bytes, decrypt_item).await
    }

    /// `rewrap/:name`: decrypts and encrypts again under the requested (or latest)
    /// version, the plaintext never leaving the engine.
    pub async fn rewrap(
        &self,
        name: &str,
        items: &[CipherItem],
    ) -> TransitResult<Vec<ItemResult<Encrypted>>> {
        self.check_batch(items)?;
        contexts_consistent(items.iter().map(|i| &i.context))?;
        let key = self.key_for_decrypt(name)?;
        let bytes = items.iter().map(|i| field_len(&i.ciphertext)).sum();
        per_item(key.kind(), key, items, bytes, rewrap_item).await
    }

    /// `datakey/:plaintext|wrapped/:name`: a new random key and its ciphertext.
    pub async fn datakey(
        &self,
        name: &str,
        bits: u64,
        key_version: i64,
        context: &Option<String>,
        associated_data: &Option<String>,
    ) -> TransitResult<(SecretBytes, Encrypted)> {
        let context = decode_context(context)?;
        let aad = decode_field(associated_data.as_deref(), "associated_data")?;
        let key = self
            .get(name)?
            .ok_or_else(|| TransitError::invalid("encryption key not found"))?;
        let (data_key, ciphertext, key_version) = if offload(key.kind(), 1, 0) {
            compute::run(move || key.datakey(bits, key_version, &context, &aad)).await??
        } else {
            key.datakey(bits, key_version, &context, &aad)?
        };
        Ok((
            data_key,
            Encrypted {
                ciphertext,
                key_version,
            },
        ))
    }

    /// `sign/:name`.
    pub async fn sign(
        &self,
        name: &str,
        items: &[InputItem],
        key_version: i64,
        opts: &SignOptions,
    ) -> TransitResult<Vec<ItemResult<Signed>>> {
        if items.is_empty() {
            return Err(TransitError::invalid("missing batch input to process"));
        }
        self.check_batch(items)?;
        let key = self
            .get(name)?
            .ok_or_else(|| TransitError::invalid("signing key not found"))?;
        key.check_signing(opts, "signing")?;
        let opts = *opts;
        let bytes = items.iter().map(|i| field_len(&i.input)).sum();
        per_item(key.kind(), key, items, bytes, move |key, item| {
            sign_item(key, item, key_version, &opts)
        })
        .await
    }

    /// `verify/:name` with signatures.
    pub async fn verify_signatures(
        &self,
        name: &str,
        items: &[InputItem],
        opts: &SignOptions,
    ) -> TransitResult<Vec<ItemResult<bool>>> {
        self.check_batch(items)?;
        let key = self
            .get(name)?
            .ok_or_else(|| TransitError::invalid("signature verification key not found"))?;
        key.check_signing(opts, "verification")?;
        let opts = *opts;
        let bytes = items.iter().map(|i| field_len(&i.input)).sum();
        per_item(key.kind(), key, items, bytes, move |key, item| {
            verify_item(key, item, &opts)
        })
        .await
    }

    /// `hmac/:name(/:algorithm)`.
    pub async fn hmac(
        &self,
        name: &str,
        items: &[InputItem],
        key_version: i64,
        algorithm: &str,
    ) -> TransitResult<Vec<ItemResult<(String, u32)>>> {
        if items.is_empty() {
            return Err(TransitError::invalid("missing batch input to process"));
        }
        self.check_batch(items)?;
        let key = self
            .get(name)?
            .ok_or_else(|| TransitError::invalid("encryption key not found"))?;
        key.hmac_version(key_version)?;
        let algo = hmac_algorithm(algorithm)?;
        let bytes = items.iter().map(|i| field_len(&i.input)).sum();
        // HMAC is symmetric whatever the key's type: only the size of the work counts.
        per_item(KeyType::Hmac, key, items, bytes, move |key, item| {
            hmac_item(key, item, key_version, algo)
        })
        .await
    }

    /// `verify/:name` with HMACs.
    pub async fn verify_hmacs(
        &self,
        name: &str,
        items: &[InputItem],
        algorithm: &str,
    ) -> TransitResult<Vec<ItemResult<bool>>> {
        self.check_batch(items)?;
        let key = self
            .get(name)?
            .ok_or_else(|| TransitError::invalid("encryption key not found"))?;
        let algo = hmac_algorithm(algorithm)?;
        let bytes = items.iter().map(|i| field_len(&i.input)).sum();
        per_item(KeyType::Hmac, key, items, bytes, move |key, item| {
            verify_hmac_item(key, item, algo)
        })
        .await
    }
}

fn encrypt_item(key: &Key, item: &CipherItem) -> ItemResult<Encrypted> {
    malformed(&item.malformed)?;
    let Some(plaintext) = item.plaintext.as_deref() else {
        return Err(TransitError::invalid("missing plaintext to encrypt"));
    };
    let plaintext = decode_base64(plaintext)
        .map(Zeroizing::new)
        .map_err(|e| TransitError::invalid(base64_error(&e)))?;
    let context = decode_context(&item.context)?;
    let aad = decode_field(item.associated_data.as_deref(), "associated_data")?;
    if non_empty(&item.nonce).is_some() {
        return Err(TransitError::invalid("nonce provided when not allowed"));
    }
    let (ciphertext, key_version) = key.encrypt(item.key_version, &context, &plaintext, &aad)?;
    Ok(Encrypted {
        ciphertext,
        key_version,
    })
}

fn decrypt_item(key: &Key, item: &CipherItem) -> ItemResult<Zeroizing<String>> {
    malformed(&item.malformed)?;
    let Some(ciphertext) = non_empty(&item.ciphertext) else {
        return Err(TransitError::invalid("missing ciphertext to decrypt"));
    };
    let context = decode_context(&item.context)?;
    let aad = decode_field(item.associated_data.as_deref(), "associated_data")?;
    let plain = key.decrypt(ciphertext, &context, &aad)?;
    Ok(Zeroizing::new(STANDARD.encode(&*plain)))
}

fn rewrap_item(key: &Key, item: &CipherItem) -> ItemResult<Encrypted> {
    malformed(&item.malformed)?;
    let Some(ciphertext) = non_empty(&item.ciphertext) else {
        return Err(TransitError::invalid("missing ciphertext to decrypt"));
    };
    let context = decode_context(&item.context)?;
    let (ciphertext, key_version) = key.rewrap(ciphertext, &context, item.key_version)?;
    Ok(Encrypted {
        ciphertext,
        key_version,
    })
}

fn sign_item(
    key: &Key,
    item: &InputItem,
    key_version: i64,
    opts: &SignOptions,
) -> ItemResult<Signed> {
    malformed(&item.malformed)?;
    let Some(input) = item.input.as_deref() else {
        return Err(TransitError::invalid("missing input"));
    };
    let input = decode_field(Some(input), "input")?;
    let context = decode_context(&item.context)?;
    key.sign(key_version, &context, &input, opts)
}

fn verify_item(key: &Key, item: &InputItem, opts: &SignOptions) -> ItemResult<bool> {
    malformed(&item.malformed)?;
    let Some(input) = item.input.as_deref() else {
        return Err(TransitError::invalid("missing input"));
    };
    let input = decode_field(Some(input), "input")?;
    let Some(signature) = item.signature.as_deref() else {
        return Err(TransitError::invalid("missing signature"));
    };
    let context = decode_context(&item.context)?;
    key.verify(&context, &input, signature, opts)
}

fn hmac_item(
    key: &Key,
    item: &InputItem,
    key_version: i64,
    algo: HashAlgorithm,
) -> ItemResult<(String, u32)> {
    malformed(&item.malformed)?;
    let Some(input) = item.input.as_deref() else {
        return Err(TransitError::invalid("missing input for HMAC"));
    };
    let input = decode_field(Some(input), "input")?;
    key.hmac(key_version, algo, &input)
}

fn verify_hmac_item(key: &Key, item: &InputItem, algo: HashAlgorithm) -> ItemResult<bool> {
    malformed(&item.malformed)?;
    let Some(input) = item.input.as_deref() else {
        return Err(TransitError::invalid("missing input"));
    };
    let input = decode_field(Some(input), "input")?;
    let Some(hmac) = item.hmac.as_deref() else {
        return Err(TransitError::invalid("missing hmac"));
    };
    key.verify_hmac(algo, &input, hmac)
}

fn hmac_algorithm(name: &str) -> TransitResult<HashAlgorithm> {
    HashAlgorithm::from_name(name)
        .filter(|h| *h != HashAlgorithm::None)
        .ok_or_else(|| TransitError::invalid(format!("unsupported algorithm \"{name}\"")))
}
