//! Kryoptic, the second test token: a PKCS#11 3.x soft token that does what SoftHSM2
//! cannot (`CKM_AES_KEY_WRAP_KWP`, OAEP with SHA-256 in `C_WrapKey`), so the in-boundary
//! paths are tested on a conformant token too. scripts/install-deps.sh builds the module
//! (softhsm-tests/kryoptic) into `$IRONSEAL_CACHE/kryoptic`; each [`Kryoptic`] is a token
//! of its own in a temporary directory (an sqlite file named by the TOML file that
//! `KRYOPTIC_CONF` names), initialised with OpenSC's pkcs11-tool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::hardware::{require_tool, write_private, USER_PIN};
use crate::tools::run_ok;

/// The variable naming the token's configuration file (read at `C_Initialize`).
pub const CONF_ENV: &str = "KRYOPTIC_CONF";
const SO_PIN: &str = "13579111";
/// The slot number the configuration gives the token.
const SLOT: u64 = 1;

/// The built module; panics with the install hint when it is missing.
pub fn module() -> PathBuf {
    let cache = std::env::var_os("IRONSEAL_CACHE").unwrap_or_else(|| "/var/tmp/ironseal".into());
    let path = Path::new(&cache).join("kryoptic/libkryoptic_pkcs11.so");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-deps.sh (it builds the Kryoptic test token)",
        path.display()
    );
    path
}

/// A Kryoptic token of its own.
pub struct Kryoptic {
    dir: TempDir,
    pub label: String,
    pub module: PathBuf,
}

impl Kryoptic {
    /// A fresh token labelled `label`, with user PIN [`USER_PIN`] (also in
    /// [`Self::pin_file`]).
    pub fn new(label: &str) -> Kryoptic {
        require_tool("pkcs11-tool");
        let module = module();
        let dir = tempfile::Builder::new()
            .prefix("ironseal-kryoptic-")
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("kryoptic.conf"),
            format!(
                "[[slots]]\nslot = {SLOT}\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                dir.path().join("token.sql").display()
            ),
        )
        .unwrap();
        let token = Kryoptic {
            dir,
            label: label.to_string(),
            module,
        };
        run_ok(
            token
                .tool()
                .args([
                    "--slot",
                    &SLOT.to_string(),
                    "--init-token",
                    "--label",
                    label,
                ])
                .args(["--so-pin", SO_PIN]),
        );
        run_ok(
            token
                .tool()
                .args(["--slot", &SLOT.to_string(), "--login", "--login-type", "so"])
                .args(["--so-pin", SO_PIN, "--init-pin", "--pin", USER_PIN]),
        );
        write_private(&token.pin_file(), &format!("{USER_PIN}\n"));
        token
    }

    fn tool(&self) -> Command {
        let mut c = Command::new("pkcs11-tool");
        c.arg("--module")
            .arg(&self.module)
            .env(CONF_ENV, self.conf());
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file to pass as [`CONF_ENV`].
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("kryoptic.conf")
    }

    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("user.pin")
    }

    /// `pkcs11-tool --module <kryoptic> ARGS` against this token, logged in.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        self.tool()
            .args(["--token-label", &self.label, "--login", "--pin", USER_PIN])
            .args(args)
            .output()
            .expect("pkcs11-tool")
    }
}
