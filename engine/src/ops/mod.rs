//! The one way into the engine. Every front door (Vault's `/v1`, the key API `/api/v1`,
//! and those to come: the PKCS#11 listener, the console, the cloud-export API) decodes
//! its wire format into a typed operation ([`Op`]) and hands it to [`Core::apply`] with
//! what it knows of the caller ([`Request`]). `apply` resolves the token, checks the ACL
//! (with its parameter constraints) or the key scope, writes the audit request line,
//! runs the operation, lets the door encode the outcome, writes the audit response line
//! with what the door will send, and returns it.
//!
//! The stores an operation runs against are `pub(crate)`: a door cannot reach storage,
//! the root key or a sub-store except through an operation, so none can forget
//! authorization or audit. Each operation declares what it needs once ([`Access`]),
//! including Vault's existence check that turns an `update` into a `create`.
//!
//! The compiler holds every door to it (`cargo test --doc -p ironseal-engine`, run by the
//! test command): none of these compiles outside the engine.
//!
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = &core.tokens; }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = &core.keys; }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = &core.mounts; }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = &core.auth_mounts; }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = &core.policies; }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = &core.audit; }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = core.root(); }
//! ```
//! ```compile_fail
//! fn bypass(core: &engine::Core) { let _ = core.barrier(); }
//! ```
//! ```compile_fail
//! async fn bypass(core: &engine::Core) { core.seal().await; }
//! ```
//! ```compile_fail
//! async fn bypass(core: &engine::Core) { let _ = core.rotate_keyring().await; }
//! ```
//! ```compile_fail
//! fn bypass(m: &engine::mounts::MountRef) { let _ = m.kv(); }
//! ```
//!
//! And this, the one way in, does:
//!
//! ```
//! use engine::ops::kv::KvRead;
//! use engine::ops::Request;
//! async fn door(core: std::sync::Arc<engine::Core>, req: Request<'_>) {
//!     if let Some((mount, rest)) = core.route(req.path) {
//!         let op = KvRead { mount, path: rest, version: Ok(None) };
//!         let _read = core.apply(&req, op, |r| Door(r.is_ok())).await;
//!     }
//! }
//! struct Door(bool);
//! impl engine::ops::Audited for Door {
//!     fn audited(&self) -> engine::ops::AuditedResponse<'_> {
//!         engine::ops::AuditedResponse { status: if self.0 { 200 } else { 400 }, body: None, error: None }
//!     }
//! }
//! ```

pub mod auth;
pub mod cloud_exports;
pub mod console;
pub mod kv;
pub mod managed_keys;
pub mod pkcs11;
pub mod sys;
#[cfg(test)]
mod tests;
pub mod token;
pub mod transit;

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::audit::{AuthInfo, RequestInfo};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::mounts::MountRef;
use crate::policy::Operation;
use crate::token::{Caller, KeyRequestFacts, VerifiedBiscuit, WrapInfo};

/// What a front door knows about a request before the engine looks at it.
pub struct Request<'a> {
    /// The token as presented (empty: none).
    pub token: &'a str,
    pub remote: Option<IpAddr>,
    /// The path as the ACL and the audit log name it (`secret/data/app`, `api/v1/keys`).
    pub path: &'a str,
    /// The request's verb as the audit log names it, and the capability an operation
    /// declaring [`Access::Acl`] without one checks.
    pub operation: Operation,
    /// The request's parameters: what the ACL's parameter constraints see and the audit
    /// log records (HMAC'd).
    pub params: &'a Map<String, Value>,
}

/// The scopes of the key API; root tokens hold all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// List and get keys.
    Read,
    /// Create, rotate, enable/disable versions, schedule and cancel destruction.
    Write,
    /// Sign, verify, encrypt, decrypt.
    Use,
}

impl Scope {
    pub fn fact(self) -> &'static str {
        match self {
            Scope::Read => "keys:read",
            Scope::Write => "keys:write",
            Scope::Use => "keys:use",
        }
    }

    /// The `operation` fact an attenuated token's checks see.
    fn verb(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Use => "use",
        }
    }
}

