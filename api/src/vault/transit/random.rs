//! `random(/:source)(/:bytes)`: random bytes, base64 or hex.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::transit::random::{random_bytes, Source};
use engine::Core;
use serde_json::json;

use super::{authorize_update, data_with_warnings, i64_field};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

fn url_bytes(s: &str) -> Result<i64, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad(format!("error parsing url-set byte count: {e}")))
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    first: Option<&str>,
    second: Option<&str>,
) -> Result<Reply, ApiError> {
    authorize_update(core, req).await?;
    let field_bytes = || Ok::<_, ApiError>(i64_field(req, "bytes")?.unwrap_or(32));
    // As Vault: one segment is a source if it names one, else a byte count.
    let (source, bytes) = match (first, second) {
        (None, _) => (Source::Platform, field_bytes()?),
        (Some(a), None) => match Source::parse(a) {
            Some(s) => (s, field_bytes()?),
            None => (Source::Platform, url_bytes(a)?),
        },
        (Some(a), Some(b)) => {
            let source = Source::parse(a).ok_or_else(|| {
                ApiError::bad(format!(
                    "unsupported entropy source {a:?}; must be \"platform\" or \"seal\", or \"all\""
                ))
            })?;
            (source, url_bytes(b)?)
        }
    };
    let format = req
        .str_field("format")?
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "base64".into());
    if format != "base64" && format != "hex" {
        return Err(ApiError::bad(format!(
            "unsupported encoding format {format:?}; must be \"hex\" or \"base64\""
        )));
    }
    let (bytes, warning) = random_bytes(bytes, source)?;
    let encoded = if format == "hex" {
        hex::encode(&*bytes)
    } else {
        STANDARD.encode(&*bytes)
    };
    Ok(data_with_warnings(
        json!({ "random_bytes": encoded }),
        warning.into_iter().map(String::from).collect(),
    ))
}
