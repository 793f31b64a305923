//! The token the PKCS#11 acceptance tests (`tests/pkcs11_*.rs`) drive with real tools:
//! by default `libironseal_pkcs11.so` talking to a dev daemon the test starts on a socket
//! of its own, with the dev root token as user PIN; with `IRONSEAL_PKCS11_REFERENCE=softhsm`
//! SoftHSM2's own library on a fresh token, the reference that shows the tests encode
//! what a conformant PKCS#11 token does. Tests that only mean something on the appliance
//! (daemon killed or sealed, audit log, ML-DSA/ML-KEM) skip the reference with [`skip`].
//!
//! Every tool runs with a deadline ([`TOOL_DEADLINE`]): a library that hangs fails the
//! test instead of stalling the suite.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bao::Output;
use crate::daemon::{ironseal_bin, Daemon};
use crate::hardware::{require_tool, SoftHsm, SOFTHSM_MODULE, USER_PIN};
use crate::reference::reference_mode;

/// How long one tool run may take before the test fails it as hung.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(120);

/// The label of the reference token.
const REFERENCE_LABEL: &str = "ironseal-ref";

/// The Debian package's OpenSSL 3 engine (`libengine-pkcs11-openssl`).
pub const PKCS11_ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

/// True when the tests run against SoftHSM2's library (`IRONSEAL_PKCS11_REFERENCE=softhsm`).
pub fn pkcs11_reference() -> bool {
    std::env::var("IRONSEAL_PKCS11_REFERENCE").is_ok_and(|v| v == "softhsm")
}

/// True (with a note on stderr) when the calling test does not run in this mode: OpenBao
/// has no PKCS#11 door at all, and SoftHSM2 cannot stand in for what only the appliance
/// has (`appliance_only`).
pub fn skip(appliance_only: bool) -> bool {
    if reference_mode() {
        eprintln!("skipped: OpenBao has no PKCS#11 library");
        return true;
    }
    if appliance_only && pkcs11_reference() {
        eprintln!("skipped: only meaningful on the appliance, not on SoftHSM2");
        return true;
    }
    false
}

/// The library under test: `$IRONSEAL_PKCS11_MODULE`, else `libironseal_pkcs11.so` beside
/// the daemon binary (both are built by `cargo build --workspace`).
pub fn appliance_module() -> PathBuf {
    if let Some(p) = std::env::var_os("IRONSEAL_PKCS11_MODULE") {
        return PathBuf::from(p);
    }
    let bin = ironseal_bin();
    let module = bin
        .parent()
        .unwrap_or(Path::new("."))
        .join("libironseal_pkcs11.so");
    assert!(
        module.exists(),
        "no PKCS#11 library to test: build it with `cargo build --workspace` (looked for {})",
        module.display()
    );
    module
}

enum Backend {
    Reference(SoftHsm),
    Appliance(Option<Box<Daemon>>),
}

/// One PKCS#11 token under test and a scratch directory for the files the tools exchange.
pub struct Token {
    backend: Backend,
    work: TempDir,
    /// The shared library applications load.
    pub module: PathBuf,
    /// The user PIN (the appliance's dev root token).
    pub pin: String,
    /// `CKA_LABEL` of the token, as `C_GetTokenInfo` reports it.
    pub label: String,
}

impl Token {
    /// A token in the mode the environment selects, with no objects yet.
    pub fn start() -> Token {
        require_tool("pkcs11-tool");
        let work = tempfile::Builder::new()
            .prefix("ironseal-p11-")
            .tempdir()
            .expect("cannot make a temp dir");
        let mut t = if pkcs11_reference() {
            Token {
                backend: Backend::Reference(SoftHsm::new(REFERENCE_LABEL)),
                work,
                module: PathBuf::from(SOFTHSM_MODULE),
                pin: USER_PIN.to_string(),
                label: REFERENCE_LABEL.to_string(),
            }
        } else {
            let mut t = Token {
                backend: Backend::Appliance(None),
                work,
                module: appliance_module(),
                pin: String::new(),
                label: String::new(),
            };
            t.start_daemon();
            t
        };
        t.label = t.read_label();
        t
    }

    /// The socket the daemon serves and the library is pointed at (appliance only).
    pub fn socket(&self) -> PathBuf {
        self.work.path().join("p11.sock")
    }

