//! `sys/metrics` (Prometheus text or Vault's JSON; not JSON-enveloped, so answered here
//! as an HTTP response) and `sys/host-info`.

use std::sync::Arc;

use bytes::Bytes;
use engine::ops::sys::metrics::{HostInfoRead, MetricsRead};
use engine::ops::{Access, Audited, AuditedResponse, Request};
use engine::policy::Operation;
use engine::Core;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::{apply, unsupported};
use crate::error::ApiError;
use crate::metrics;
use crate::request::VaultRequest;
use crate::response::{json_response, HttpResponse, Reply};

/// `sys/metrics`'s answer: a body of its own content type, or an error.
struct Scrape(Result<(StatusCode, &'static str, Bytes), ApiError>);

impl Audited for Scrape {
    fn audited(&self) -> AuditedResponse<'_> {
        match &self.0 {
            // The figures are not secrets, and not JSON: the status is the record.
            Ok((status, _, _)) => AuditedResponse::answered(status.as_u16(), None),
            Err(e) => AuditedResponse::failed(e.status.as_u16(), e.errors.join("; ")),
        }
    }
}

/// `prometheus` asks for the text format; `unauthenticated` is the listener's
/// `unauthenticated_metrics_access`; `prometheus_enabled` is false when the server's
/// telemetry block turns the text format off.
pub async fn metrics(
    core: &Arc<Core>,
    req: &VaultRequest,
    prometheus_accepted: bool,
    unauthenticated: bool,
    prometheus_enabled: bool,
) -> HttpResponse {
    if req.op != Operation::Read {
        let refused = if unauthenticated {
            Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ""))
        } else {
            unsupported(core, req, Access::Acl).await
        };
        return match refused {
            Ok(r) => json_response(r.status, r.body.as_ref()),
            Err(e) => json_response(e.status, Some(&e.body_json())),
        };
    }
    let format = match req.query.get("format").map(String::as_str) {
        Some(f) if !f.is_empty() => f.to_string(),
        _ if prometheus_accepted => "prometheus".into(),
        _ => String::new(),
    };
    let params = crate::vault::acl::parameters(req);
    let request = Request {
        token: &req.token,
        remote: req.remote_address,
        path: "sys/metrics",
        operation: req.op,
        params: &params,
    };
    let op = MetricsRead { unauthenticated };
    let scrape = core
        .apply(&request, op, |figures| {
            Scrape(
                figures
                    .map_err(ApiError::from)
                    .map(|f| match format.as_str() {
                        "prometheus" if !prometheus_enabled => (
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            Bytes::from_static(b"prometheus is not enabled"),
                        ),
                        "prometheus" => match metrics::prometheus_text(f) {
                            Ok(text) => (
                                StatusCode::OK,
                                metrics::PROMETHEUS_CONTENT_TYPE,
                                Bytes::from(text),
                            ),
                            Err(_) => (
                                StatusCode::BAD_REQUEST,
                                "text/plain",
                                Bytes::from_static(b"error during the encoding of metrics"),
                            ),
                        },
                        "" => (
                            StatusCode::OK,
                            "application/json",
                            Bytes::from(metrics::vault_json(f).to_string()),
                        ),
                        other => (
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            Bytes::from(format!("metric response format {other:?} unknown")),
                        ),
                    }),
            )
        })
        .await;
    match scrape.0 {
        Ok((status, content_type, body)) => {
            let mut resp = Response::new(Full::new(body));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => json_response(e.status, Some(&e.body_json())),
    }
}

pub async fn host_info(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Read {
        return unsupported(core, req, Access::AclSudo).await;
    }
    apply(core, req, HostInfoRead, |()| {
        Ok(Reply::data(crate::host_info::collect()))
    })
    .await
}