/// What a caller must hold for an operation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Served without a token, sealed or not (Vault's unauthenticated `sys/` paths).
    /// Not audited: no audit device is loaded while sealed.
    Public,
    /// Any valid token (`lookup-self`, `renew-self`, `capabilities-self`).
    AnyToken,
    /// The ACL's capability on the request's path.
    Acl(Operation),
    /// Vault's existence check: `create` if [`Op::exists`] says the target does not
    /// exist yet, `update` otherwise.
    AclCreateOrUpdate,
    /// The capability and `sudo` on the request's path (Vault's root paths).
    AclSudo(Operation),
    /// Nothing to check: for [`Refuse`] only, which answers its error to anyone, in
    /// the audit log like any request.
    Nobody,
    /// No token needed, but unsealed and audited like any request (unlike `Public`):
    /// an auth method's login, which brings credentials instead; Vault's
    /// unauthenticated paths that read the barrier (`sys/wrapping/lookup`); and
    /// `sys/wrapping/unwrap` presented the wrapping token itself, which the operation
    /// checks and spends (holding it is the authorization).
    Unauthenticated,
    /// A key-API scope; per-key attenuations are checked by the operation once it knows
    /// the key ([`Context::check_key`]).
    Scope(Scope),
}

/// A request field as the door decoded it. A malformed field is reported only once the
/// caller is authorised, as Vault does (its ACL check comes before the handler reads
/// its fields): a caller without access learns nothing about what the path accepts.
pub type Decoded<T> = Result<T>;

/// A typed operation: what one request asks of the engine, decoded from any wire
/// format.
pub trait Op: Send {
    type Output: Send;

    fn access(&self) -> Access;

    /// Whether the target exists, for [`Access::AclCreateOrUpdate`].
    fn exists(&self, _core: &Core) -> Result<bool> {
        Ok(true)
    }

    fn run(self, cx: Context<'_>) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// A request a door cannot serve (no route, an operation the path does not take),
/// answered with `error` once `access` is checked, so that it is authorised and audited
/// as Vault does: a caller without the capability there learns only "permission denied".
pub struct Refuse {
    pub access: Access,
    pub error: EngineError,
}

impl Op for Refuse {
    type Output = std::convert::Infallible;

    fn access(&self) -> Access {
        self.access
    }

    async fn run(self, _cx: Context<'_>) -> Result<Self::Output> {
        Err(self.error)
    }
}

/// What a running operation may use: the engine and the authorised caller.
pub struct Context<'a> {
    pub(crate) core: &'a Arc<Core>,
    /// None for [`Access::Public`].
    pub(crate) caller: Option<&'a Caller>,
    pub(crate) scope: Option<&'a ScopeGrant>,
    pub(crate) request: &'a Request<'a>,
    /// The capability the ACL granted (`create` or `update` after an existence check).
    pub(crate) granted: Operation,
    /// The response-wrapping TTL the request asked for, in seconds.
    pub(crate) wrap_ttl: Option<u64>,
}

/// A key-API caller's verified token, kept to check its attenuations per key.
pub(crate) struct ScopeGrant {
    verified: Arc<VerifiedBiscuit>,
    scope: Scope,
}

impl Context<'_> {
    /// The authorised caller; operations with an access other than `Public` have one.
    pub(crate) fn caller(&self) -> Result<&Caller> {
        self.caller
            .ok_or_else(|| EngineError::internal("operation ran without a caller"))
    }

    /// Checks an attenuated key-API token's own checks against this request on one key
    /// (`None`: a request not about one key).
    pub(crate) fn check_key(&self, name: Option<&str>, id: Option<&str>) -> Result<()> {
        let Some(grant) = self.scope else {
            return Ok(());
        };
        grant
            .verified
            .authorize_key_request(&KeyRequestFacts {
                path: self.request.path,
                operation: grant.scope.verb(),
                scope: grant.scope.fact(),
                key_name: name,
                key_id: id,
            })
            .map_err(|_| EngineError::AttenuationDenied {
                operation: grant.scope.verb(),
                key: name.map(str::to_string),
            })
    }
}

/// What the audit response line records of the answer a door will send.
pub struct AuditedResponse<'a> {
    pub status: u16,
    pub body: Option<&'a Value>,
    pub error: Option<Cow<'a, str>>,
}

impl<'a> AuditedResponse<'a> {
    pub fn answered(status: u16, body: Option<&'a Value>) -> Self {
        AuditedResponse {
            status,
            body,
            error: None,
        }
    }

    pub fn failed(status: u16, error: impl Into<Cow<'a, str>>) -> Self {
        AuditedResponse {
            status,
            body: None,
            error: Some(error.into()),
        }
    }
}

/// A front door's encoded answer, as the audit log sees it.
pub trait Audited {
    fn audited(&self) -> AuditedResponse<'_>;
}

/// An answer Vault's response wrapping can stand in for: the door that encoded it
/// answers with the wrapping token instead.
pub trait Wrappable: Audited {
    fn wrapped(info: WrapInfo) -> Self;
}

