//! `GET /api/v1/audit/entries` (a device's latest lines, newest first, filtered by
//! `path`, `operation`, `outcome`, `type`, `since`/`until` (RFC 3339) and `limit`) and
//! `GET /api/v1/audit/verify?device=PATH` (the hash chain checked with its key). Both
//! need `sudo` on their path, as `sys/audit` does.

use std::sync::Arc;

use engine::audit::entries::{EntryQuery, Outcome, MAX_LIMIT};
use engine::ops::sys::audit::{AuditEntries, AuditVerify};
use engine::ops::Decoded;
use engine::Core;
use serde_json::json;
use time::OffsetDateTime;

use super::{apply, invalid, ApiReply, ApiRequest, ApiResult};

const DEFAULT_LIMIT: usize = 100;

fn entry_query(req: &ApiRequest) -> Decoded<EntryQuery> {
    let text = |name: &str| req.query.get(name).filter(|v| !v.is_empty()).cloned();
    let time = |name: &str| {
        text(name)
            .map(|t| {
                OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).map_err(
                    |_| invalid("INVALID_TIME", format!("{name} must be an RFC 3339 time")),
                )
            })
            .transpose()
    };
    let outcome = text("outcome")
        .map(|o| {
            Outcome::parse(&o).ok_or_else(|| {
                invalid(
                    "INVALID_OUTCOME",
                    format!("unknown outcome {o:?}: use success, denied or error"),
                )
            })
        })
        .transpose()?;
    let limit = match text("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "INVALID_LIMIT",
                    format!("limit must be between 1 and {MAX_LIMIT}"),
                ))
            }
        },
    };
    Ok(EntryQuery {
        device: text("device"),
        path: text("path"),
        operation: text("operation"),
        outcome,
        kind: text("type"),
        since: time("since")?,
        until: time("until")?,
        limit,
    })
}

pub async fn entries(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let op = AuditEntries {
        query: entry_query(req),
    };
    apply(core, req, op, |entries| {
        Ok(ApiReply::ok(json!({ "entries": entries })))
    })
    .await
}

pub async fn verify(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let op = AuditVerify {
        device: req.query.get("device").cloned().unwrap_or_default(),
    };
    apply(core, req, op, |report| {
        Ok(ApiReply::ok(
            serde_json::to_value(report).unwrap_or_default(),
        ))
    })
    .await
}
