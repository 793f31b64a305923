//! `export/:type/:name(/:version)`: key material, refused for private material unless
//! the key is exportable.

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::transit::TransitExport;
use engine::transit::{ExportFormat, ExportType};
use engine::Core;
use serde_json::{json, Map, Value};

use super::string_or_empty;
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    kind: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Reply, ApiError> {
    let op = TransitExport {
        mount,
        key: name.to_string(),
        what: ExportType::parse(kind).map_err(Into::into),
        format: string_or_empty(req, "format")
            .map_err(Into::into)
            .and_then(|f| Ok(ExportFormat::parse(&f)?)),
        version: version.map(str::to_string),
    };
    apply(core, req, op, |exported| {
        let keys: Map<String, Value> = exported
            .keys
            .iter()
            .map(|(n, material)| (n.to_string(), json!(material.as_str())))
            .collect();
        Ok(Reply::data(json!({
            "name": exported.name,
            "type": exported.kind.as_str(),
            "keys": keys,
        })))
    })
    .await
}
