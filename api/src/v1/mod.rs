//! `/v1`: Vault's API. Routing follows Vault's: a few `sys/` endpoints answer without a
//! token (and while sealed), the rest of `sys/` and `auth/token/` are built in, and every
//! other path goes to the secrets engine mounted at its longest prefix.

mod kv;
mod sys;
mod token;
mod transit;

use std::sync::Arc;

use engine::audit::RequestInfo as AuditRequest;
use engine::mounts::Backend;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(core: &Arc<Core>, req: VaultRequest) -> Result<Reply, ApiError> {
    if let Some(reply) = sys::unauthenticated(core, &req).await {
        return reply;
    }
    if core.is_sealed() {
        return Err(engine::EngineError::Sealed.into());
    }
    if core.audit.is_active() {
        return audited(core, &req).await;
    }
    dispatch(core, &req).await
}

/// Vault's order: the request is logged before it runs (and refused if no device takes
/// it, so nothing happens unrecorded), then logged again with its outcome.
async fn audited(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let remote = req.remote_address.map(|a| a.to_string());
    let auth = core.tokens.lookup(&req.token).ok().map(|(_, entry)| entry);
    let info = AuditRequest {
        id: &id,
        operation: req.op.as_str(),
        path: &req.path,
        data: (!req.body.is_empty()).then_some(&req.body),
        client_token: &req.token,
        remote_address: remote.as_deref(),
    };
    let denied = auth.is_none().then_some("permission denied");
    core.audit
        .log_request(&info, auth.as_deref(), denied)
        .map_err(audit_failed)?;
    let result = dispatch(core, req).await;
    let (status, body, error) = match &result {
        Ok(reply) => (reply.status.as_u16(), reply.body.clone(), None),
        Err(e) => (e.status.as_u16(), None, Some(e.errors.join("; "))),
    };
    core.audit
        .log_response(
            &info,
            auth.as_deref(),
            status,
            body.as_ref(),
            error.as_deref(),
        )
        .map_err(audit_failed)?;
    result
}

fn audit_failed(_: engine::EngineError) -> ApiError {
    ApiError::new(
        hyper::StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: the request could not be audited",
    )
}

async fn dispatch(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    let path = req.path.clone();
    if let Some(rest) = path.strip_prefix("sys/") {
        return sys::handle(core, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return token::handle(core, req, rest).await;
    }
    match core.mounts.route(&path) {
        Some((mount, rest)) => match &mount.backend {
            Backend::Kv(kv) => kv::handle(core, req, kv, &rest).await,
            Backend::Transit(t) => transit::handle(core, req, t, &rest).await,
        },
        None => Err(ApiError::unsupported_path(&path)),
    }
}
