//! `/api/v1`: the key API (managed keys). JSON with camelCase fields, RFC 3339 times,
//! UUID ids, errors as problem objects with a stable `code` (see `problem.rs`).
//!
//! Authorisation is by scope, not by Vault ACL: `keys:read` (list, get, list cloud
//! exports), `keys:write` (create, rotate, enable/disable, destruction, cloud exports),
//! `keys:use` (sign, verify, encrypt, decrypt). Scopes are facts in the token (root tokens hold all). A holder may attenuate
//! a Biscuit token offline; its checks see `operation` ("read", "write", "use"),
//! `required_scope`, `path`, `time`, and `key_name`/`key_id` for requests on one key.
//!
//! Each handler decodes its request into an engine operation (`engine::ops::managed_keys`,
//! `engine::ops::cloud_exports`)
//! and encodes the outcome; the scope, the attenuation checks and the audit lines are the
//! engine's (`Core::apply`). Fields are decoded before, but reported after, authorization.

mod audit;
mod cloud_exports;
mod crypto;
mod destruction;
mod keys;
mod openapi;
mod problem;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use engine::managed_keys::{KeyError, VersionState};
use engine::ops::{Access, Audited, AuditedResponse, Decoded, Op, Refuse, Request};
use engine::policy::Operation;
use engine::{Core, EngineError};
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};

pub use problem::Problem;

/// Request bodies on `/api/v1` are small: messages are at most 64 KiB (base64: ~87 KiB).
pub const MAX_BODY: usize = 1 << 20;

pub struct ApiRequest {
    pub method: Method,
    /// The path below `/api/v1/`, split on '/'.
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
    pub body: Map<String, Value>,
    pub token: String,
    /// The client's address, for audit entries.
    /// Formatted only when an audit device needs it.
    pub remote_address: Option<std::net::IpAddr>,
}

pub struct ApiReply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl ApiReply {
    pub fn ok(body: Value) -> Self {
        ApiReply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub fn created(body: Value) -> Self {
        ApiReply {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }
}

pub type ApiResult = Result<ApiReply, Problem>;

impl ApiRequest {
    pub fn parse(
        method: Method,
        rest: &str,
        query: HashMap<String, String>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Self, Problem> {
        let segments: Vec<String> = rest
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Problem::bad(
                        "MALFORMED_JSON",
                        "the request body must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(Problem::bad(
                        "MALFORMED_JSON",
                        format!("the request body is not valid JSON: {e}"),
                    ))
                }
            }
        };
        Ok(ApiRequest {
            method,
            segments,
            query,
            body,
            token: crate::request::token_from(headers),
            remote_address: None,
        })
    }

    pub fn str_field(&self, name: &str) -> Decoded<Option<&str>> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(
                "INVALID_FIELD",
                format!("field {name:?} must be a string"),
            )),
        }
    }

    pub fn required_str(&self, name: &str) -> Decoded<&str> {
        self.str_field(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("MISSING_FIELD", format!("field {name:?} is required")))
    }

    pub fn u64_field(&self, name: &str) -> Decoded<Option<u64>> {
        let bad = || {
            invalid(
                "INVALID_FIELD",
                format!("field {name:?} must be a non-negative integer"),
            )
        };
        match self.body.get(name) {
            None | Some(Value::Null) => match self.query.get(name) {
                Some(q) => q.parse().map(Some).map_err(|_| bad()),
                None => Ok(None),
            },
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// A base64 field (standard alphabet, padding optional; URL-safe accepted).
    pub fn b64_field(&self, name: &str) -> Decoded<Vec<u8>> {
        let s = self.str_field(name)?.ok_or_else(|| {
            invalid(
                "MISSING_FIELD",
                format!("field {name:?} (base64) is required"),
            )
        })?;
        let cleaned = s.trim_end_matches('=');
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(cleaned)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned))
            .map_err(|_| invalid("INVALID_BASE64", format!("field {name:?} must be base64")))
    }

    pub fn version_field(&self) -> Decoded<Option<u32>> {
        match self.u64_field("version")? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| invalid("INVALID_FIELD", "field \"version\" is too large")),
        }
    }
}

/// A field the request got wrong: a 400 problem with its own `code`, reported once the
/// caller is authorised.
pub fn invalid(code: &'static str, detail: impl Into<String>) -> EngineError {
    KeyError::invalid(code, detail).into()
}

