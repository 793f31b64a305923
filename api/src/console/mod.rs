//! `/ui`: the web console. The daemon serves its assets (built in by the `console`
//! crate), the session API (`/ui/session`) and the `/ui/api/` proxy, which forwards to
//! `/v1` and `/api/v1` through the same router with the session's token, so every
//! console action is authorised and audited as the token's own. Every answer carries the
//! console's security headers.

mod proxy;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use engine::ops::console::{SessionTokenCheck, SessionTokenState, TokenStanding};
use engine::ops::Request as EngineRequest;
use engine::policy::Operation;
use engine::Core;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::budget::BodyBudget;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::request::VaultRequest;
use crate::response::{json_response, HttpResponse};
use session::{Identity, Session, Sessions};
use zeroize::Zeroizing;

const COOKIE: &str = "ironseal_console";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";
/// The sign-in body is a token and nothing else.
const MAX_SESSION_BODY: usize = 16 << 10;

/// The console of one listener.
pub struct Console {
    sessions: Sessions,
    /// `Secure` on the cookie: left out only on a plain-HTTP loopback listener, where a
    /// browser would not send a Secure cookie back.
    secure_cookie: bool,
    /// The listener's certificate fingerprint (None: plain HTTP), for the status page.
    tls_cert_sha256: Option<String>,
}

impl Console {
    /// The console of a listener bound to `local`, with TLS or not, serving the
    /// certificate whose fingerprint is `tls_cert_sha256`.
    pub fn new(local: SocketAddr, tls: bool, tls_cert_sha256: Option<String>) -> Self {
        Console {
            sessions: Sessions::default(),
            secure_cookie: tls || !local.ip().is_loopback(),
            tls_cert_sha256,
        }
    }
}

/// Whether `path` is the console's.
pub fn is_console_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// What every `/ui` request shares with the router.
pub(crate) struct Door<'a> {
    pub core: &'a Arc<Core>,
    pub limits: &'a Limits,
    pub budget: &'a BodyBudget,
}

pub(crate) async fn handle(
    console: &Console,
    door: Door<'_>,
    parts: hyper::http::request::Parts,
    body: Incoming,
) -> HttpResponse {
    let path = parts.uri.path().to_string();
    let mut resp = if path == "/ui/session" {
        session_api(console, &door, &parts, body).await
    } else if let Some(rest) = path.strip_prefix("/ui/api/") {
        let rest = rest.to_string();
        proxy::forward(console, &door, parts, body, &rest).await
    } else {
        static_file(&parts.method, &path)
    };
    secure_headers(resp.headers_mut());
    resp
}

fn secure_headers(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
}

fn error(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    json_response(status, Some(&ApiError::new(status, msg).body_json()))
}

/// The app's shell for `/ui`, `/ui/` and its routes (no dot in the last segment), the
/// assets below `/ui/assets/`.
fn static_file(method: &Method, path: &str) -> HttpResponse {
    if method != Method::GET && method != Method::HEAD {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the console's pages are read with GET",
        );
    }
    let name = match path.strip_prefix("/ui/assets/") {
        Some(asset) => asset,
        None if path
            .rsplit('/')
            .next()
            .is_some_and(|last| !last.contains('.')) =>
        {
            "index.html"
        }
        None => "",
    };
    let Some(asset) = (!name.split('/').any(|s| s.is_empty() || s == ".."))
        .then(|| ::console::asset(name))
        .flatten()
    else {
        return error(StatusCode::NOT_FOUND, format!("no console file at {path}"));
    };
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        asset.bytes,
    )));
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Assets change with the binary: always revalidated, never kept stale.
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static(if name == "index.html" {
            "no-store"
        } else {
            "no-cache"
        }),
    );
    resp
}

/// The session cookie's value, if the request has one.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_string())
        })
}

