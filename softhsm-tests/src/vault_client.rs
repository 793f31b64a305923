//! A client of the daemon's Vault-compatible API under `/v1`, through curl: raw requests
//! with any body, and the calls tests make to set a daemon up (mounts, policies, tokens).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::poll_until;

/// An HTTP answer from `curl`.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub request: String,
    pub status: u16,
    pub body: String,
}

impl HttpResponse {
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self}"))
    }

    /// The strings of a Vault error body `{"errors":[...]}`; panics if it is not one.
    #[track_caller]
    pub fn errors(&self) -> Vec<String> {
        let v = self.json();
        let errs = v
            .get("errors")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("not a Vault error body {{\"errors\":[...]}}: {self}"));
        errs.iter()
            .map(|e| {
                e.as_str()
                    .unwrap_or_else(|| panic!("an error that is not a string: {self}"))
                    .to_string()
            })
            .collect()
    }

    /// Asserts the status and that the body is a Vault error body one of whose messages
    /// contains `needle`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "unexpected status: {self}");
        let errs = self.errors();
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "no error containing {needle:?}: {self}"
        );
    }
}

impl std::fmt::Display for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body: String = self.body.chars().take(2000).collect();
        write!(f, "{} -> {} {}", self.request, self.status, body)
    }
}

/// A request body for [`Daemon::http`].
pub enum Body<'a> {
    None,
    Json(&'a str),
    /// The file's bytes, sent with a Content-Length.
    File(&'a Path),
    /// The file's bytes, sent with `Transfer-Encoding: chunked` (no Content-Length).
    Chunked(&'a Path),
}

impl Daemon {
    /// Makes sure kv v2 is mounted at `secret/`, as dev mode does; a configured appliance
    /// (like Vault) may start without it.
    pub fn ensure_secret_kv2(&self) {
        let mounts = self.get("/v1/sys/mounts");
        assert_eq!(mounts.status, 200, "{mounts}");
        let m = mounts.json();
        if m.get("secret/").is_none() && m["data"].get("secret/").is_none() {
            self.bao(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
                .ok();
        }
        // Vault upgrades a new kv v2 mount in the background: wait until it takes writes.
        poll_until(Duration::from_secs(30), "secret/ to accept writes", || {
            let r = self.send_json("POST", "/v1/secret/data/.probe", r#"{"data":{"a":"b"}}"#);
            (r.status == 200).then_some(())
        });
        let r = self.http(
            "DELETE",
            "/v1/secret/metadata/.probe",
            self.token.as_deref(),
            Body::None,
        );
        assert!(r.status == 204 || r.status == 200, "{r}");
    }

    /// Makes sure a transit engine is mounted at `transit/` (dev mode mounts one;
    /// OpenBao's dev mode, in reference runs, does not).
    pub fn ensure_transit(&self) {
        if self.get("/v1/sys/mounts/transit").status != 200 {
            self.bao(&["secrets", "enable", "transit"]).ok();
        }
    }

    /// POST of `body` with the daemon's token.
    pub fn post_json(&self, path: &str, body: &Value) -> HttpResponse {
        self.send_json("POST", path, &body.to_string())
    }

    /// POST of `body` with `token`.
    pub fn post_json_as(&self, token: &str, path: &str, body: &Value) -> HttpResponse {
        self.http("POST", path, Some(token), Body::Json(&body.to_string()))
    }

    /// Writes ACL policy `name` through `PUT /v1/sys/policies/acl/NAME`; the answer.
    pub fn write_acl_policy(&self, name: &str, hcl: &str) -> HttpResponse {
        self.send_json(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            &json!({ "policy": hcl }).to_string(),
        )
    }

    /// A new token from `POST /v1/auth/token/create` with `body`; the whole answer.
    #[track_caller]
    pub fn create_token_http(&self, body: &Value) -> (String, Value) {
        let r = self.post_json("/v1/auth/token/create", body);
        assert_eq!(r.status, 200, "{r}");
        let v = r.json();
        (client_token(&v, &r), v)
    }

    /// `host:port` the daemon listens on, for raw connections.
    pub fn host_port(&self) -> String {
        self.addr
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    }

    /// One request with curl; `path` starts with `/v1/...`. Panics if curl gets no answer.
    pub fn http(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> HttpResponse {
        self.curl(method, path, token, body, 120, &[])
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET with the daemon's token.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.http("GET", path, self.token.as_deref(), Body::None)
    }

    /// A request with a JSON body and the daemon's token.
    pub fn send_json(&self, method: &str, path: &str, json: &str) -> HttpResponse {
        self.http(method, path, self.token.as_deref(), Body::Json(json))
    }

    /// Like [`Daemon::http`] with extra curl arguments (headers etc.).
    pub fn http_with(
        &self,
        method: &str,
        path: &str,
        body: Body,
        extra: &[&str],
    ) -> Result<HttpResponse, String> {
        self.curl(method, path, None, body, 120, extra)
    }

    pub(crate) fn curl(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        max_time: u32,
        extra: &[&str],
    ) -> Result<HttpResponse, String> {
        let url = format!("{}{}", self.addr, path);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}"])
            .args(["--max-time", &max_time.to_string()])
            .args(["-X", method]);
        if let Some(ca) = self.cacert() {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some((cert, key)) = self.client_cert() {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(t) = token {
            cmd.args(["-H", &format!("X-Vault-Token: {t}")]);
        }
        let described = match body {
            Body::None => String::new(),
            Body::Json(j) => {
                cmd.args(["-H", "Content-Type: application/json", "--data-binary", j]);
                format!(" {}", j.chars().take(200).collect::<String>())
            }
            Body::File(p) | Body::Chunked(p) => {
                let chunked = matches!(body, Body::Chunked(_));
                cmd.args(["-H", "Content-Type: application/json", "-H", "Expect:"]);
                if chunked {
                    cmd.args(["-H", "Transfer-Encoding: chunked"]);
                }
                cmd.arg("--data-binary").arg(format!("@{}", p.display()));
                let len = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                format!(" <{len} bytes{}>", if chunked { ", chunked" } else { "" })
            }
        };
        cmd.args(extra).arg(&url);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        let status: u16 = code.trim().parse().unwrap_or(0);
        if status == 0 {
            return Err(format!(
                "curl {method} {url} got no HTTP answer: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(HttpResponse {
            request: format!("{method} {path}{described}"),
            status,
            body: body.to_string(),
        })
    }
}

/// The `auth.client_token` of a token-creating answer; `shown` with the failure.
pub(crate) fn client_token(answer: &Value, shown: &dyn std::fmt::Display) -> String {
    answer["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no client_token: {shown}"))
        .to_string()
}