/// A key-API answer as the audit log records it: the problem's detail as the error.
struct Answer(ApiResult);

impl Audited for Answer {
    fn audited(&self) -> AuditedResponse<'_> {
        match &self.0 {
            Ok(reply) => AuditedResponse::answered(reply.status.as_u16(), reply.body.as_ref()),
            Err(p) => AuditedResponse::failed(p.status.as_u16(), p.detail.as_str()),
        }
    }
}

/// The request as the engine's entry point sees it: the path `api/v1/<segments>`, the
/// verb from the method, the body as the audited parameters.
fn apply_request<'a>(req: &'a ApiRequest, path: &'a str) -> Request<'a> {
    Request {
        token: &req.token,
        remote: req.remote_address,
        path,
        operation: match req.method {
            Method::GET | Method::HEAD => Operation::Read,
            Method::DELETE => Operation::Delete,
            _ => Operation::Update,
        },
        params: &req.body,
    }
}

fn path(req: &ApiRequest) -> String {
    format!("api/v1/{}", req.segments.join("/"))
}

/// Runs `op` for `req` through the engine's entry point; `ok` encodes the outcome.
async fn apply<O: Op>(
    core: &Arc<Core>,
    req: &ApiRequest,
    op: O,
    ok: impl Fn(O::Output) -> ApiResult,
) -> ApiResult {
    let path = path(req);
    core.apply(&apply_request(req, &path), op, |r| {
        Answer(r.map_err(Problem::from).and_then(&ok))
    })
    .await
    .0
}

/// Answers `problem` (no route, a method the route does not take) to anyone, without
/// authorization, and in the audit log like any request.
async fn refuse(core: &Arc<Core>, req: &ApiRequest, problem: Problem) -> ApiResult {
    let path = path(req);
    let op = Refuse {
        access: Access::Nobody,
        error: EngineError::UnsupportedOperation,
    };
    core.apply(&apply_request(req, &path), op, |r| {
        Answer(match r {
            Ok(never) => match never {},
            Err(EngineError::AuditFailed) => Err(EngineError::AuditFailed.into()),
            // Sealed too: a refusal needs nothing the seal guards, and no audit device
            // is loaded while sealed.
            Err(_) => Err(problem.clone()),
        })
    })
    .await
    .0
}