fn csrf_header(headers: &HeaderMap) -> &str {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The request's session, if its CSRF header matches it.
fn checked_session(console: &Console, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = session_id(headers)?;
    let s = console.sessions.get(&id)?;
    s.csrf_matches(csrf_header(headers)).then_some((id, s))
}

fn csrf_refused() -> HttpResponse {
    error(StatusCode::FORBIDDEN, "missing or invalid CSRF token")
}

fn set_cookie(console: &Console, resp: &mut HttpResponse, value: &str, clear: bool) {
    let mut cookie = format!("{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if console.secure_cookie {
        cookie.push_str("; Secure");
    }
    if clear {
        cookie.push_str("; Max-Age=0");
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(hyper::header::SET_COOKIE, v);
    }
}

fn rfc3339(unix: Option<i64>) -> Value {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(|t| Value::from(crate::response::rfc3339(Some(t))))
        .unwrap_or(Value::Null)
}

fn session_body(console: &Console, s: &Session, ended: Option<String>) -> Value {
    let id = s.identity.as_ref();
    json!({
        "listener": {
            "tls": console.secure_cookie && console.tls_cert_sha256.is_some(),
            "cert_sha256": console.tls_cert_sha256,
        },
        "csrf": s.csrf,
        "signed_in": id.is_some(),
        "display_name": id.map(|i| i.display_name.clone()),
        "policies": id.map(|i| i.policies.clone()).unwrap_or_default(),
        "expire_time": rfc3339(id.and_then(|i| i.expire_time)),
        "accessor": id.map(|i| i.accessor.clone()),
        "ended": ended,
    })
}

async fn session_api(
    console: &Console,
    door: &Door<'_>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> HttpResponse {
    match parts.method {
        Method::GET => read_session(console, door, &parts.headers).await,
        Method::POST => sign_in(console, door, parts, body).await,
        Method::DELETE => {
            let Some((id, _)) = checked_session(console, &parts.headers) else {
                return csrf_refused();
            };
            console.sessions.remove(&id);
            let mut resp = json_response(StatusCode::NO_CONTENT, None);
            set_cookie(console, &mut resp, "", true);
            resp
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "/ui/session takes GET, POST and DELETE",
        ),
    }
}

/// The session, made anonymous when the request has none; a signed-in one whose token
/// no longer stands ends here.
async fn read_session(console: &Console, door: &Door<'_>, headers: &HeaderMap) -> HttpResponse {
    let existing = session_id(headers).and_then(|id| console.sessions.get(&id).map(|s| (id, s)));
    let (id, s, new) = match existing {
        Some((id, s)) => match standing(console, door, &id, &s).await {
            Ok(()) => {
                // As the check left it: a renewal moves the expiry.
                let s = console.sessions.get(&id).unwrap_or(s);
                (id, s, false)
            }
            Err(reason) => {
                console.sessions.end(&id, reason);
                match console.sessions.get(&id) {
                    Some(s) => (id, s, false),
                    None => {
                        let (id, s) = console.sessions.create();
                        (id, s, true)
                    }
                }
            }
        },
        None => {
            let (id, s) = console.sessions.create();
            (id, s, true)
        }
    };
    let ended = console.sessions.take_ended(&id);
    let mut resp = json_response(StatusCode::OK, Some(&session_body(console, &s, ended)));
    if new {
        set_cookie(console, &mut resp, &id, false);
    }
    resp
}

/// Whether session `id`'s sign-in still stands: Ok (its expiry brought up to date, as a
/// renewal moves it), or why it ended.
pub(crate) async fn standing(
    console: &Console,
    door: &Door<'_>,
    id: &str,
    s: &Session,
) -> Result<(), String> {
    let Some(identity) = &s.identity else {
        return Ok(());
    };
    let state = check_token(door.core, &identity.token).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match state {
        Ok(SessionTokenState { seals, .. }) if seals != identity.seals => {
            Err("session ended: the appliance was sealed".into())
        }
        Ok(SessionTokenState {
            standing: TokenStanding::Live { expire_time },
            ..
        }) => {
            if expire_time != identity.expire_time {
                console.sessions.set_expiry(id, expire_time);
            }
            Ok(())
        }
        Ok(SessionTokenState {
            standing: TokenStanding::Sealed,
            ..
        }) => Err("session ended: the appliance was sealed".into()),
        Ok(SessionTokenState {
            standing: TokenStanding::Ended,
            ..
        }) => Err(if identity.expire_time.is_some_and(|t| t <= now) {
            "session ended: the token expired".into()
        } else {
            "session ended: the token was revoked or is no longer valid".into()
        }),
        Err(e) => Err(format!("session ended: {}", e.errors.join("; "))),
    }
}

async fn check_token(core: &Arc<Core>, token: &str) -> Result<SessionTokenState, ApiError> {
    let params = Map::new();
    let req = EngineRequest {
        token,
        remote: None,
        path: "ui/session",
        operation: Operation::Read,
        params: &params,
    };
    core.apply(&req, SessionTokenCheck, |r| {
        Checked(r.map_err(ApiError::from))
    })
    .await
    .0
}

/// The check's outcome; never audited (the check is public).
struct Checked(Result<SessionTokenState, ApiError>);

impl engine::ops::Audited for Checked {
    fn audited(&self) -> engine::ops::AuditedResponse<'_> {
        engine::ops::AuditedResponse::answered(200, None)
    }
}

