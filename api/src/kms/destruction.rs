//! `POST /api/v1/keys/{keyId}/schedule-destruction` `{"pendingWindowSeconds": n}`
//! (also `DELETE /api/v1/keys/{keyId}`) and `POST .../cancel-destruction`.

use std::sync::Arc;

use engine::managed_keys::DEFAULT_PENDING_WINDOW;
use engine::Core;
use hyper::Method;

use super::keys::key_json;
use super::{authorize, load_key, unsupported_method, ApiReply, ApiRequest, ApiResult};

pub async fn schedule(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    if req.method != Method::POST && req.method != Method::DELETE {
        return Err(unsupported_method(req));
    }
    let auth = authorize(core, req, "keys:write", "write").await?;
    let window = req
        .u64_field("pendingWindowSeconds")?
        .unwrap_or(DEFAULT_PENDING_WINDOW);
    let key = load_key(core, &auth, id)?;
    let key = core.keys.schedule_destruction(&key.id, window).await?;
    Ok(ApiReply::ok(key_json(&key)))
}

pub async fn cancel(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    if req.method != Method::POST {
        return Err(unsupported_method(req));
    }
    let auth = authorize(core, req, "keys:write", "write").await?;
    let key = load_key(core, &auth, id)?;
    let key = core.keys.cancel_destruction(&key.id).await?;
    Ok(ApiReply::ok(key_json(&key)))
}
