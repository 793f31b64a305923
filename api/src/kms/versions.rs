//! `POST /api/v1/keys/{keyId}/rotate` and
//! `POST /api/v1/keys/{keyId}/versions/{version}/{enable|disable}`.

use std::sync::Arc;

use engine::managed_keys::VersionState;
use engine::Core;
use hyper::Method;

use super::keys::key_json;
use super::{authorize, load_key, unsupported_method, ApiReply, ApiRequest, ApiResult, Problem};

pub async fn rotate(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    if req.method != Method::POST {
        return Err(unsupported_method(req));
    }
    let auth = authorize(core, req, "keys:write", "write").await?;
    let key = load_key(core, &auth, id)?;
    let key = core.keys.rotate(&key.id, core.root()?).await?;
    Ok(ApiReply::ok(key_json(&key)))
}

pub async fn set_state(
    core: &Arc<Core>,
    req: &ApiRequest,
    id: &str,
    version: &str,
    action: &str,
) -> ApiResult {
    if req.method != Method::POST {
        return Err(unsupported_method(req));
    }
    let auth = authorize(core, req, "keys:write", "write").await?;
    let version: u32 = version.parse().map_err(|_| {
        Problem::bad(
            "INVALID_VERSION",
            format!("{version:?} is not a version number"),
        )
    })?;
    let key = load_key(core, &auth, id)?;
    let state = if action == "enable" {
        VersionState::Enabled
    } else {
        VersionState::Disabled
    };
    let key = core.keys.set_version_state(&key.id, version, state).await?;
    Ok(ApiReply::ok(key_json(&key)))
}
