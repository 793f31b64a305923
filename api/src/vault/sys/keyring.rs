//! `sys/rotate` and `sys/key-status`: the barrier keyring.

use std::sync::Arc;

use engine::ops::sys::keyring::{KeyringRotate, KeyringStatus};
use engine::ops::Access;
use engine::policy::Operation;
use engine::Core;
use serde_json::json;

use super::{apply, not_allowed, unsupported, with_data};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{rfc3339, Reply};

pub async fn rotate(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return unsupported(core, req, Access::AclSudo).await;
    }
    apply(core, req, KeyringRotate, |()| Ok(Reply::no_content())).await
}

pub async fn status(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return not_allowed(core, req).await;
    }
    apply(core, req, KeyringStatus, |s| {
        Ok(with_data(json!({
            "term": s.term,
            "install_time": rfc3339(Some(s.install_time)),
            "encryptions": 0,
        })))
    })
    .await
}
