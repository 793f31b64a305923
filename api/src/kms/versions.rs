//! `POST /api/v1/keys/{keyId}/rotate` and
//! `POST /api/v1/keys/{keyId}/versions/{version}/{enable|disable}`.

use std::sync::Arc;

use engine::managed_keys::VersionState;
use engine::ops::managed_keys::{KeyRotate, KeyVersionState};
use engine::Core;

use super::keys::key_json;
use super::{apply, invalid, ApiReply, ApiRequest, ApiResult};

pub async fn rotate(core: &Arc<Core>, req: &ApiRequest, id: &str) -> ApiResult {
    let op = KeyRotate {
        key: id.to_string(),
    };
    apply(core, req, op, |key| Ok(ApiReply::ok(key_json(&key)))).await
}

pub async fn set_state(
    core: &Arc<Core>,
    req: &ApiRequest,
    id: &str,
    version: &str,
    state: VersionState,
) -> ApiResult {
    let op = KeyVersionState {
        key: id.to_string(),
        version: version.parse().map_err(|_| {
            invalid(
                "INVALID_VERSION",
                format!("{version:?} is not a version number"),
            )
        }),
        state,
    };
    apply(core, req, op, |key| Ok(ApiReply::ok(key_json(&key)))).await
}