/// Signs in: the token is checked with lookup-self (audited as the token's own request),
/// then bound to a new session that replaces the anonymous one.
async fn sign_in(
    console: &Console,
    door: &Door<'_>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> HttpResponse {
    let Some((old, _)) = checked_session(console, &parts.headers) else {
        return csrf_refused();
    };
    let max = MAX_SESSION_BODY.min(door.limits.max_request_size);
    let body = match crate::server::read_body(
        &parts.headers,
        body,
        max,
        door.limits.read_timeout,
        door.budget,
    )
    .await
    {
        Ok((b, _share)) => b,
        Err(e) => return error(e.status(), e.vault_message()),
    };
    let token = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => match m.get("token") {
            Some(Value::String(t)) if !t.trim().is_empty() => Zeroizing::new(t.trim().to_string()),
            _ => return error(StatusCode::BAD_REQUEST, "'token' must be given"),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object with a 'token'",
            )
        }
    };
    let lookup = VaultRequest {
        op: Operation::Read,
        path: "auth/token/lookup-self".into(),
        query: Default::default(),
        body: Map::new(),
        token: String::clone(&token),
        remote_address: parts.extensions.get::<SocketAddr>().map(|a| a.ip()),
        wrap_ttl: None,
        peer_chain: None,
    };
    let data = match crate::vault::handle(door.core, lookup).await {
        Ok(reply) => reply
            .body
            .and_then(|b| b.get("data").cloned())
            .unwrap_or(Value::Null),
        Err(e) => return json_response(e.status, Some(&e.body_json())),
    };
    let seals = match check_token(door.core, &token).await {
        Ok(state) => state.seals,
        Err(e) => return json_response(e.status, Some(&e.body_json())),
    };
    let text = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let expire_time = data
        .get("expire_time")
        .and_then(Value::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    let identity = Identity {
        token,
        display_name: text("display_name"),
        policies: data
            .get("policies")
            .and_then(Value::as_array)
            .map(|p| {
                p.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        accessor: text("accessor"),
        expire_time,
        seals,
    };
    let (id, s) = console.sessions.sign_in(Some(&old), identity);
    let mut resp = json_response(StatusCode::OK, Some(&session_body(console, &s, None)));
    set_cookie(console, &mut resp, &id, false);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_routes_fall_back_to_the_shell() {
        let get = Method::GET;
        assert_eq!(static_file(&get, "/ui").status(), StatusCode::OK);
        assert_eq!(static_file(&get, "/ui/").status(), StatusCode::OK);
        assert_eq!(static_file(&get, "/ui/keys/k1").status(), StatusCode::OK);
        assert_eq!(
            static_file(&get, "/ui/assets/js/api.js").status(),
            StatusCode::OK
        );
        assert_eq!(
            static_file(&get, "/ui/nope.js").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            static_file(&get, "/ui/assets/../Cargo.toml").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            static_file(&get, "/ui/assets/js//api.js").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            static_file(&Method::POST, "/ui/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::COOKIE,
            HeaderValue::from_static("a=b; ironseal_console=xyz; c=d"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("xyz"));
        h.insert(
            hyper::header::COOKIE,
            HeaderValue::from_static("ironseal_console="),
        );
        assert_eq!(session_id(&h), None);
    }
}
