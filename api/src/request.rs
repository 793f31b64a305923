//! A `/v1` request reduced to what handlers need: the logical operation, the path below
//! `/v1/`, the query, the JSON body and the caller's token.

use std::collections::HashMap;

use bytes::Bytes;
use engine::policy::Operation;
use hyper::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::error::ApiError;

pub struct VaultRequest {
    pub op: Operation,
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Map<String, Value>,
    pub token: String,
    /// The client's address, for audit entries.
    /// Formatted only when an audit device needs it.
    pub remote_address: Option<std::net::IpAddr>,
    /// `X-Vault-Wrap-TTL`: wrap the response for this many seconds.
    pub wrap_ttl: Option<u64>,
    /// The certificate chain the client presented in the connection's TLS handshake:
    /// what the cert auth method logs in with. Only ever set from the connection.
    pub peer_chain: Option<engine::auth::cert::PeerChain>,
}

pub(crate) fn token_from(headers: &HeaderMap) -> String {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return t.trim().to_string();
    }
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

/// `X-Vault-Wrap-TTL`, parsed as Vault parses durations; "0" or an empty header asks for
/// no wrapping, as in Vault. A TTL under a second would expire before it could be
/// used, so it is refused.
fn wrap_ttl(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad("invalid X-Vault-Wrap-TTL header"))?
        .trim();
    if text.starts_with('-') {
        return Err(ApiError::bad("requested wrap ttl cannot be negative"));
    }
    let ttl = engine::duration::parse_duration_precise(text)
        .map_err(|e| ApiError::bad(format!("X-Vault-Wrap-TTL: {e}")))?;
    if ttl.is_zero() {
        return Ok(None);
    }
    if ttl.as_secs() == 0 {
        return Err(ApiError::bad(
            "requested wrap ttl must be at least one second",
        ));
    }
    Ok(Some(ttl.as_secs()))
}

/// Vault request headers that change what a request means and that Ironseal does not
/// implement. Ignoring them would answer something other than what was asked.
const UNSUPPORTED_HEADERS: &[(&str, &str)] = &[
    (
        // Its one format Vault knows besides the default is "jwt".
        "x-vault-wrap-format",
        "JWT response-wrapping tokens (X-Vault-Wrap-Format) are not supported by this server; leave the header out for a plain wrapping token",
    ),
    (
        "x-vault-mfa",
        "login MFA (X-Vault-MFA) is not supported by this server",
    ),
    (
        "x-vault-policy-override",
        "Sentinel policy overrides (X-Vault-Policy-Override) are not supported by this server",
    ),
    (
        "x-vault-index",
        "consistency headers (X-Vault-Index) are not supported by this server",
    ),
    (
        "x-vault-inconsistent",
        "consistency headers (X-Vault-Inconsistent) are not supported by this server",
    ),
    (
        "x-vault-forward",
        "request forwarding (X-Vault-Forward) is not supported by this server",
    ),
    (
        "x-vault-inline-auth-path",
        "inline authentication (X-Vault-Inline-Auth-*) is not supported by this server",
    ),
];