    /// A file in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// True when this token is SoftHSM2.
    pub fn is_reference(&self) -> bool {
        matches!(self.backend, Backend::Reference(_))
    }

    /// The daemon behind the library (panics on the reference: see [`skip`]).
    pub fn daemon(&self) -> &Daemon {
        match &self.backend {
            Backend::Appliance(Some(d)) => d,
            Backend::Appliance(None) => panic!("the daemon is not running"),
            Backend::Reference(_) => panic!("the reference token has no daemon"),
        }
    }

    /// Starts the dev daemon on [`Self::socket`]; the PIN stays the same across restarts
    /// (`-dev-root-token-id`). Dev mode initialises its data dir on every start, so each
    /// start gets a fresh one: a restart keeps the socket and the PIN, not the keys.
    fn start_daemon(&mut self) {
        if self.pin.is_empty() {
            let mut id = [0u8; 16];
            fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut id))
                .expect("read /dev/urandom");
            self.pin = format!("p11-{}", hex::encode(id));
        }
        let run = (0..)
            .find(|i| !self.path(&format!("data-{i}")).exists())
            .unwrap_or_default();
        let data = self.path(&format!("data-{run}"));
        let socket = format!("-dev-pkcs11-socket={}", self.socket().display());
        let root = format!("-dev-root-token-id={}", self.pin);
        let data = format!("-dev-data-dir={}", data.display());
        let d = Daemon::dev(&[&socket, &root, &data]);
        assert_eq!(d.token.as_deref(), Some(self.pin.as_str()));
        self.backend = Backend::Appliance(Some(Box::new(d)));
    }

    /// Kills the daemon with SIGKILL (appliance only).
    pub fn kill_daemon(&mut self) {
        match &mut self.backend {
            Backend::Appliance(d) => {
                let mut d = d.take().expect("the daemon is not running");
                d.kill9();
            }
            Backend::Reference(_) => panic!("the reference token has no daemon"),
        }
    }

    /// Starts the daemon again on the same socket with the same PIN (appliance only).
    pub fn restart_daemon(&mut self) {
        assert!(!self.is_reference(), "the reference token has no daemon");
        self.start_daemon();
    }

    /// `program` with the environment that points the library at this token.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.work.path());
        match &self.backend {
            Backend::Reference(hsm) => {
                cmd.env("SOFTHSM2_CONF", hsm.conf());
            }
            Backend::Appliance(_) => {
                cmd.env("IRONSEAL_PKCS11_SOCKET", self.socket());
                cmd.env_remove("IRONSEAL_PKCS11_CONF");
            }
        }
        cmd
    }

    /// `pkcs11-tool --module M ARGS` (no token chosen, no login).
    pub fn pkcs11_tool_bare(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("pkcs11-tool");
        cmd.arg("--module").arg(&self.module).args(args);
        run(&mut cmd)
    }

    /// `pkcs11-tool --module M --token-label L ARGS`, without logging in.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("pkcs11-tool");
        cmd.arg("--module")
            .arg(&self.module)
            .args(["--token-label", &self.label])
            .args(args);
        run(&mut cmd)
    }

    /// `pkcs11-tool --module M --token-label L --login --pin P ARGS`.
    pub fn pkcs11_tool_login(&self, args: &[&str]) -> Output {
        let mut all = vec!["--login", "--pin", &self.pin];
        all.extend_from_slice(args);
        self.pkcs11_tool(&all)
    }

    /// `p11tool --provider M ARGS`, the PIN in `GNUTLS_PIN` for `--login`.
    pub fn p11tool(&self, args: &[&str]) -> Output {
        require_tool("p11tool");
        let mut cmd = self.command("p11tool");
        cmd.arg("--provider")
            .arg(&self.module)
            .args(args)
            .env("GNUTLS_PIN", &self.pin)
            .env("HOME", self.work.path());
        run(&mut cmd)
    }

    /// `openssl ARGS` with an `openssl.cnf` that loads the PKCS#11 engine on this module,
    /// with the PIN there: libp11 refuses a `pin-value` longer than 32 characters in a URI,
    /// and appliance tokens are longer.
    pub fn openssl_engine(&self, args: &[&str]) -> Output {
        assert!(
            Path::new(PKCS11_ENGINE).exists(),
            "{PKCS11_ENGINE} is missing: run scripts/install-deps.sh (libengine-pkcs11-openssl)"
        );
        let conf = self.path("openssl-pkcs11.cnf");
        fs::write(
            &conf,
            format!(
                "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
                 [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\n\
                 engine_id = pkcs11\ndynamic_path = {PKCS11_ENGINE}\nMODULE_PATH = {}\n\
                 PIN = {}\ninit = 0\n[req]\ndistinguished_name = dn\n[dn]\n",
                self.module.display(),
                self.pin
            ),
        )
        .unwrap();
        let mut cmd = self.command("openssl");
        cmd.args(args).env("OPENSSL_CONF", &conf);
        run(&mut cmd)
    }

    /// An RFC 7512 URI naming this token and, with `attrs`, objects on it.
    pub fn uri(&self, attrs: &[(&str, &str)]) -> String {
        let mut uri = format!("pkcs11:token={}", pct_encode(&self.label));
        for (k, v) in attrs {
            uri.push_str(&format!(";{k}={}", pct_encode(v)));
        }
        uri
    }

    /// Generates a key pair (`key_type` as pkcs11-tool spells it: `rsa:2048`,
    /// `EC:prime256v1`) with CKA_ID `id` (hex) and CKA_LABEL `label`, for tests about
    /// something else. pkcs11-tool asks for a public key with CKA_PRIVATE false unless
    /// told `--private`, which the appliance refuses (all its objects are private); the
    /// plain invocation is the key-generation tests' own subject.
    pub fn keypair(&self, key_type: &str, id: &str, label: &str) -> Output {
        self.keypair_for(key_type, id, label, &[])
    }

    /// [`Self::keypair`] with pkcs11-tool usage flags (`--usage-decrypt`, ...): an
    /// appliance key has one usage, and pkcs11-tool asks for signing unless told otherwise.
    pub fn keypair_for(&self, key_type: &str, id: &str, label: &str, usage: &[&str]) -> Output {
        let mut args = vec![
            "--keypairgen",
            "--private",
            "--key-type",
            key_type,
            "--id",
            id,
            "--label",
            label,
        ];
        args.extend_from_slice(usage);
        self.pkcs11_tool_login(&args).ok()
    }

    /// Generates an AES-256 key with CKA_ID `id` and CKA_LABEL `label`, sensitive and
    /// private (pkcs11-tool asks for neither unless told, see [`Self::keypair`]).
    pub fn aes_key(&self, id: &str, label: &str) -> Output {
        self.pkcs11_tool_login(&[
            "--keygen",
            "--sensitive",
            "--private",
            "--key-type",
            "AES:32",
            "--id",
            id,
            "--label",
            label,
        ])
        .ok()
    }

    /// The public key with CKA_ID `id` as read from the token (DER SubjectPublicKeyInfo),
    /// converted to PEM by openssl; the path of the PEM file.
    pub fn public_key_pem(&self, id: &str) -> PathBuf {
        let der = self.path(&format!("pub-{id}.der"));
        let pem = self.path(&format!("pub-{id}.pem"));
        self.pkcs11_tool_login(&[
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            id,
            "--output-file",
            der.to_str().unwrap(),
        ])
        .ok();
        openssl(&[
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
        ])
        .ok();
        pem
    }

    /// Reads the token label from `--list-slots` (the first slot holding a token).
    fn read_label(&self) -> String {
        if self.is_reference() {
            return REFERENCE_LABEL.to_string();
        }
        let out = self.pkcs11_tool_bare(&["--list-slots"]).ok();
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("token label"))
            .and_then(|rest| rest.trim_start().strip_prefix(':'))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| panic!("no token in the slot list: {out}"))
    }
}

