//! `/api/v1/openapi.json`: the API document, for clients of the key API.

use std::sync::Arc;

use engine::ops::sys::specs::ApiDocument;
use engine::Core;

use super::{apply, invalid, ApiReply, ApiRequest, ApiResult};

pub async fn get(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let params = match req.query.keys().chain(req.body.keys()).next() {
        None => Ok(()),
        Some(name) => Err(invalid(
            "UNKNOWN_FIELD",
            format!("{name:?} is not a parameter this endpoint takes (it takes none)"),
        )),
    };
    apply(core, req, ApiDocument { params }, |()| {
        Ok(ApiReply::ok(crate::openapi::document().clone()))
    })
    .await
}
