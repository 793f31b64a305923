//! `/v1`: Vault's API. Routing follows Vault's: a few `sys/` endpoints answer without a
//! token (and while sealed), the rest of `sys/` and `auth/token/` are built in, and every
//! other path goes to the secrets engine mounted at its longest prefix.

mod acl;
mod kv;
mod sys;
mod token;
mod transit;

use std::sync::Arc;

use crate::audit::Outcome;
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

async fn audited(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    let audited = crate::audit::Request {
        operation: req.op.as_str(),
        path: &req.path,
        body: &req.body,
        token: &req.token,
        remote: req.remote_address,
    };
    crate::audit::around(core, audited, dispatch(core, req), |r| match r {
        Ok(reply) => Outcome {
            status: reply.status.as_u16(),
            body: reply.body.clone(),
            error: None,
        },
        Err(e) => Outcome {
            status: e.status.as_u16(),
            body: None,
            error: Some(e.errors.join("; ")),
        },
    })
    .await
    .map_err(|_| {
        ApiError::new(
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: the request could not be audited",
        )
    })?
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
