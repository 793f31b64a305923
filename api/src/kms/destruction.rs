//! `POST /api/v1/keys/{keyId}/schedule-destruction` `{"pendingWindowSeconds": n}`
//! (also `DELETE /api/v1/keys/{keyId}`) and `POST .../cancel-destruction`.

use std::sync::Arc;

use engine::ops::managed_keys::{KeyCancelDestruction, KeyScheduleDestruction};
use engine::Core;

use super::keys::key_json;
use super::{apply, ApiReply, ApiRequest, ApiResult};

pub async fn schedule(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    let op = KeyScheduleDestruction {
        key: id.to_string(),
        pending_window_seconds: req.u64_field("pendingWindowSeconds"),
    };
    apply(core, req, op, |key| Ok(ApiReply::ok(key_json(&key)))).await
}

pub async fn cancel(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    let op = KeyCancelDestruction {
        key: id.to_string(),
    };
    apply(core, req, op, |key| Ok(ApiReply::ok(key_json(&key)))).await
}
