//! `/api/v1`: the key API (managed keys). JSON with camelCase fields, RFC 3339 times,
//! UUID ids, errors as problem objects with a stable `code` (see `problem.rs`).
//!
//! Authorisation is by scope, not by Vault ACL: `keys:read` (list, get), `keys:write`
//! (create, rotate, enable/disable, destruction), `keys:use` (sign, verify, encrypt,
//! decrypt). Scopes are facts in the token (root tokens hold all). A holder may attenuate
//! a Biscuit token offline; its checks see `operation` ("read", "write", "use"),
//! `required_scope`, `path`, `time`, and `key_name`/`key_id` for requests on one key.

mod crypto;
mod destruction;
mod keys;
mod problem;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use engine::managed_keys::{KeyStore, ManagedKey};
use engine::token::{Caller, KeyRequestFacts, VerifiedBiscuit};
use engine::Core;
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

    pub fn str_field(&self, name: &str) -> Result<Option<&str>, Problem> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Problem::bad(
                "INVALID_FIELD",
                format!("field {name:?} must be a string"),
            )),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&str, Problem> {
        self.str_field(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Problem::bad("MISSING_FIELD", format!("field {name:?} is required")))
    }

    pub fn u64_field(&self, name: &str) -> Result<Option<u64>, Problem> {
        let bad = || {
            Problem::bad(
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
    pub fn b64_field(&self, name: &str) -> Result<Vec<u8>, Problem> {
        let s = self.str_field(name)?.ok_or_else(|| {
            Problem::bad(
                "MISSING_FIELD",
                format!("field {name:?} (base64) is required"),
            )
        })?;
        let cleaned = s.trim_end_matches('=');
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(cleaned)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned))
            .map_err(|_| Problem::bad("INVALID_BASE64", format!("field {name:?} must be base64")))
    }

    pub fn version_field(&self) -> Result<Option<u32>, Problem> {
        match self.u64_field("version")? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| Problem::bad("INVALID_FIELD", "field \"version\" is too large")),
        }
    }
}

/// An authenticated caller whose attenuations are checked per key.
pub struct Auth {
    /// Who is calling (for the audit log).
    #[allow(dead_code)]
    pub caller: Caller,
    verified: Arc<VerifiedBiscuit>,
    scope: &'static str,
    operation: &'static str,
    path: String,
}

impl Auth {
    /// Checks the holder's attenuations against this request on `key_name` (None: a
    /// request not about one key).
    pub fn check(&self, key_name: Option<&str>, key_id: Option<&str>) -> Result<(), Problem> {
        self.verified
            .authorize_key_request(&KeyRequestFacts {
                path: &self.path,
                operation: self.operation,
                scope: self.scope,
                key_name,
                key_id,
            })
            .map_err(|_| {
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "ATTENUATION_DENIED",
                    match key_name {
                        Some(n) => format!(
                            "this token's attenuation does not allow {} on key {n:?}",
                            self.operation
                        ),
                        None => format!(
                            "this token's attenuation does not allow {} here",
                            self.operation
                        ),
                    },
                )
            })
    }

    pub fn check_key(&self, key: &ManagedKey) -> Result<(), Problem> {
        self.check(Some(&key.name), Some(&key.id.to_string()))
    }

    /// Whether the caller may see `key` (for listings).
    pub fn allows(&self, key: &ManagedKey) -> bool {
        self.check_key(key).is_ok()
    }
}

/// Authenticates the token and checks it holds `scope`.
pub async fn authorize(
    core: &Arc<Core>,
    req: &ApiRequest,
    scope: &'static str,
    operation: &'static str,
) -> Result<Auth, Problem> {
    if core.is_sealed() {
        return Err(engine::EngineError::Sealed.into());
    }
    let (caller, verified) = core.tokens.authenticate_deferred(&req.token).await?;
    if !caller.has_scope(scope) {
        return Err(Problem::missing_scope(scope));
    }
    Ok(Auth {
        caller,
        verified,
        scope,
        operation,
        path: format!("api/v1/{}", req.segments.join("/")),
    })
}

/// Loads the key `id` once the caller is authorised to name it.
pub fn load_key(core: &Core, auth: &Auth, id: &str) -> Result<ManagedKey, Problem> {
    let uuid = KeyStore::parse_id(id)?;
    let key = core.keys.get(&uuid)?;
    auth.check_key(&key)?;
    Ok(key)
}

pub fn unsupported_method(req: &ApiRequest) -> Problem {
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

pub fn not_found(req: &ApiRequest) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no such endpoint: /api/v1/{}", req.segments.join("/")),
    )
}

pub async fn handle(core: &Arc<Core>, req: ApiRequest) -> ApiResult {
    if core.audit.is_active() {
        return audited(core, &req).await;
    }
    dispatch(core, &req).await
}

/// Audited as on `/v1` (`crate::audit`).
async fn audited(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let path = format!("api/v1/{}", req.segments.join("/"));
    let audited = crate::audit::Request {
        operation: match req.method.as_str() {
            "GET" | "HEAD" => "read",
            "DELETE" => "delete",
            _ => "update",
        },
        path: &path,
        body: &req.body,
        token: &req.token,
        remote: req.remote_address,
    };
    crate::audit::around(core, audited, dispatch(core, req), |r| match r {
        Ok(reply) => crate::audit::Outcome {
            status: reply.status.as_u16(),
            body: reply.body.clone(),
            error: None,
        },
        Err(p) => crate::audit::Outcome {
            status: p.status.as_u16(),
            body: None,
            error: Some(p.detail.clone()),
        },
    })
    .await
    .map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "AUDIT_FAILED",
            "the request could not be audited",
        )
    })?
}

async fn dispatch(core: &Arc<Core>, req: &ApiRequest) -> ApiResult {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["keys"] => keys::collection(core, req).await,
        ["keys", id] => keys::item(core, req, id).await,
        ["keys", id, "rotate"] => versions::rotate(core, req, id).await,
        ["keys", id, "versions", v, action @ ("enable" | "disable")] => {
            versions::set_state(core, req, id, v, action).await
        }
        ["keys", id, "schedule-destruction"] => destruction::schedule(core, req, id).await,
        ["keys", id, "cancel-destruction"] => destruction::cancel(core, req, id).await,
        ["keys", id, op @ ("sign" | "verify" | "encrypt" | "decrypt")] => {
            crypto::handle(core, req, id, op).await
        }
        ["keys", _, "cloud-exports", ..] => Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "NOT_IMPLEMENTED",
            "cloud exports are not available on this appliance yet",
        )),
        _ => Err(not_found(req)),
    }
}
