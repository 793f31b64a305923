//! Audit around a request, for both `/v1` and `/api/v1`. Vault's order: the request is
//! logged before it runs (and refused if no device takes it, so nothing happens
//! unrecorded), then logged again with its outcome.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use engine::audit::{AuthInfo, RequestInfo};
use engine::{Core, EngineError};
use serde_json::{Map, Value};

/// The request as its audit lines show it.
pub struct Request<'a> {
    pub operation: &'a str,
    pub path: &'a str,
    pub body: &'a Map<String, Value>,
    pub token: &'a str,
    pub remote: Option<IpAddr>,
}

/// What the response line records: the HTTP status, the body (HMAC'd by the broker) or
/// the error message.
pub struct Outcome {
    pub status: u16,
    pub body: Option<Value>,
    pub error: Option<String>,
}

/// Runs `run` between its two audit lines. The outer error means auditing failed: the
/// caller answers 500 (before `run`, nothing ran).
pub async fn around<T, E>(
    core: &Arc<Core>,
    req: Request<'_>,
    run: impl Future<Output = Result<T, E>>,
    outcome: impl FnOnce(&Result<T, E>) -> Outcome,
) -> Result<Result<T, E>, EngineError> {
    let id = uuid::Uuid::new_v4().to_string();
    let remote = req.remote.map(|a| a.to_string());
    let identity = core.tokens.identify(req.token).ok();
    let auth = identity.as_ref().map(|(entry, attenuation)| AuthInfo {
        entry,
        attenuation: attenuation.as_deref(),
    });
    let info = RequestInfo {
        id: &id,
        operation: req.operation,
        path: req.path,
        data: (!req.body.is_empty()).then_some(req.body),
        client_token: req.token,
        remote_address: remote.as_deref(),
    };
    let denied = auth.is_none().then_some("permission denied");
    core.audit.log_request(&info, auth, denied).await?;
    let result = run.await;
    let o = outcome(&result);
    core.audit
        .log_response(&info, auth, o.status, o.body.as_ref(), o.error.as_deref())
        .await?;
    Ok(result)
}