/// Response wrapping asked of one request: for how long, and how the door answers with
/// the wrapping token.
struct Wrapping<R> {
    ttl: u64,
    answer: fn(WrapInfo) -> R,
}

/// What authorization established, kept for the operation.
struct Granted {
    caller: Option<Caller>,
    scope: Option<ScopeGrant>,
    verb: Operation,
}

impl Core {
    /// The mount serving `path` (its longest mounted prefix) and the rest of the path.
    pub fn route(&self, path: &str) -> Option<(MountRef, String)> {
        self.mounts
            .route(path)
            .map(|(m, rest)| (MountRef::new(m), rest))
    }

    /// Runs `op` for the caller `req` describes: authorization, audit on both sides, and
    /// the door's `encode` of the outcome. `encode` may be called twice: if the audit
    /// response line cannot be written, the answer is withheld and the door encodes
    /// [`EngineError::AuditFailed`] instead.
    pub async fn apply<O: Op, R: Audited>(
        self: &Arc<Self>,
        req: &Request<'_>,
        op: O,
        encode: impl Fn(Result<O::Output>) -> R,
    ) -> R {
        self.apply_inner(req, None, op, encode).await
    }

    /// [`Core::apply`] for a request asking for Vault's response wrapping (`wrap_ttl`
    /// seconds; None: not asked): the policy's wrapping bounds are checked with the
    /// rest of the ACL, and a successful answer is kept for a new single-use wrapping
    /// token, the door answering with that token instead ([`Wrappable`]). The audit
    /// response line records the wrapped answer, as Vault's does. Vault's public `sys/`
    /// endpoints (seal status, health) do not wrap, sealed or not.
    pub async fn apply_wrapping<O: Op, R: Wrappable>(
        self: &Arc<Self>,
        req: &Request<'_>,
        wrap_ttl: Option<u64>,
        op: O,
        encode: impl Fn(Result<O::Output>) -> R,
    ) -> R {
        let wrapping = wrap_ttl.map(|ttl| Wrapping {
            ttl,
            answer: R::wrapped,
        });
        self.apply_inner(req, wrapping, op, encode).await
    }

