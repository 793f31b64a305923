//! `sys/appliance`: the storage backend's health, for the console's status page.
//! Ironseal's own path.

use std::sync::Arc;

use engine::ops::sys::appliance::ApplianceRead;
use engine::policy::Operation;
use engine::Core;

use super::{apply, to_json, unsupported};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn read(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return unsupported(core, req, engine::ops::Access::Acl).await;
    }
    apply(core, req, ApplianceRead, |status| {
        Ok(Reply::data(to_json(status)?))
    })
    .await
}
