//! `sys/wrapping/*`: Vault's response wrapping endpoints. Wrapping itself happens for any
//! request in the entry point ([`Core::apply_wrapping`](crate::Core::apply_wrapping));
//! these wrap caller data, and unwrap, look up and rewrap wrapping tokens.
//!
//! The wrapping token is named by the body's `token`, else it is the request's own
//! token. Unwrapping with the request's own token needs nothing else (holding it is the
//! authorization, and unwrapping spends it); with a token in the body, the caller's
//! token must be allowed `sys/wrapping/unwrap`, as Vault's default policy allows it.

use serde_json::{Map, Value};

use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::{WrapInfo, Wrapped};

/// Whether the body names the wrapping token (a malformed `token` counts: its error is
/// reported once the caller is authorised).
fn named(body: &Decoded<Option<String>>) -> bool {
    matches!(body, Ok(Some(_)) | Err(_))
}

/// The wrapping token: the body's `token`, else the request's own.
fn wrapping_token(cx: &Context<'_>, body: Decoded<Option<String>>) -> Result<String> {
    match body? {
        Some(t) if t.is_empty() => Err(EngineError::NoWrappingToken("empty token in request body")),
        Some(t) => Ok(t),
        None if cx.request.token.is_empty() => Err(EngineError::NoWrappingToken("token is empty")),
        None => Ok(cx.request.token.to_string()),
    }
}

/// `sys/wrapping/wrap`: the request's data, to be wrapped (the request must ask for
/// wrapping).
pub struct WrappingWrap {
    pub data: Map<String, Value>,
}

impl Op for WrappingWrap {
    type Output = Map<String, Value>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Map<String, Value>> {
        if cx.wrap_ttl.is_none() {
            return Err(EngineError::bad(
                "endpoint requires response wrapping to be used",
            ));
        }
        Ok(self.data)
    }
}

/// `sys/wrapping/unwrap`: the wrapped response (JSON text), once.
pub struct WrappingUnwrap {
    pub token: Decoded<Option<String>>,
}

impl Op for WrappingUnwrap {
    type Output = String;

    fn access(&self) -> Access {
        if named(&self.token) {
            Access::Acl(Operation::Update)
        } else {
            Access::Unauthenticated
        }
    }

    async fn run(self, cx: Context<'_>) -> Result<String> {
        let token = wrapping_token(&cx, self.token)?;
        Ok(cx.core.tokens.unwrap(&token).await?.response)
    }
}

/// `sys/wrapping/lookup`, served without a token as in Vault: the wrapping token's
/// creation time, TTL and path.
pub struct WrappingLookup {
    pub token: Decoded<Option<String>>,
}

impl Op for WrappingLookup {
    type Output = Wrapped;

    fn access(&self) -> Access {
        Access::Unauthenticated
    }

    async fn run(self, cx: Context<'_>) -> Result<Wrapped> {
        let token = wrapping_token(&cx, self.token)?;
        cx.core.tokens.lookup_wrapped(&token)
    }
}

/// `sys/wrapping/rewrap`: the wrapped response moved to a new wrapping token (the old
/// one stops working), with the original TTL or the request's wrapping TTL if shorter.
pub struct WrappingRewrap {
    pub token: Decoded<Option<String>>,
}

impl Op for WrappingRewrap {
    type Output = WrapInfo;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<WrapInfo> {
        let token = wrapping_token(&cx, self.token)?;
        cx.core.tokens.rewrap(&token, cx.wrap_ttl).await
    }
}