/// What a request on `/api/v1` asks for, decided from its method and path alone.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    ListKeys,
    CreateKey,
    GetKey(&'a str),
    Rotate(&'a str),
    VersionState {
        key: &'a str,
        version: &'a str,
        state: VersionState,
    },
    ScheduleDestruction(&'a str),
    CancelDestruction(&'a str),
    Crypto(&'a str, crypto::Use),
    ListExports(&'a str),
    CreateExport(&'a str),
    ExportAutoSync {
        key: &'a str,
        export: &'a str,
    },
    SyncExport {
        key: &'a str,
        export: &'a str,
    },
    DeleteExport {
        key: &'a str,
        export: &'a str,
    },
    AuditEntries,
    AuditVerify,
    ApiDocument,
}

fn unsupported_method(req: &ApiRequest) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!(
            "{} is not allowed on /api/v1/{}",
            req.method,
            req.segments.join("/")
        ),
    )
}

fn not_found(req: &ApiRequest) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no such endpoint: /api/v1/{}", req.segments.join("/")),
    )
}

fn route(req: &ApiRequest) -> Result<Endpoint<'_>, Problem> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let post = |endpoint| match req.method {
        Method::POST => Ok(endpoint),
        _ => Err(unsupported_method(req)),
    };
    let get = |endpoint| match req.method {
        Method::GET => Ok(endpoint),
        _ => Err(unsupported_method(req)),
    };
    match segs.as_slice() {
        ["keys"] => match req.method {
            Method::GET => Ok(Endpoint::ListKeys),
            Method::POST => Ok(Endpoint::CreateKey),
            _ => Err(unsupported_method(req)),
        },
        ["keys", id] => match req.method {
            Method::GET => Ok(Endpoint::GetKey(id)),
            Method::DELETE => Ok(Endpoint::ScheduleDestruction(id)),
            _ => Err(unsupported_method(req)),
        },
        ["keys", id, "rotate"] => post(Endpoint::Rotate(id)),
        ["keys", id, "versions", v, action @ ("enable" | "disable")] => {
            post(Endpoint::VersionState {
                key: id,
                version: v,
                state: if *action == "enable" {
                    VersionState::Enabled
                } else {
                    VersionState::Disabled
                },
            })
        }
        ["keys", id, "schedule-destruction"] => match req.method {
            Method::POST | Method::DELETE => Ok(Endpoint::ScheduleDestruction(id)),
            _ => Err(unsupported_method(req)),
        },
        ["keys", id, "cancel-destruction"] => post(Endpoint::CancelDestruction(id)),
        ["keys", id, "cloud-exports"] => match req.method {
            Method::GET => Ok(Endpoint::ListExports(id)),
            Method::POST => Ok(Endpoint::CreateExport(id)),
            _ => Err(unsupported_method(req)),
        },
        ["keys", key, "cloud-exports", export] => match req.method {
            Method::DELETE => Ok(Endpoint::DeleteExport { key, export }),
            _ => Err(unsupported_method(req)),
        },
        ["keys", key, "cloud-exports", export, "auto-sync"] => match req.method {
            Method::PATCH => Ok(Endpoint::ExportAutoSync { key, export }),
            _ => Err(unsupported_method(req)),
        },
        ["keys", key, "cloud-exports", export, "sync"] => {
            post(Endpoint::SyncExport { key, export })
        }
        ["keys", _, "cloud-exports", ..] => Err(not_found(req)),
        ["audit", "entries"] => get(Endpoint::AuditEntries),
        ["audit", "verify"] => get(Endpoint::AuditVerify),
        ["openapi.json"] => get(Endpoint::ApiDocument),
        ["keys", id, op] => match crypto::Use::from_segment(op) {
            Some(op) => post(Endpoint::Crypto(id, op)),
            None => Err(not_found(req)),
        },
        _ => Err(not_found(req)),
    }
}

