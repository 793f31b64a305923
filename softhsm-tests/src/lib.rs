//! The harness of the end-to-end tests: start the `ironseal` daemon (`$IRONSEAL_BIN`) in a
//! temporary directory, wait until it answers, drive it with the real `bao` CLI and `curl`,
//! and kill it when the test is done.
//!
//! Layout of a daemon's temporary directory:
//!
//! ```text
//! <tmp>/data/            the data dir: ironseal.redb, tls/{ca,cert,key}.pem
//! <tmp>/logs/            the daemon's stdout and stderr, appended across restarts
//! <tmp>/home/            HOME of every bao run, so no ~/.vault-token leaks between tests
//! <tmp>/ironseal.hcl     the config file (config mode)
//! ```
//!
//! Set `IRONSEAL_REFERENCE=openbao` to run the same tests against the OpenBao server that
//! ships in the `bao` binary (`bao server`): that checks the tests themselves encode what
//! Vault/OpenBao do. Tests that pin down Ironseal-only behaviour say so and are skipped
//! in that mode with [`reference_mode`].

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a daemon may take to answer its health endpoint after it is started.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// True when the tests run against OpenBao itself (`IRONSEAL_REFERENCE=openbao`).
pub fn reference_mode() -> bool {
    std::env::var("IRONSEAL_REFERENCE").is_ok_and(|v| v == "openbao")
}

/// The daemon under test: `$IRONSEAL_BIN`, else the workspace's debug build.
pub fn ironseal_bin() -> PathBuf {
    if reference_mode() {
        return bao_bin();
    }
    if let Some(p) = std::env::var_os("IRONSEAL_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/ironseal");
    assert!(
        bin.exists(),
        "no daemon to test: set IRONSEAL_BIN or build it with `cargo build -p ironseal` \
         (looked for {})",
        bin.display()
    );
    bin
}

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

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

/// Calls `probe` until it returns `Some`, or panics with `what` after `deadline`.
pub fn poll_until<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Dev { args: Vec<String> },
    Config { tls: bool },
}

/// What `bao operator init -format=json` answered.
#[derive(Debug, Clone)]
pub struct Init {
    pub keys_b64: Vec<String>,
    pub keys_hex: Vec<String>,
    pub root_token: String,
    pub shares: usize,
    pub threshold: usize,
}

