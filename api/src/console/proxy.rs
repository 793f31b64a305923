//! `/ui/api/v1/...` and `/ui/api/api/v1/...`: the page's API calls, forwarded to `/v1`
//! and `/api/v1` through the same router with the session's token, so that they are
//! authorised and audited as that token's own requests. The page never holds the token.

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{StatusCode, Uri};

use super::{checked_session, csrf_refused, error, standing, Console, Door};
use crate::response::HttpResponse;

pub(super) async fn forward(
    console: &Console,
    door: &Door<'_>,
    mut parts: hyper::http::request::Parts,
    body: Incoming,
    rest: &str,
) -> HttpResponse {
    if !(rest.starts_with("v1/") || rest.starts_with("api/v1/")) {
        return error(
            StatusCode::NOT_FOUND,
            "the console proxies /ui/api/v1/ and /ui/api/api/v1/ only",
        );
    }
    let Some((id, session)) = checked_session(console, &parts.headers) else {
        return csrf_refused();
    };
    let headers = &mut parts.headers;
    if headers.contains_key("x-vault-token") || headers.contains_key(hyper::header::AUTHORIZATION) {
        return error(
            StatusCode::BAD_REQUEST,
            "the console sends the session's token itself: a request through it carries no X-Vault-Token or Authorization header",
        );
    }
    if let Err(reason) = standing(console, door, &id, &session).await {
        console.sessions.end(&id, reason.clone());
        return error(StatusCode::UNAUTHORIZED, reason);
    }
    headers.remove(hyper::header::COOKIE);
    headers.remove("x-csrf-token");
    if let Some(identity) = &session.identity {
        match HeaderValue::from_str(&identity.token) {
            Ok(mut v) => {
                v.set_sensitive(true);
                headers.insert("x-vault-token", v);
            }
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the session's token cannot be sent",
                )
            }
        }
    }
    let target = match parts.uri.query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    parts.uri = match target.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return error(StatusCode::BAD_REQUEST, "invalid path"),
    };
    let resp = crate::server::dispatch(door.core, door.limits, door.budget, parts, body).await;
    // A refusal may mean the token was revoked meanwhile (by this very request, too).
    if resp.status() == StatusCode::FORBIDDEN && session.identity.is_some() {
        if let Err(reason) = standing(console, door, &id, &session).await {
            console.sessions.end(&id, reason.clone());
            return error(StatusCode::UNAUTHORIZED, reason);
        }
    }
    resp
}
