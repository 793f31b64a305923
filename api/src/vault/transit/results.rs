//! Vault's answer to an operation on items: the one item's fields, or `batch_results`
//! with an entry per item, typed as OpenBao's batch response structs are.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::mounts::MountRef;
use engine::ops::transit::{Answered, Asked, ItemsRequest, OnItems};
use engine::transit::{Encrypted, Signed, TransitError};
use engine::{Core, EngineError};
use hyper::StatusCode;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{i64_field, with_warnings};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

/// An operation's answer for one item, as it reads alone and as a batch entry.
pub(super) trait Answer {
    type Single: Serialize;
    /// What a failed entry still shows is its `Default` (Vault's zero values for the
    /// fields it does not omit when empty).
    type Entry: Serialize + Default;

    fn single(self) -> Self::Single;
    fn entry(self) -> Self::Entry;
}

#[derive(Serialize, Default)]
pub(super) struct CiphertextAnswer {
    #[serde(skip_serializing_if = "String::is_empty")]
    ciphertext: String,
    #[serde(skip_serializing_if = "is_zero")]
    key_version: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Answer for Encrypted {
    type Single = CiphertextAnswer;
    type Entry = CiphertextAnswer;

    fn single(self) -> CiphertextAnswer {
        self.entry()
    }

    fn entry(self) -> CiphertextAnswer {
        CiphertextAnswer {
            ciphertext: self.ciphertext,
            key_version: self.key_version,
        }
    }
}

#[derive(Serialize, Default)]
pub(super) struct PlaintextAnswer {
    #[serde(serialize_with = "secret_str")]
    plaintext: Zeroizing<String>,
}

fn secret_str<S: serde::Serializer>(s: &Zeroizing<String>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(s)
}

impl Answer for Zeroizing<String> {
    type Single = PlaintextAnswer;
    type Entry = PlaintextAnswer;

    fn single(self) -> PlaintextAnswer {
        self.entry()
    }

    fn entry(self) -> PlaintextAnswer {
        PlaintextAnswer { plaintext: self }
    }
}

#[derive(Serialize)]
pub(super) struct SignatureAnswer {
    signature: String,
    key_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
}

/// Vault names the public key `publickey` in batch entries.
#[derive(Serialize, Default)]
pub(super) struct SignatureEntry {
    #[serde(skip_serializing_if = "String::is_empty")]
    signature: String,
    key_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    publickey: Option<String>,
}

impl Answer for Signed {
    type Single = SignatureAnswer;
    type Entry = SignatureEntry;

    fn single(self) -> SignatureAnswer {
        SignatureAnswer {
            signature: self.signature,
            key_version: self.key_version,
            public_key: self.public_key.map(|pk| STANDARD.encode(pk)),
        }
    }

    fn entry(self) -> SignatureEntry {
        let s = self.single();
        SignatureEntry {
            signature: s.signature,
            key_version: s.key_version,
            publickey: s.public_key,
        }
    }
}

#[derive(Serialize, Default)]
pub(super) struct ValidAnswer {
    valid: bool,
}

impl Answer for bool {
    type Single = ValidAnswer;
    type Entry = ValidAnswer;

    fn single(self) -> ValidAnswer {
        ValidAnswer { valid: self }
    }

    fn entry(self) -> ValidAnswer {
        self.single()
    }
}

#[derive(Serialize, Default)]
pub(super) struct HmacAnswer {
    #[serde(skip_serializing_if = "String::is_empty")]
    hmac: String,
}

impl Answer for String {
    type Single = HmacAnswer;
    type Entry = HmacAnswer;

    fn single(self) -> HmacAnswer {
        HmacAnswer { hmac: self }
    }

    fn entry(self) -> HmacAnswer {
        self.single()
    }
}

#[derive(Serialize)]
struct BatchEntry<E> {
    #[serde(flatten)]
    answer: E,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    reference: String,
}

#[derive(Serialize)]
struct BatchResults<E> {
    batch_results: Vec<BatchEntry<E>>,
}

/// What failed entries do to a batch's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failures {
    /// encrypt, decrypt: 400 if any item was the caller's mistake (500 if the appliance
    /// failed one), unless some items succeeded and `partial_failure_response_code`
    /// asks for another code.
    SetStatus,
    /// rewrap, sign, verify, hmac: 200, the errors in their entries.
    InEntries,
}

/// How the items of a batch fared.
#[derive(Default)]
struct Tally {
    successes: bool,
    user_errors: bool,
    internal_errors: bool,
}

impl Tally {
    /// The `error` text of a failed item, counted as the caller's or the appliance's.
    fn failed(&mut self, e: &TransitError) -> String {
        if e.is_user_error() {
            self.user_errors = true;
        } else {
            self.internal_errors = true;
        }
        e.item_message()
    }
}

fn to_value(v: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| EngineError::internal(e).into())
}

/// The answer to a request on one item or a batch, with Vault's `warnings`.
pub(super) fn single_or_batch<T: Answer>(
    req: &VaultRequest,
    answered: Answered<T>,
    failures: Failures,
    warnings: Vec<String>,
) -> Result<Reply, ApiError> {
    let items = match answered {
        Answered::One(answer) => {
            let data = to_value(answer.single())?;
            return Ok(with_warnings(Reply::data(data), warnings));
        }
        Answered::Batch(items) => items,
    };
    let mut tally = Tally::default();
    let batch_results = items
        .into_iter()
        .map(|item| {
            let (answer, error) = match item.result {
                Ok(answer) => {
                    tally.successes = true;
                    (answer.entry(), None)
                }
                Err(e) => (T::Entry::default(), Some(tally.failed(&e))),
            };
            BatchEntry {
                answer,
                error,
                reference: item.reference,
            }
        })
        .collect();
    let reply = Reply::data(to_value(BatchResults { batch_results })?);
    let reply = match failures {
        Failures::SetStatus => batch_status(req, reply, &tally)?,
        Failures::InEntries => reply,
    };
    Ok(with_warnings(reply, warnings))
}

fn batch_status(req: &VaultRequest, mut reply: Reply, tally: &Tally) -> Result<Reply, ApiError> {
    if !(tally.user_errors || tally.internal_errors) {
        return Ok(reply);
    }
    let mut code = if tally.user_errors {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if tally.successes {
        if let Some(raw) = i64_field(req, "partial_failure_response_code")? {
            match u16::try_from(raw)
                .ok()
                .filter(|c| (1..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(c) => code = c,
                None => {
                    if let Some(body) = reply.body.as_mut() {
                        body["warnings"] = Value::from(vec![format!(
                            "invalid HTTP response code override from partial_failure_response_code, reverting to {}",
                            code.as_u16()
                        )]);
                    }
                }
            }
        }
    }
    Ok(reply.with_status(code))
}

/// Runs the request on items with the named key through the engine's entry point, and
/// answers as Vault does.
pub(super) async fn on_items<R>(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    key: &str,
    request: Result<Asked<R>, EngineError>,
    failures: Failures,
) -> Result<Reply, ApiError>
where
    R: ItemsRequest,
    R::Answer: Answer,
{
    let key = key.to_string();
    apply(
        core,
        req,
        OnItems {
            mount,
            key,
            request,
        },
        |answered| single_or_batch(req, answered, failures, vec![]),
    )
    .await
}
