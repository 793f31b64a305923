//! `/v1`: Vault's API. Routing follows Vault's: a few `sys/` endpoints answer without a
//! token (and while sealed), the rest of `sys/` and `auth/token/` are built in, and every
//! other path goes to the secrets engine mounted at its longest prefix. Each handler
//! decodes its request into an engine operation and encodes the outcome; authorization
//! and audit happen in the engine's entry point (`Core::apply`).

mod acl;
mod auth;
mod kv;
pub(crate) mod sys;
mod token;
mod transit;

use std::sync::Arc;

use engine::mounts::EngineKind;
use engine::ops::{Access, Audited, AuditedResponse, Op, Refuse, Request, Wrappable};
use engine::token::WrapInfo;
use engine::{Core, EngineError};
use serde_json::Value;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(core: &Arc<Core>, req: VaultRequest) -> Result<Reply, ApiError> {
    if let Some(reply) = sys::unauthenticated(core, &req).await {
        return reply;
    }
    if core.is_sealed() {
        return Err(EngineError::Sealed.into());
    }
    dispatch(core, &req).await
}

async fn dispatch(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    let path = req.path.as_str();
    if let Some(rest) = path.strip_prefix("sys/") {
        return sys::handle(core, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return token::handle(core, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("auth/") {
        return auth::handle(core, req, rest).await;
    }
    match core.route(path) {
        Some((mount, rest)) => match mount.kind() {
            EngineKind::Kv => kv::handle(core, req, mount, &rest).await,
            EngineKind::Transit => transit::handle(core, req, mount, &rest).await,
        },
        None => no_route(core, req).await,
    }
}

/// A `/v1` answer as the audit log records it.
pub(crate) struct Answer(pub Result<Reply, ApiError>);

impl Audited for Answer {
    fn audited(&self) -> AuditedResponse<'_> {
        match &self.0 {
            Ok(reply) => AuditedResponse::answered(reply.status.as_u16(), reply.body.as_ref()),
            Err(e) => AuditedResponse::failed(e.status.as_u16(), e.errors.join("; ")),
        }
    }
}

/// Vault's answer naming a wrapping token in place of the response.
impl Wrappable for Answer {
    fn wrapped(info: WrapInfo) -> Self {
        Answer(Ok(wrap_info_reply(&info)))
    }
}

/// The envelope carrying `wrap_info`, as Vault answers a wrapped request.
pub(crate) fn wrap_info_reply(info: &WrapInfo) -> Reply {
    let mut wrap_info = serde_json::json!({
        "token": info.token.as_str(),
        "accessor": info.accessor,
        "ttl": info.ttl,
        "creation_time": info.creation_time,
        "creation_path": info.creation_path,
    });
    // Omitted when empty, as Vault's JSON does.
    if !info.wrapped_accessor.is_empty() {
        wrap_info["wrapped_accessor"] = Value::from(info.wrapped_accessor.as_str());
    }
    let mut body = crate::response::envelope(None, None);
    body["wrap_info"] = wrap_info;
    Reply::raw(body)
}

/// Runs `op` for `req` through the engine's entry point, the ACL checking the request's
/// own path; `ok` encodes the outcome.
pub(crate) async fn apply<O: Op>(
    core: &Arc<Core>,
    req: &VaultRequest,
    op: O,
    ok: impl Fn(O::Output) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    apply_at(core, req, &req.path, op, ok).await
}

/// [`apply`], the ACL and the audit log naming `path` (`sys/` paths drop their trailing
/// slash, as Vault's do).
pub(crate) async fn apply_at<O: Op>(
    core: &Arc<Core>,
    req: &VaultRequest,
    path: &str,
    op: O,
    ok: impl Fn(O::Output) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    let params = acl::parameters(req);
    let request = Request {
        token: &req.token,
        remote: req.remote_address,
        path,
        operation: req.op,
        params: &params,
    };
    core.apply_wrapping(&request, req.wrap_ttl, op, |r| {
        Answer(r.map_err(ApiError::from).and_then(&ok))
    })
    .await
    .0
}

/// Answers `error` once `access` is checked: Vault's order, the ACL before "unsupported
/// operation" or "no route".
pub(crate) async fn refuse(
    core: &Arc<Core>,
    req: &VaultRequest,
    access: Access,
    error: EngineError,
) -> Result<Reply, ApiError> {
    apply(core, req, Refuse { access, error }, |never| match never {}).await
}

/// The answer to a path nothing serves, audited like any request.
pub(crate) async fn no_route(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    refuse(
        core,
        req,
        Access::Nobody,
        EngineError::NoRoute(req.path.clone()),
    )
    .await
}

/// The answer to an operation a path does not declare: 403 for a token without that
/// capability there, 405 for anyone else.
pub(crate) async fn unsupported_operation(
    core: &Arc<Core>,
    req: &VaultRequest,
) -> Result<Reply, ApiError> {
    refuse(
        core,
        req,
        Access::Acl(req.op),
        EngineError::UnsupportedOperation,
    )
    .await
}
