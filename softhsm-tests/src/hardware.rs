//! Real hardware stand-ins, one per test: a SoftHSM2 token in a temporary directory
//! (its own `softhsm2.conf`, named by `SOFTHSM2_CONF`) and swtpm on a temporary state
//! dir with its socket TCTI. Both are cleaned up when dropped. A missing tool fails the
//! test with a message naming scripts/install-deps.sh; nothing is skipped.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::tools::run_ok;
use crate::{poll_until, Daemon};

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const USER_PIN: &str = "246810";
/// The label of the root key the daemon generates in a SoftHSM2 token.
pub const ROOT_KEY_LABEL: &str = "ironseal-root";
const SO_PIN: &str = "13579111";

/// Panics with the install hint unless `bin` is on PATH.
#[track_caller]
pub fn require_tool(bin: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` is not installed: run scripts/install-deps.sh (it installs softhsm2, opensc, swtpm, swtpm-tools, tpm2-tools)"
    );
}

/// Writes `text` to `path` with mode 0600 (the daemon refuses world-readable PIN files).
pub fn write_private(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(text.as_bytes()).unwrap();
}

/// A SoftHSM2 token of its own.
pub struct SoftHsm {
    dir: TempDir,
    pub label: String,
}

impl SoftHsm {
    /// A fresh token labelled `label`, with user PIN [`USER_PIN`] (also in [`Self::pin_file`]).
    pub fn new(label: &str) -> SoftHsm {
        require_tool("softhsm2-util");
        require_tool("pkcs11-tool");
        assert!(
            Path::new(SOFTHSM_MODULE).exists(),
            "{SOFTHSM_MODULE} is missing: run scripts/install-deps.sh"
        );
        let dir = tempfile::Builder::new()
            .prefix("ironseal-softhsm-")
            .tempdir()
            .unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm {
            dir,
            label: label.to_string(),
        };
        run_ok(
            Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
                .env("SOFTHSM2_CONF", hsm.conf()),
        );
        write_private(&hsm.pin_file(), &format!("{USER_PIN}\n"));
        hsm
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `softhsm2.conf` to pass as `SOFTHSM2_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("user.pin")
    }

    /// The seal block for this token; `lib` may point elsewhere (missing-module tests).
    pub fn seal_hcl(&self, lib: &Path, key_label: &str, disabled: bool) -> String {
        format!(
            "seal \"pkcs11\" {{\n  lib          = \"{}\"\n  token_label  = \"{}\"\n  key_label    = \"{key_label}\"\n  generate_key = \"true\"\n  pin_file     = \"{}\"\n{}}}\n",
            lib.display(),
            self.label,
            self.pin_file().display(),
            if disabled { "  disabled     = \"true\"\n" } else { "" }
        )
    }

    /// The seal block for this token's root key [`ROOT_KEY_LABEL`] through SoftHSM2.
    pub fn root_seal_hcl(&self, disabled: bool) -> String {
        self.seal_hcl(Path::new(SOFTHSM_MODULE), ROOT_KEY_LABEL, disabled)
    }

    /// A configured daemon sealed by this token (root key [`ROOT_KEY_LABEL`]),
    /// uninitialised.
    pub fn daemon(&self) -> Daemon {
        let seal = self.root_seal_hcl(false);
        let conf = self.conf();
        Daemon::config_with_seal(&seal, &[("SOFTHSM2_CONF", conf.to_str().unwrap())])
    }

    /// [`Self::daemon`], initialised with `shares` recovery keys of which `threshold`
    /// are needed, and unsealed; the recovery keys (base64).
    pub fn unsealed_daemon(&self, shares: usize, threshold: usize) -> (Daemon, Vec<String>) {
        let mut d = self.daemon();
        let init = d.init_recovery(shares, threshold);
        d.wait_unsealed();
        (d, init.keys_b64)
    }

    /// Takes the token away as a pulled device would go: its directory moves out of
    /// SoftHSM2's token directory. A process that holds it open (measured with
    /// python-pkcs11) then gets CKR_OBJECT_HANDLE_INVALID on its objects and finds none,
    /// and keeps doing so after [`Self::plug_back`] until it reinitialises the module.
    /// Permissions would not do: the tests run as root.
    pub fn unplug(&self) {
        let (tokens, away) = (self.dir().join("tokens"), self.dir().join("unplugged"));
        std::fs::create_dir_all(&away).unwrap();
        move_entries(&tokens, &away);
    }

    /// Puts the token [`Self::unplug`] took away back where SoftHSM2 finds it.
    pub fn plug_back(&self) {
        move_entries(&self.dir().join("unplugged"), &self.dir().join("tokens"));
    }

    /// `pkcs11-tool --module <softhsm> ARGS` against this token, logged in.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .args(["--module", SOFTHSM_MODULE, "--token-label", &self.label])
            .args(["--login", "--pin", USER_PIN])
            .args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .expect("pkcs11-tool")
    }
}

fn move_entries(from: &Path, to: &Path) {
    let entries: Vec<_> = std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty(), "nothing to move in {}", from.display());
    for entry in entries {
        let name = entry.file_name().unwrap();
        std::fs::rename(&entry, to.join(name))
            .unwrap_or_else(|e| panic!("cannot move {}: {e}", entry.display()));
    }
}

/// A software TPM 2.0 listening on 127.0.0.1 (command port P, control port P+1).
pub struct Swtpm {
    child: Option<Child>,
    state: TempDir,
    pub port: u16,
}

/// A port P with P+1 free too (swtpm's command and control ports).
pub fn two_free_ports() -> u16 {
    for _ in 0..100 {
        let Ok(a) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = a.local_addr() else { continue };
        let p = addr.port();
        if p < u16::MAX - 1 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free TCP ports on 127.0.0.1");
}

impl Swtpm {
    /// A fresh TPM (new endorsement and owner seeds) on a temporary state dir.
    pub fn start() -> Swtpm {
        require_tool("swtpm");
        let state = tempfile::Builder::new()
            .prefix("ironseal-swtpm-")
            .tempdir()
            .unwrap();
        let mut t = Swtpm {
            child: None,
            state,
            port: two_free_ports(),
        };
        t.resume();
        t
    }

    /// The TCTI string for the daemon and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Extends PCR `pcr` (SHA-256 bank) with `digest`, as a measured boot would.
    pub fn pcr_extend(&self, pcr: u8, digest: &[u8; 32]) {
        require_tool("tpm2_pcrextend");
        run_ok(
            Command::new("tpm2_pcrextend")
                .arg(format!("{pcr}:sha256={}", hex::encode(digest)))
                .env("TPM2TOOLS_TCTI", self.tcti()),
        );
    }

    pub fn seal_hcl(&self) -> String {
        format!("seal \"tpm2\" {{\n  tcti = \"{}\"\n}}\n", self.tcti())
    }

    /// Stops the TPM process (its state dir stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        poll_until(Duration::from_secs(20), "swtpm to stop listening", || {
            TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
    }

    /// Starts the TPM again on the same state dir and ports.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "swtpm is already running");
        let port = self.port;
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", self.state.path().display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start swtpm ({e}): run scripts/install-deps.sh"));
        self.child = Some(child);
        poll_until(
            Duration::from_secs(20),
            &format!("swtpm to listen on {port}"),
            || TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()),
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
