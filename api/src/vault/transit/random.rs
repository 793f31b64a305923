//! `random(/:source)(/:bytes)`: random bytes, base64 or hex.

use std::sync::Arc;

use engine::ops::transit::{RandomRequest, TransitRandom};
use engine::transit::random::Source;
use engine::{Core, EngineError};
use serde_json::json;

use super::{encoding, i64_field, str_or, with_warnings};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

fn url_bytes(s: &str) -> Result<i64, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad(format!("error parsing url-set byte count: {e}")))
}

fn request(
    req: &VaultRequest,
    first: Option<&str>,
    second: Option<&str>,
) -> Result<RandomRequest, EngineError> {
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
    let format = str_or(req, "format", "base64")?;
    let encoding = encoding(&format, &format!("{format:?}"))?;
    Ok(RandomRequest {
        source,
        bytes,
        encoding,
    })
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    first: Option<&str>,
    second: Option<&str>,
) -> Result<Reply, ApiError> {
    let request = request(req, first, second);
    apply(core, req, TransitRandom { request }, |r| {
        let warnings = r.warning.into_iter().map(String::from).collect();
        let data = json!({ "random_bytes": r.encoded });
        Ok(with_warnings(Reply::data(data), warnings))
    })
    .await
}