fn refuse_unsupported_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    // One pass over what was sent; most requests carry no X-Vault-* header but the token.
    for (name, value) in headers {
        let name = name.as_str();
        let Some(rest) = name.strip_prefix("x-vault-") else {
            continue;
        };
        if rest == "token" || rest == "request" {
            continue;
        }
        // An empty header is no header, as in Vault (Go's Header.Get).
        let value = value.as_bytes().trim_ascii();
        if value.is_empty() {
            continue;
        }
        if let Some((_, message)) = UNSUPPORTED_HEADERS.iter().find(|(n, _)| *n == name) {
            return Err(ApiError::bad(*message));
        }
        if rest.starts_with("inline-auth-") {
            return Err(ApiError::bad(
                "inline authentication (X-Vault-Inline-Auth-*) is not supported by this server",
            ));
        }
        // Namespaces are an Enterprise (and OpenBao) feature; only the root one exists here.
        if rest == "namespace" {
            let ns = String::from_utf8_lossy(value);
            let ns = ns.trim_matches('/');
            if !ns.is_empty() && ns != "root" {
                return Err(ApiError::bad(
                    "namespaces (X-Vault-Namespace) are not supported by this server",
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    if !s.contains(['%', '+']) {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match hex::decode(&bytes[i + 1..i + 3]) {
                Ok(b) => {
                    out.extend_from_slice(&b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl VaultRequest {
    pub fn parse(
        method: Method,
        raw_path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Self, ApiError> {
        let path = percent_decode(raw_path.trim_start_matches('/'));
        if path.split('/').any(|s| s == ".." || s == ".") {
            return Err(ApiError::bad("invalid path"));
        }
        refuse_unsupported_headers(headers)?;
        let wrap_ttl = wrap_ttl(headers)?;
        let query = parse_query(query);
        let op = match method.as_str() {
            "GET" | "HEAD" if query.get("list").is_some_and(|v| v == "true" || v == "1") => {
                Operation::List
            }
            "GET" | "HEAD" => Operation::Read,
            "LIST" => Operation::List,
            "POST" | "PUT" => Operation::Update,
            "PATCH" => Operation::Patch,
            "DELETE" => Operation::Delete,
            _ => return Err(ApiError::unsupported_operation()),
        };
        let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(_) => {
                    return Err(ApiError::bad(
                        "failed to parse JSON input: the body must be a JSON object",
                    ))
                }
                Err(e) => return Err(ApiError::bad(format!("failed to parse JSON input: {e}"))),
            }
        };
        Ok(VaultRequest {
            token: token_from(headers),
            remote_address: None,
            wrap_ttl,
            peer_chain: None,
            op,
            path,
            query,
            body,
        })
    }

    /// Refuses a request naming a body field or query parameter the endpoint does not
    /// take, with a 400 that names them all. Both are checked because [`Self::field`]
    /// reads the query when the body lacks a field.
    pub fn refuse_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        let mut unknown: Vec<&str> = self
            .body
            .keys()
            .chain(self.query.keys())
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        unknown.dedup();
        Err(ApiError::bad(format!(
            "unknown parameters for {}: {} (it takes: {})",
            self.path.trim_end_matches('/'),
            unknown.join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )))
    }

    /// A body field, falling back to the query string as Vault does for GETs.
    pub fn field(&self, name: &str) -> Option<Value> {
        self.body
            .get(name)
            .cloned()
            .or_else(|| self.query.get(name).map(|v| Value::String(v.clone())))
    }

    pub fn str_field(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::bad(format!("field {name:?} must be a string"))),
        }
    }

    pub fn bool_field(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(None),
            // One reading shared with the ACL's parameter constraints.
            Some(v) => engine::request_values::bool_from_json(&v)
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("field {name:?} must be a boolean"))),
        }
    }

    pub fn u64_field(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                ApiError::bad(format!("field {name:?} must be a non-negative integer"))
            }),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad(format!("field {name:?} must be a non-negative integer"))
            }),
            Some(_) => Err(ApiError::bad(format!(
                "field {name:?} must be a non-negative integer"
            ))),
        }
    }

    pub fn duration_field(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => engine::duration::duration_from_json(&v)
                .map(Some)
                .map_err(|e| ApiError::bad(format!("field {name:?}: {e}"))),
        }
    }

    /// A list field given as a JSON array or a comma-separated string.
    pub fn list_field(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(engine::request_values::list_from_text(&s))),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ApiError::bad(format!(
                        "field {name:?} must be a list of strings"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::bad(format!("field {name:?} must be a list"))),
        }
    }

    pub fn string_map_field(
        &self,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Ok((k, other.to_string())),
                })
                .collect::<Result<_, ApiError>>()
                .map(Some),
            Some(_) => Err(ApiError::bad(format!(
                "field {name:?} must be a map of strings"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