pub async fn handle(core: &Arc<Core>, req: ApiRequest) -> ApiResult {
    let endpoint = match route(&req) {
        Ok(endpoint) => endpoint,
        Err(problem) => return refuse(core, &req, problem).await,
    };
    match endpoint {
        Endpoint::ListKeys => keys::list(core, &req).await,
        Endpoint::CreateKey => keys::create(core, &req).await,
        Endpoint::GetKey(id) => keys::get(core, &req, id).await,
        Endpoint::Rotate(id) => versions::rotate(core, &req, id).await,
        Endpoint::VersionState {
            key,
            version,
            state,
        } => versions::set_state(core, &req, key, version, state).await,
        Endpoint::ScheduleDestruction(id) => destruction::schedule(core, &req, id).await,
        Endpoint::CancelDestruction(id) => destruction::cancel(core, &req, id).await,
        Endpoint::Crypto(id, op) => crypto::handle(core, &req, id, op).await,
        Endpoint::ListExports(id) => cloud_exports::list(core, &req, id).await,
        Endpoint::CreateExport(id) => cloud_exports::create(core, &req, id).await,
        Endpoint::ExportAutoSync { key, export } => {
            cloud_exports::auto_sync(core, &req, key, export).await
        }
        Endpoint::SyncExport { key, export } => cloud_exports::sync(core, &req, key, export).await,
        Endpoint::DeleteExport { key, export } => {
            cloud_exports::delete(core, &req, key, export).await
        }
        Endpoint::AuditEntries => audit::entries(core, &req).await,
        Endpoint::AuditVerify => audit::verify(core, &req).await,
        Endpoint::ApiDocument => openapi::get(core, &req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> ApiRequest {
        ApiRequest::parse(
            method,
            path,
            HashMap::new(),
            &HeaderMap::new(),
            &Bytes::new(),
        )
        .unwrap_or_else(|p| panic!("{}", p.detail))
    }

    fn routed(method: Method, path: &str) -> Result<String, (u16, &'static str, String)> {
        route(&request(method, path))
            .map(|e| format!("{e:?}"))
            .map_err(|p| (p.status.as_u16(), p.code, p.detail))
    }

    #[test]
    fn each_method_and_path_reaches_its_operation() {
        let id = "0b7e2c9e-4c1f-4d3e-9a7b-2f1e0c9d8a7b";
        let table = [
            (Method::GET, "keys".to_string(), "ListKeys".to_string()),
            (Method::POST, "/keys/".into(), "CreateKey".into()),
            (Method::GET, format!("keys/{id}"), format!("GetKey({id:?})")),
            (
                Method::DELETE,
                format!("keys/{id}"),
                format!("ScheduleDestruction({id:?})"),
            ),
            (
                Method::POST,
                format!("keys/{id}/schedule-destruction"),
                format!("ScheduleDestruction({id:?})"),
            ),
            (
                Method::DELETE,
                format!("keys/{id}/schedule-destruction"),
                format!("ScheduleDestruction({id:?})"),
            ),
            (
                Method::POST,
                format!("keys/{id}/cancel-destruction"),
                format!("CancelDestruction({id:?})"),
            ),
            (
                Method::POST,
                format!("keys/{id}/rotate"),
                format!("Rotate({id:?})"),
            ),
            (
                Method::POST,
                format!("keys/{id}/versions/2/disable"),
                format!("VersionState {{ key: {id:?}, version: \"2\", state: Disabled }}"),
            ),
            (
                Method::POST,
                format!("keys/{id}/versions/x/enable"),
                format!("VersionState {{ key: {id:?}, version: \"x\", state: Enabled }}"),
            ),
            (
                Method::POST,
                format!("keys/{id}/sign"),
                format!("Crypto({id:?}, Sign)"),
            ),
            (
                Method::POST,
                format!("keys/{id}/verify"),
                format!("Crypto({id:?}, Verify)"),
            ),
            (
                Method::POST,
                format!("keys/{id}/encrypt"),
                format!("Crypto({id:?}, Encrypt)"),
            ),
            (
                Method::POST,
                format!("keys/{id}/decrypt"),
                format!("Crypto({id:?}, Decrypt)"),
            ),
            (
                Method::GET,
                format!("keys/{id}/cloud-exports"),
                format!("ListExports({id:?})"),
            ),
            (
                Method::POST,
                format!("keys/{id}/cloud-exports"),
                format!("CreateExport({id:?})"),
            ),
            (
                Method::PATCH,
                format!("keys/{id}/cloud-exports/e1/auto-sync"),
                format!("ExportAutoSync {{ key: {id:?}, export: \"e1\" }}"),
            ),
            (
                Method::POST,
                format!("keys/{id}/cloud-exports/e1/sync"),
                format!("SyncExport {{ key: {id:?}, export: \"e1\" }}"),
            ),
            (
                Method::DELETE,
                format!("keys/{id}/cloud-exports/e1"),
                format!("DeleteExport {{ key: {id:?}, export: \"e1\" }}"),
            ),
            (Method::GET, "audit/entries".into(), "AuditEntries".into()),
            (Method::GET, "audit/verify".into(), "AuditVerify".into()),
        ];
        for (method, path, endpoint) in table {
            assert_eq!(
                routed(method.clone(), &path),
                Ok(endpoint),
                "{method} {path}"
            );
        }
    }

    /// The operations of the published document an endpoint serves. Exhaustive: a new
    /// endpoint does not compile until it is named here, and is documented by then.
    fn documented_as(endpoint: &Endpoint) -> &'static [&'static str] {
        match endpoint {
            Endpoint::ListKeys => &["listKeys"],
            Endpoint::CreateKey => &["createKey"],
            Endpoint::GetKey(_) => &["getKey"],
            Endpoint::Rotate(_) => &["rotateKey"],
            Endpoint::VersionState { .. } => &["enableKeyVersion", "disableKeyVersion"],
            Endpoint::ScheduleDestruction(_) => &[
                "deleteKey",
                "scheduleDestruction",
                "scheduleDestructionByDelete",
            ],
            Endpoint::CancelDestruction(_) => &["cancelDestruction"],
            Endpoint::Crypto(_, _) => &["sign", "verify", "encrypt", "decrypt"],
            Endpoint::ListExports(_) => &["listCloudExports"],
            Endpoint::CreateExport(_) => &["createCloudExport"],
            Endpoint::ExportAutoSync { .. } => &["setCloudExportAutoSync"],
            Endpoint::SyncExport { .. } => &["syncCloudExport"],
            Endpoint::DeleteExport { .. } => &["deleteCloudExport"],
            Endpoint::AuditEntries => &["auditEntries"],
            Endpoint::AuditVerify => &["auditVerify"],
            Endpoint::ApiDocument => &["openApi"],
        }
    }

    #[test]
    fn the_document_and_the_router_agree() {
        let mut named = std::collections::BTreeSet::new();
        for op in crate::openapi::operations("/api/v1/") {
            let path = op.sample_path();
            let method = Method::from_bytes(op.method.to_ascii_uppercase().as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", op.id));
            let req = request(method.clone(), &path);
            let endpoint =
                route(&req).unwrap_or_else(|p| panic!("{} ({method} {path}): {}", op.id, p.detail));
            assert!(
                documented_as(&endpoint).contains(&op.id.as_str()),
                "{} ({method} {path}) reaches {endpoint:?}",
                op.id
            );
            named.insert(op.id.clone());
            // Every other method on a documented path is refused by the router: none is
            // served without being documented.
            for other in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                if crate::openapi::documents(&op.path, other.as_str()) {
                    continue;
                }
                let req = request(other.clone(), &path);
                let refused = route(&req).map(|e| format!("{e:?}"));
                assert_eq!(
                    refused.map_err(|p| p.status.as_u16()),
                    Err(405),
                    "{other} {path} is served but not documented"
                );
            }
        }
        assert!(named.len() >= 20, "{named:?}");
    }

    #[test]
    fn a_method_the_route_does_not_take_is_405() {
        for (method, path) in [
            (Method::PUT, "keys"),
            (Method::DELETE, "keys"),
            (Method::HEAD, "keys"),
            (Method::POST, "keys/k"),
            (Method::GET, "keys/k/rotate"),
            (Method::DELETE, "keys/k/versions/1/enable"),
            (Method::GET, "keys/k/schedule-destruction"),
            (Method::DELETE, "keys/k/cancel-destruction"),
            (Method::GET, "keys/k/sign"),
            (Method::PUT, "keys/k/decrypt"),
            (Method::DELETE, "keys/k/cloud-exports"),
            (Method::GET, "keys/k/cloud-exports/e"),
            (Method::POST, "keys/k/cloud-exports/e/auto-sync"),
            (Method::GET, "keys/k/cloud-exports/e/sync"),
            (Method::POST, "audit/entries"),
            (Method::DELETE, "audit/verify"),
        ] {
            assert_eq!(
                routed(method.clone(), path),
                Err((
                    405,
                    "METHOD_NOT_ALLOWED",
                    format!("{method} is not allowed on /api/v1/{path}")
                )),
            );
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "",
            "nope",
            "keys/k/versions/1",
            "keys/k/versions/1/destroy",
            "keys/k/wrap",
            "keys/k/sign/extra",
            "keys/k/cloud-exports/e/nope",
            "keys/k/cloud-exports/e/sync/extra",
        ] {
            assert_eq!(
                routed(Method::POST, path),
                Err((
                    404,
                    "NOT_FOUND",
                    format!("no such endpoint: /api/v1/{path}")
                )),
            );
        }
    }

    #[test]
    fn the_audit_log_names_the_request_as_before() {
        let req = request(Method::DELETE, "/keys/k/");
        let path = path(&req);
        let r = apply_request(&req, &path);
        assert_eq!((r.path, r.operation), ("api/v1/keys/k", Operation::Delete));
        for (method, verb) in [
            (Method::GET, Operation::Read),
            (Method::HEAD, Operation::Read),
            (Method::POST, Operation::Update),
            (Method::PUT, Operation::Update),
        ] {
            let req = request(method, "keys");
            assert_eq!(apply_request(&req, "").operation, verb);
        }
    }

    #[test]
    fn the_audit_response_line_records_the_problem_detail() {
        let answer = Answer(Err(not_found(&request(Method::GET, "x"))));
        let a = answer.audited();
        assert_eq!(a.status, 404);
        assert!(a.body.is_none());
        assert_eq!(a.error.as_deref(), Some("no such endpoint: /api/v1/x"));
        let body = serde_json::json!({ "id": "k" });
        let answer = Answer(Ok(ApiReply::created(body.clone())));
        let a = answer.audited();
        assert_eq!((a.status, a.body, a.error), (201, Some(&body), None));
    }
}