    async fn apply_inner<O: Op, R: Audited>(
        self: &Arc<Self>,
        req: &Request<'_>,
        wrapping: Option<Wrapping<R>>,
        op: O,
        encode: impl Fn(Result<O::Output>) -> R,
    ) -> R {
        if op.access() == Access::Public {
            let granted = Granted {
                caller: None,
                scope: None,
                verb: req.operation,
            };
            return encode(self.run(req, op, &granted, None).await);
        }
        if self.is_sealed() {
            return encode(Err(EngineError::Sealed));
        }
        let wrap_ttl = wrapping.as_ref().map(|w| w.ttl);
        if !self.audit.is_active() {
            let reply = encode(self.authorize_and_run(req, wrap_ttl, op).await);
            return self.wrap_reply(req, wrapping, reply, &encode).await;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let remote = req.remote.map(|a| a.to_string());
        let identity = self.tokens.identify(req.token).ok();
        let auth = identity.as_ref().map(|(entry, attenuation)| AuthInfo {
            entry,
            attenuation: attenuation.as_deref(),
        });
        let info = RequestInfo {
            id: &id,
            operation: req.operation.as_str(),
            path: req.path,
            data: (!req.params.is_empty()).then_some(req.params),
            client_token: req.token,
            remote_address: remote.as_deref(),
        };
        let denied = (auth.is_none() && op.access() != Access::Unauthenticated)
            .then_some("permission denied");
        if self.audit.log_request(&info, auth, denied).await.is_err() {
            return encode(Err(EngineError::AuditFailed));
        }
        let reply = encode(self.authorize_and_run(req, wrap_ttl, op).await);
        let reply = self.wrap_reply(req, wrapping, reply, &encode).await;
        let o = reply.audited();
        let logged = self
            .audit
            .log_response(&info, auth, o.status, o.body, o.error.as_deref())
            .await;
        match logged {
            Ok(()) => reply,
            Err(_) => encode(Err(EngineError::AuditFailed)),
        }
    }

    async fn authorize_and_run<O: Op>(
        self: &Arc<Self>,
        req: &Request<'_>,
        wrap_ttl: Option<u64>,
        op: O,
    ) -> Result<O::Output> {
        let granted = self.grant(req, wrap_ttl, &op).await?;
        self.run(req, op, &granted, wrap_ttl).await
    }

    /// The door's answer, or the wrapping token standing in for it when the request
    /// asked for wrapping. As in Vault, errors and empty answers are not wrapped, nor
    /// is an answer that already is a wrapping token (`sys/wrapping/rewrap`).
    async fn wrap_reply<T, R: Audited>(
        &self,
        req: &Request<'_>,
        wrapping: Option<Wrapping<R>>,
        reply: R,
        encode: &impl Fn(Result<T>) -> R,
    ) -> R {
        let Some(wrapping) = wrapping else {
            return reply;
        };
        let audited = reply.audited();
        let (response, accessor) = match audited.body {
            Some(body) if audited.status < 300 && body["wrap_info"].is_null() => (
                serde_json::to_string(body),
                wrapped_accessor(req.path, body),
            ),
            _ => return reply,
        };
        // What is kept now lives under the barrier only; the plain answer goes.
        drop(reply);
        let response = match response {
            Ok(text) => text,
            Err(e) => return encode(Err(EngineError::internal(e))),
        };
        let wrapped = self
            .tokens
            .wrap(response, req.path, wrapping.ttl, accessor)
            .await;
        match wrapped {
            Ok(info) => (wrapping.answer)(info),
            Err(e) => encode(Err(e)),
        }
    }

    async fn grant<O: Op>(
        &self,
        req: &Request<'_>,
        wrap_ttl: Option<u64>,
        op: &O,
    ) -> Result<Granted> {
        let acl = |caller: Caller, verb: Operation| Granted {
            caller: Some(caller),
            scope: None,
            verb,
        };
        match op.access() {
            Access::Public | Access::Nobody | Access::Unauthenticated => Ok(Granted {
                caller: None,
                scope: None,
                verb: req.operation,
            }),
            Access::AnyToken => Ok(acl(
                self.tokens
                    .authenticate(req.token, req.path, req.operation, req.remote)
                    .await?,
                req.operation,
            )),
            Access::Acl(verb) => Ok(acl(self.check_acl(req, verb, wrap_ttl).await?, verb)),
            Access::AclCreateOrUpdate => {
                let verb = if op.exists(self)? {
                    Operation::Update
                } else {
                    Operation::Create
                };
                Ok(acl(self.check_acl(req, verb, wrap_ttl).await?, verb))
            }
            Access::AclSudo(verb) => {
                let caller = self.check_acl(req, verb, wrap_ttl).await?;
                if !self.acl(&caller)?.has_sudo(req.path) {
                    return Err(EngineError::Forbidden);
                }
                Ok(acl(caller, verb))
            }
            Access::Scope(scope) => {
                let (caller, verified) = self
                    .tokens
                    .authenticate_deferred(req.token, req.remote)
                    .await?;
                if !caller.has_scope(scope.fact()) {
                    return Err(EngineError::MissingScope(scope.fact()));
                }
                Ok(Granted {
                    caller: Some(caller),
                    scope: Some(ScopeGrant { verified, scope }),
                    verb: req.operation,
                })
            }
        }
    }

    async fn check_acl(
        &self,
        req: &Request<'_>,
        verb: Operation,
        wrap_ttl: Option<u64>,
    ) -> Result<Caller> {
        let caller = self
            .tokens
            .authenticate(req.token, req.path, verb, req.remote)
            .await?;
        let acl = self.policies.acl_for(&caller.entry.policies)?;
        let wrap_ttl = wrap_ttl.map(std::time::Duration::from_secs);
        if !acl.allows_wrapped(req.path, verb, req.params, wrap_ttl) {
            return Err(EngineError::Forbidden);
        }
        Ok(caller)
    }

    fn run<'a, O: Op + 'a>(
        self: &'a Arc<Self>,
        req: &'a Request<'a>,
        op: O,
        granted: &'a Granted,
        wrap_ttl: Option<u64>,
    ) -> impl Future<Output = Result<O::Output>> + Send + 'a {
        op.run(Context {
            core: self,
            caller: granted.caller.as_ref(),
            scope: granted.scope.as_ref(),
            request: req,
            granted: granted.verb,
            wrap_ttl,
        })
    }
}

/// The accessor of what a wrapped answer carries, for `wrap_info.wrapped_accessor`: a
/// token's (an `auth` block), else an AppRole secret-id's, as Vault records them.
fn wrapped_accessor(path: &str, body: &Value) -> String {
    let from = |v: &Value| v.as_str().map(str::to_string);
    from(&body["auth"]["accessor"])
        .or_else(|| {
            path.starts_with("auth/")
                .then(|| from(&body["data"]["secret_id_accessor"]))
                .flatten()
        })
        .unwrap_or_default()
}
