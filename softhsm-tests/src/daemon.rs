//! The `ironseal` daemon under test: started (`$IRONSEAL_BIN`) in a temporary directory,
//! from flags (dev mode) or a config file it writes, with its output captured; killed
//! when the test is done.
//!
//! Layout of a daemon's temporary directory:
//!
//! ```text
//! <tmp>/data/            the data dir: ironseal.redb, tls/{ca,cert,key}.pem
//! <tmp>/logs/            the daemon's stdout and stderr, appended across restarts
//! <tmp>/home/            HOME of every bao run, so no ~/.vault-token leaks between tests
//! <tmp>/ironseal.hcl     the config file (config mode)
//! <tmp>/pkcs11.sock      the PKCS#11 socket (dev mode, unless the test names another)
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bao::bao_bin;
use crate::reference::{openbao_config, reference_mode};
use crate::unseal::Init;
use crate::vault_client::Body;

/// How long a daemon may take to answer its health endpoint after it is started.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

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

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Dev { args: Vec<String> },
    Config { tls: bool },
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
    /// Extra top-level lines of the config file (`ui = true`).
    top_hcl: String,
    /// The storage block; None: `storage "redb"` in the data dir.
    storage_hcl: Option<String>,
    /// `http://127.0.0.1:PORT` or `https://...` of the current run.
    pub addr: String,
    /// The token bao runs with unless told otherwise (dev root token, or set after init).
    pub token: Option<String>,
    /// The unseal key dev mode printed.
    pub dev_unseal_key: Option<String>,
    /// The PKCS#11 socket dev mode printed.
    dev_pkcs11_socket: Option<PathBuf>,
    /// Set by [`Daemon::init`].
    pub init: Option<Init>,
    /// The client certificate and key curl and bao present (a listener requiring one).
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Every suite gets the log check for free; a test already failing keeps its own
        // message (a second panic here would abort the process).
        if !std::thread::panicking() {
            self.assert_logs_hold_no_registered_secret();
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
            owned_env(env),
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

    /// [`Daemon::config`] with `top_hcl` added at the top level of the config file (in
    /// both modes), e.g. `ui = true`.
    pub fn config_with_top_level(tls: bool, top_hcl: &str) -> Daemon {
        Self::build_full(Mode::Config { tls }, None, Vec::new(), "", top_hcl)
    }

    /// TLS config mode with `listener_hcl` in the listener block, curl and bao presenting
    /// `cert` and `key` as their client certificate (for a listener that requires one).
    pub fn config_with_client_cert(listener_hcl: &str, cert: &Path, key: &Path) -> Daemon {
        let mut d = Self::unstarted(
            Mode::Config { tls: true },
            None,
            Vec::new(),
            listener_hcl,
            "",
        );
        d.client_cert = Some((cert.to_path_buf(), key.to_path_buf()));
        d.start();
        d
    }

    /// Config mode (plain HTTP, Shamir seal) with `storage_hcl` as the storage block and
    /// `env` added to the daemon's environment. Starts uninitialised.
    pub fn config_with_storage(storage_hcl: &str, env: &[(&str, &str)]) -> Daemon {
        Self::config_with_storage_and_top_level(storage_hcl, env, "")
    }

    /// [`Daemon::config_with_storage`] with `top_hcl` added at the top level of the
    /// config file (`node_name = "..."`).
    pub fn config_with_storage_and_top_level(
        storage_hcl: &str,
        env: &[(&str, &str)],
        top_hcl: &str,
    ) -> Daemon {
        let mut d = Self::unstarted(
            Mode::Config { tls: false },
            None,
            owned_env(env),
            "",
            top_hcl,
        );
        d.storage_hcl = Some(storage_hcl.to_string());
        d.start();
        d
    }

    /// What the server prints when it refuses to start with a TLS config file whose
    /// listener block holds `listener_hcl`; panics if it starts anyway.
    pub fn config_refusal(listener_hcl: &str) -> String {
        let d = Self::unstarted(
            Mode::Config { tls: true },
            None,
            Vec::new(),
            listener_hcl,
            "",
        );
        d.write_config(&format!("127.0.0.1:{}", free_port()), true);
        let mut child = Command::new(ironseal_bin())
            .arg("server")
            .arg(format!("-config={}", d.config_path().display()))
            .current_dir(d.dir())
            .env("HOME", d.dir().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the server");
        let exited = crate::poll_until(STARTUP_DEADLINE, "the server to refuse its config", || {
            child.try_wait().unwrap()
        });
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!exited.success(), "the server accepted the config:\n{text}");
        text
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
        Self::build_full(mode, seal_hcl, env, "", "")
    }

    fn build_with_listener(mode: Mode, listener_hcl: &str) -> Daemon {
        Self::build_full(mode, None, Vec::new(), listener_hcl, "")
    }

    fn build_full(
        mode: Mode,
        seal_hcl: Option<String>,
        env: Vec<(String, String)>,
        listener_hcl: &str,
        top_hcl: &str,
    ) -> Daemon {
        let mut d = Self::unstarted(mode, seal_hcl, env, listener_hcl, top_hcl);
        d.start();
        d
    }

    fn unstarted(
        mode: Mode,
        seal_hcl: Option<String>,
        env: Vec<(String, String)>,
        listener_hcl: &str,
        top_hcl: &str,
    ) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("ironseal-e2e-")
            .tempdir()
            .expect("cannot make a temp dir");
        for d in ["data", "logs", "home"] {
            fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        Daemon {
            child: None,
            tmp,
            mode,
            seal_hcl,
            env,
            listener_hcl: listener_hcl.to_string(),
            top_hcl: top_hcl.to_string(),
            storage_hcl: None,
            addr: String::new(),
            token: None,
            dev_unseal_key: None,
            dev_pkcs11_socket: None,
            init: None,
            client_cert: None,
        }
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

    /// The client certificate and key clients present, if the daemon was given one.
    pub fn client_cert(&self) -> Option<&(PathBuf, PathBuf)> {
        self.client_cert.as_ref()
    }

    /// The PKCS#11 socket a dev-mode daemon serves (as it printed it at start); None in
    /// config mode and against OpenBao, which has no PKCS#11 door.
    pub fn pkcs11_socket(&self) -> Option<PathBuf> {
        self.dev_pkcs11_socket.clone()
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

    /// Panics if the daemon's captured output (all its runs) holds any secret the test
    /// registered with [`crate::leaks::register_secret`], in any encoding.
    pub fn assert_logs_hold_no_registered_secret(&self) {
        let needles = crate::leaks::registered_secrets();
        if needles.is_empty() {
            return;
        }
        for f in ["stdout.log", "stderr.log"] {
            let path = self.log_dir().join(f);
            let bytes = fs::read(&path).unwrap_or_default();
            let found = crate::leaks::needles_in(&bytes, &needles);
            assert!(
                found.is_empty(),
                "the daemon's {} holds secrets the test wrote: {found:?}",
                path.display()
            );
        }
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

    /// Starts the daemon expecting it to refuse (exit before it is ready); what it said.
    /// Panics if it starts.
    pub fn start_refused(&mut self) -> String {
        assert!(self.child.is_none(), "the daemon is already running");
        match self.try_start() {
            Ok(()) => panic!("the daemon started:\n{}", self.logs()),
            Err(e) => e,
        }
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
                // One socket per daemon, so tests running at once do not meet on the
                // default path.
                let names_socket = args
                    .iter()
                    .any(|a| a.trim_start_matches('-').starts_with("dev-pkcs11-socket"));
                if !reference_mode() && !names_socket {
                    cmd.arg(format!(
                        "-dev-pkcs11-socket={}",
                        self.dir().join("pkcs11.sock").display()
                    ));
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
                .curl("GET", health, None, Body::None, 2, &[])
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
            if let Some(p) = line.strip_prefix("PKCS#11 Socket:") {
                self.dev_pkcs11_socket = Some(PathBuf::from(p.trim()));
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
        let mut text = if reference_mode() {
            openbao_config(&self.data_dir(), listen, tls, &listener)
        } else {
            let storage = self.storage_hcl.clone().unwrap_or_else(|| {
                format!(
                    "storage \"redb\" {{\n  path = \"{}\"\n}}",
                    storage.display()
                )
            });
            format!(
                "{storage}\n\nlistener \"tcp\" {{\n{listener}}}\n\n\
                 {}\n\nlog_level = \"info\"\n",
                self.seal_hcl.as_deref().unwrap_or("seal \"shamir\" {}")
            )
        };
        if !self.top_hcl.is_empty() {
            text.push_str(&format!("\n{}\n", self.top_hcl));
        }
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

    /// Kills the daemon and starts it again on the same data with `seal_hcl` as its seal
    /// block(s), as an operator changing the seal would.
    pub fn restart_with_seal(&mut self, seal_hcl: &str) {
        self.kill9();
        self.set_seal(Some(seal_hcl));
        self.start();
    }

    /// Kills and starts the daemon again on the same data.
    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

fn owned_env(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
