//! `sys/internal/specs/openapi`: the API document, at the path Vault serves its own.

use std::sync::Arc;

use engine::ops::sys::specs::ApiDocument;
use engine::policy::Operation;
use engine::Core;

use super::{apply, not_allowed};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn openapi(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return not_allowed(core, req).await;
    }
    // Vault's `generic_mount_paths` rewrites its generated paths; this document is
    // written, not generated, so it is refused rather than ignored.
    let op = ApiDocument {
        params: req.refuse_unknown(&[]).map_err(Into::into),
    };
    apply(core, req, op, |()| {
        Ok(Reply::raw(crate::openapi::document().clone()))
    })
    .await
}
