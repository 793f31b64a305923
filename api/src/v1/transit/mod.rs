//! Transit below its mount: one file per path family, as OpenBao's
//! `builtin/logical/transit` has.

use std::sync::Arc;

use engine::transit::TransitEngine;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

pub async fn handle(
    _core: &Arc<Core>,
    req: &VaultRequest,
    _transit: &TransitEngine,
    _rest: &str,
) -> Result<Reply, ApiError> {
    Err(ApiError::unsupported_path(&req.path))
}