/// One ironseal daemon; killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    tmp: TempDir,
    mode: Mode,
    /// The seal block(s) of the config file; None: `seal "shamir" {}`.
    seal_hcl: Option<String>,
    /// Extra environment for the daemon (e.g. `SOFTHSM2_CONF`).
    env: Vec<(String, String)>,
    /// Extra lines inside the config file's `listener "tcp"` block.
    listener_hcl: String,
    /// `http://127.0.0.1:PORT` or `https://...` of the current run.
    pub addr: String,
    /// The token bao runs with unless told otherwise (dev root token, or set after init).
    pub token: Option<String>,
    /// The unseal key dev mode printed.
    pub dev_unseal_key: Option<String>,
    /// Set by [`Daemon::init`].
    pub init: Option<Init>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    /// `ironseal server -dev ARGS`, on a free port unless ARGS has `-dev-listen-address`.
    pub fn dev(args: &[&str]) -> Daemon {
        Self::new(Mode::Dev {
            args: args.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// `ironseal server -config FILE` with redb storage and the Shamir seal; TLS with the
    /// generated certificate when `tls`, else `tls_disable = true`. Starts uninitialised.
    pub fn config(tls: bool) -> Daemon {
        Self::new(Mode::Config { tls })
    }

    /// Config mode (plain HTTP) with `seal_hcl` as the seal block(s) and `env` added to the
    /// daemon's environment. Starts uninitialised.
    pub fn config_with_seal(seal_hcl: &str, env: &[(&str, &str)]) -> Daemon {
        Self::build(
            Mode::Config { tls: false },
            Some(seal_hcl.to_string()),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// [`Daemon::dev`] with extra environment variables for the daemon (kept across
    /// restarts).
    pub fn dev_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::build(
            Mode::Dev {
                args: args.iter().map(|s| s.to_string()).collect(),
            },
            None,
            owned_env(env),
        )
    }

    /// [`Daemon::config`] with extra environment variables for the daemon (kept across
    /// restarts).
    pub fn config_with_env(tls: bool, env: &[(&str, &str)]) -> Daemon {
        Self::build(Mode::Config { tls }, None, owned_env(env))
    }

    /// [`Daemon::config`] with `listener_hcl` added inside the `listener "tcp"` block (in
    /// both modes: OpenBao reads Vault's listener keys too).
    pub fn config_with_listener(tls: bool, listener_hcl: &str) -> Daemon {
        Self::build_with_listener(Mode::Config { tls }, listener_hcl)
    }

    /// Replaces the extra `listener "tcp"` lines used from the next start on.
    pub fn set_listener_hcl(&mut self, listener_hcl: &str) {
        self.listener_hcl = listener_hcl.to_string();
    }

    /// Replaces the seal block(s) used from the next [`Daemon::start`] on.
    pub fn set_seal(&mut self, seal_hcl: Option<&str>) {
        self.seal_hcl = seal_hcl.map(String::from);
    }

    /// Sets (or replaces) one environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    fn new(mode: Mode) -> Daemon {
        Self::build(mode, None, Vec::new())
    }

    fn build(mode: Mode, seal_hcl: Option<String>, env: Vec<(String, String)>) -> Daemon {
        Self::build_full(mode, seal_hcl, env, "")
    }

    fn build_with_listener(mode: Mode, listener_hcl: &str) -> Daemon {
        Self::build_full(mode, None, Vec::new(), listener_hcl)
    }

    fn build_full(
        mode: Mode,
        seal_hcl: Option<String>,
        env: Vec<(String, String)>,
        listener_hcl: &str,
    ) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("ironseal-e2e-")
            .tempdir()
            .expect("cannot make a temp dir");
        for d in ["data", "logs", "home"] {
            fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let mut d = Daemon {
            child: None,
            tmp,
            mode,
            seal_hcl,
            env,
            listener_hcl: listener_hcl.to_string(),
            addr: String::new(),
            token: None,
            dev_unseal_key: None,
            init: None,
        };
        d.start();
        d
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Where the daemon keeps everything it stores (config mode: the redb file's dir).
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    pub fn storage_path(&self) -> PathBuf {
        self.data_dir().join("ironseal.redb")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir().join("logs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("ironseal.hcl")
    }

    pub fn is_tls(&self) -> bool {
        self.mode == Mode::Config { tls: true }
    }

    /// The CA to verify the daemon's certificate with (TLS only).
    pub fn cacert(&self) -> Option<PathBuf> {
        self.is_tls()
            .then(|| self.data_dir().join("tls").join("ca.pem"))
    }

    /// Everything the daemon printed, over all its runs.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["stdout.log", "stderr.log"] {
            if let Ok(bytes) = fs::read(self.log_dir().join(f)) {
                s.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        s
    }

    /// Starts (or restarts, after [`Daemon::kill9`]) the daemon on a fresh port and waits
    /// until its health endpoint answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the daemon is already running");
        let mut last_err = String::new();
        for _attempt in 0..3 {
            match self.try_start() {
                Ok(()) => return,
                // Someone took the port between free_port() and the daemon's bind: retry.
                Err(e) if e.contains("in use") => last_err = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the daemon could not bind a port: {last_err}");
    }

    fn try_start(&mut self) -> Result<(), String> {
        let bin = ironseal_bin();
        let mut cmd = Command::new(&bin);
        let (mut listen, mut explicit_listen) = (format!("127.0.0.1:{}", free_port()), false);
        match &self.mode {
            Mode::Dev { args } => {
                cmd.arg("server").arg("-dev");
                for (i, a) in args.iter().enumerate() {
                    let flag = a.trim_start_matches('-');
                    if let Some(v) = flag.strip_prefix("dev-listen-address=") {
                        listen = v.to_string();
                        explicit_listen = true;
                    } else if flag == "dev-listen-address" {
                        listen = args.get(i + 1).cloned().unwrap_or_default();
                        explicit_listen = true;
                    }
                }
                if !explicit_listen {
                    cmd.arg(format!("-dev-listen-address={listen}"));
                }
                cmd.args(args);
                self.addr = format!("http://{listen}");
            }
            Mode::Config { tls } => {
                let tls = *tls;
                self.write_config(&listen, tls);
                cmd.arg("server")
                    .arg(format!("-config={}", self.config_path().display()));
                let scheme = if tls { "https" } else { "http" };
                self.addr = format!("{scheme}://{listen}");
            }
        }
        let stdout_path = self.log_dir().join("stdout.log");
        let stderr_path = self.log_dir().join("stderr.log");
        let stdout_start = fs::metadata(&stdout_path).map(|m| m.len()).unwrap_or(0);
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap()
        };
        cmd.stdin(Stdio::null())
            .stdout(open(&stdout_path))
            .stderr(open(&stderr_path))
            .current_dir(self.dir())
            .env("HOME", self.dir().join("home"));
        if std::env::var_os("IRONSEAL_LOG").is_none() {
            cmd.env("IRONSEAL_LOG", "info");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        self.child = Some(child);

        let health = "/v1/sys/health?uninitcode=200&sealedcode=200&standbycode=200";
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "the daemon exited with {status} before it was ready\n{}",
                    self.logs()
                ));
            }
            let ready = self
                .try_http("GET", health, None, Body::None, 2)
                .map(|r| r.status == 200)
                .unwrap_or(false);
            let printed = self.parse_dev_output(stdout_start);
            if ready && printed {
                return Ok(());
            }
            if start.elapsed() > STARTUP_DEADLINE {
                return Err(format!(
                    "the daemon at {} did not become ready within {STARTUP_DEADLINE:?}\n{}",
                    self.addr,
                    self.logs()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// In dev mode, reads the root token and unseal key from what this run printed;
    /// true once both are known (always true in config mode).
    fn parse_dev_output(&mut self, from: u64) -> bool {
        if !matches!(self.mode, Mode::Dev { .. }) {
            return true;
        }
        let text = fs::read(self.log_dir().join("stdout.log")).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).to_string();
        for line in text.lines() {
            let line = line.trim();
            if let Some(t) = line.strip_prefix("Root Token:") {
                self.token = Some(t.trim().to_string());
            }
            if let Some(k) = line.strip_prefix("Unseal Key:") {
                self.dev_unseal_key = Some(k.trim().to_string());
            }
        }
        self.token.is_some() && self.dev_unseal_key.is_some()
    }

    fn write_config(&self, listen: &str, tls: bool) {
        let storage = self.storage_path();
        let mut listener = format!("  address = \"{listen}\"\n");
        if !tls {
            listener.push_str("  tls_disable = true\n");
        }
        for line in self.listener_hcl.lines() {
            listener.push_str(&format!("  {}\n", line.trim()));
        }
        let text = if reference_mode() {
            // OpenBao has no redb backend and does not generate certificates: give it file
            // storage and a CA + leaf made here with openssl, at the paths Ironseal uses.
            if tls {
                make_reference_tls(&self.data_dir().join("tls"));
                listener.push_str(&format!(
                    "  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n",
                    self.data_dir().join("tls/cert.pem").display(),
                    self.data_dir().join("tls/key.pem").display()
                ));
            }
            let cluster = format!("127.0.0.1:{}", free_port());
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\n\
                 listener \"tcp\" {{\n{listener}  cluster_address = \"{cluster}\"\n}}\n\
                 api_addr = \"{}://{listen}\"\ncluster_addr = \"https://{cluster}\"\n\
                 log_level = \"info\"\n",
                self.data_dir().display(),
                if tls { "https" } else { "http" }
            )
        } else {
            format!(
                "storage \"redb\" {{\n  path = \"{}\"\n}}\n\nlistener \"tcp\" {{\n{listener}}}\n\n\
                 {}\n\nlog_level = \"info\"\n",
                storage.display(),
                self.seal_hcl.as_deref().unwrap_or("seal \"shamir\" {}")
            )
        };
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(self.config_path())
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Kills the daemon with SIGKILL, as a power cut would, and reaps it.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("the daemon is not running");
        c.kill().expect("SIGKILL failed");
        c.wait().unwrap();
    }

    /// Kills and starts the daemon again on the same data.
    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    // ---- the bao CLI -------------------------------------------------------------------

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
        let mut cmd = Command::new(&bin);
        cmd.args(args);
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
        if let Some(t) = token {
            cmd.env("VAULT_TOKEN", t).env("BAO_TOKEN", t);
        }
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

    /// `bao operator init -format=json` with the given shares and threshold; remembers the
    /// keys and makes the root token the default token.
    pub fn init(&mut self, shares: usize, threshold: usize) -> Init {
        let out = self
            .bao_as(
                None,
                &[
                    "operator",
                    "init",
                    "-format=json",
                    &format!("-key-shares={shares}"),
                    &format!("-key-threshold={threshold}"),
                ],
            )
            .ok();
        let v = out.json();
        let strings = |field: &str| -> Vec<String> {
            v[field]
                .as_array()
                .unwrap_or_else(|| panic!("no {field} in {out}"))
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let init = Init {
            keys_b64: strings("unseal_keys_b64"),
            keys_hex: strings("unseal_keys_hex"),
            root_token: v["root_token"].as_str().expect("root_token").to_string(),
            shares,
            threshold,
        };
        assert_eq!(init.keys_b64.len(), shares, "{out}");
        self.token = Some(init.root_token.clone());
        self.init = Some(init.clone());
        init
    }

    /// Unseals with the first `threshold` keys from [`Daemon::init`]; asserts it worked.
    pub fn unseal(&self) {
        let init = self.init.as_ref().expect("init first");
        for key in &init.keys_b64[..init.threshold] {
            self.bao_as(None, &["operator", "unseal", "-format=json", key])
                .ok();
        }
        let status = self.seal_status();
        assert_eq!(status["sealed"], false, "still sealed: {status}");
    }

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

    /// `GET /v1/sys/seal-status` as JSON.
    pub fn seal_status(&self) -> Value {
        let r = self.http("GET", "/v1/sys/seal-status", None, Body::None);
        assert_eq!(r.status, 200, "{r}");
        r.json()
    }

    // ---- raw HTTP through curl ---------------------------------------------------------

    /// One request with curl; `path` starts with `/v1/...`. Panics if curl gets no answer.
    pub fn http(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> HttpResponse {
        self.try_http(method, path, token, body, 120)
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

    fn try_http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        max_time: u32,
    ) -> Result<HttpResponse, String> {
        self.curl(method, path, token, body, max_time, &[])
    }

    fn curl(
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
        if let Some(t) = token {
            cmd.args(["-H", &format!("X-Vault-Token: {t}")]);
        }
        let described = match body {
            Body::None => String::new(),
            Body::Json(j) => {
                cmd.args(["-H", "Content-Type: application/json", "--data-binary", j]);
                format!(" {}", j.chars().take(200).collect::<String>())
            }
            Body::File(p) => {
                cmd.args(["-H", "Content-Type: application/json", "-H", "Expect:"])
                    .arg("--data-binary")
                    .arg(format!("@{}", p.display()));
                format!(" <{} bytes>", fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            }
            Body::Chunked(p) => {
                cmd.args([
                    "-H",
                    "Content-Type: application/json",
                    "-H",
                    "Transfer-Encoding: chunked",
                    "-H",
                    "Expect:",
                ])
                .arg("--data-binary")
                .arg(format!("@{}", p.display()));
                format!(
                    " <{} bytes, chunked>",
                    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
                )
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

pub mod crash;
pub mod hardware;
pub mod tools;

fn owned_env(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every regular file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The files below `dir` whose bytes contain `needle`, as `path (needle name)` strings.
pub fn files_containing(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut hits = Vec::new();
    for f in files_below(dir) {
        let bytes = fs::read(&f).unwrap_or_default();
        for (name, needle) in needles {
            if !needle.is_empty() && contains(&bytes, needle) {
                hits.push(format!("{} holds {name}", f.display()));
            }
        }
    }
    hits
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The ways a secret byte string could be written down: raw, hex (both cases), base64
/// and base64url (padded or not).
pub fn encodings(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let mut v = vec![
        (format!("{name} (raw)"), bytes.to_vec()),
        (format!("{name} (hex)"), hex::encode(bytes).into_bytes()),
        (
            format!("{name} (HEX)"),
            hex::encode_upper(bytes).into_bytes(),
        ),
    ];
    for (label, eng) in [
        ("base64", &STANDARD),
        ("base64 nopad", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE),
        ("base64url nopad", &URL_SAFE_NO_PAD),
    ] {
        v.push((format!("{name} ({label})"), eng.encode(bytes).into_bytes()));
    }
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v.dedup_by(|a, b| a.1 == b.1);
    v
}

/// Decodes an unseal key as the daemon prints it (base64url, base64 or hex).
pub fn decode_key(s: &str) -> Vec<u8> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let s = s.trim();
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| hex::decode(s))
        .unwrap_or_else(|e| panic!("unseal key {s:?} is neither base64 nor hex: {e}"))
}

/// Makes a CA and a leaf for localhost/127.0.0.1 with openssl (reference mode only).
fn make_reference_tls(dir: &Path) {
    if dir.join("cert.pem").exists() {
        return;
    }
    fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    File::create(dir.join("ext.cnf"))
        .unwrap()
        .write_all(b"subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}
