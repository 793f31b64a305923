//! `/v1`: Vault's API. Routing follows Vault's: a few `sys/` endpoints answer without a
//! token (and while sealed), the rest of `sys/` and `auth/token/` are built in, and every
//! other path goes to the secrets engine mounted at its longest prefix.

mod kv;
mod sys;
mod token;
mod transit;

use std::sync::Arc;

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
    let path = req.path.clone();
    if let Some(rest) = path.strip_prefix("sys/") {
        return sys::handle(core, &req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return token::handle(core, &req, rest).await;
    }
    match core.mounts.route(&path) {
        Some((mount, rest)) => match &mount.backend {
            Backend::Kv(kv) => kv::handle(core, &req, kv, &rest).await,
            Backend::Transit(t) => transit::handle(core, &req, t, &rest).await,
        },
        None => Err(ApiError::unsupported_path(&path)),
    }
}