/// Percent-encodes what RFC 7512 does not allow verbatim in a path attribute value.
fn pct_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Plain `openssl ARGS` (no engine): the independent check of what the token made.
pub fn openssl(args: &[&str]) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(args).env_remove("OPENSSL_CONF");
    run(&mut cmd)
}

/// Runs `cmd` to completion within [`TOOL_DEADLINE`], killing it if it takes longer.
pub fn run(cmd: &mut Command) -> Output {
    run_within(cmd, TOOL_DEADLINE)
}

/// Runs `cmd` to completion, killing it (and failing the test) after `deadline`.
pub fn run_within(cmd: &mut Command, deadline: Duration) -> Output {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    let stdout = drain(&mut child, true);
    let stderr = drain(&mut child, false);
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a tool") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{line}` did not finish within {deadline:?}: stdout {:?}",
                stdout.join().unwrap_or_default()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    };
    Output {
        cmd: line,
        status: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Reads a child's stdout (or stderr) on a thread, so a chatty tool cannot block on a
/// full pipe while the test waits for it.
fn drain(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("piped stdout"))
    } else {
        Box::new(child.stderr.take().expect("piped stderr"))
    };
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The `CKR_*` name pkcs11-tool printed for the call that failed (`rv = CKR_X (0x..)`).
pub fn reported_rv(out: &Output) -> Option<String> {
    let text = format!("{}{}", out.stdout, out.stderr);
    let at = text.find("rv = ")?;
    let rest = &text[at + 5..];
    Some(
        rest.split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Serialises in-process use of a module: the library reads its socket (SoftHSM2 its
/// config) from the environment at `C_Initialize`, and `cargo test` runs tests as
/// threads of one process.
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The module loaded into this process with cryptoki, initialised for this token; the
/// environment stays pointed at the token while the guard lives.
pub struct Loaded {
    pub ctx: cryptoki::context::Pkcs11,
    pub slot: cryptoki::slot::Slot,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl Token {
    /// Loads and initialises the module in this process (OS locking, as applications
    /// that use threads do) and finds this token's slot.
    pub fn load(&self) -> Loaded {
        use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
        let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        match &self.backend {
            Backend::Reference(hsm) => std::env::set_var("SOFTHSM2_CONF", hsm.conf()),
            Backend::Appliance(_) => {
                std::env::remove_var("IRONSEAL_PKCS11_CONF");
                std::env::set_var("IRONSEAL_PKCS11_SOCKET", self.socket());
            }
        }
        let ctx = Pkcs11::new(&self.module)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", self.module.display()));
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        let slot = ctx
            .get_slots_with_token()
            .expect("C_GetSlotList")
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|i| i.label().trim_end() == self.label)
            })
            .unwrap_or_else(|| panic!("no slot holds the token {:?}", self.label));
        Loaded {
            ctx,
            slot,
            _guard: guard,
        }
    }
}

impl Loaded {
    /// A read-write session logged in as the user with `pin`.
    pub fn user_session(&self, pin: &str) -> cryptoki::session::Session {
        use cryptoki::session::UserType;
        use cryptoki::types::AuthPin;
        let session = self.ctx.open_rw_session(self.slot).expect("C_OpenSession");
        session
            .login(UserType::User, Some(&AuthPin::from(pin.to_string())))
            .expect("C_Login");
        session
    }
}

impl Token {
    /// Runs one row of `pkcs11/probe.c` (compiled here with `cc` against p11-kit's
    /// `pkcs11.h`) against this token; its `name=0x..` pairs, in order.
    pub fn probe(&self, row: &str) -> Vec<(String, u64)> {
        require_tool("cc");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("pkcs11/probe.c");
        let bin = self.path("probe");
        if !bin.exists() {
            let mut cc = Command::new("cc");
            cc.args(["-O1", "-Wall", "-pthread", "-I/usr/include/p11-kit-1", "-o"])
                .arg(&bin)
                .arg(&source)
                .arg("-ldl");
            let out = run(&mut cc);
            assert!(
                out.success(),
                "cannot build the probe (libp11-kit-dev: scripts/install-deps.sh): {out}"
            );
        }
        let mut cmd = self.command(&bin);
        cmd.arg(&self.module).args([&self.label, &self.pin, row]);
        let out = run(&mut cmd);
        assert!(out.success(), "probe row {row} could not run: {out}");
        out.stdout
            .split_whitespace()
            .map(|pair| {
                let (k, v) = pair
                    .split_once("=0x")
                    .unwrap_or_else(|| panic!("unreadable probe output {pair:?}: {out}"));
                let v = u64::from_str_radix(v, 16)
                    .unwrap_or_else(|_| panic!("unreadable probe output {pair:?}: {out}"));
                (k.to_string(), v)
            })
            .collect()
    }
}
