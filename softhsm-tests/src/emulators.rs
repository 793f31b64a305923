//! The cloud provider emulators of `softhsm-tests/emulators/` (Python with `cryptography`,
//! from the venv of [`crate::tools::python`]): each listens on `127.0.0.1:0`, prints
//! `PORT=<n>` as its first stdout line, speaks one provider's REST API, and answers the
//! same admin endpoints: `GET /_emulator/state` (what arrived) and `POST /_emulator/fault`
//! (`{"mode": "none" | "deny" | "expired" | "error500"}`). `aws_fault_proxy.py` puts the
//! same faults in front of LocalStack.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::tools::{python, run_ok};

/// How long an emulator may take to print its port (Python plus `cryptography` imports).
pub const EMULATOR_STARTUP: Duration = Duration::from_secs(30);

/// A running emulator, killed when dropped.
pub struct Emulator {
    child: Option<Child>,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The directory the emulator scripts live in.
pub fn emulators_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("emulators")
}

impl Emulator {
    /// Starts `emulators/<script>` with `args` and waits for its `PORT=` line. Its stderr
    /// goes to the test's, so a crash explains itself.
    pub fn start(script: &str, args: &[&str]) -> Emulator {
        let path = emulators_dir().join(script);
        let mut child = Command::new(python())
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the first line for the port, then drains the pipe so the emulator never
        // blocks on a full one.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut emulator = Emulator {
            child: Some(child),
            port: 0,
        };
        let first = match rx.recv_timeout(EMULATOR_STARTUP) {
            Ok(Some(Ok(line))) => line,
            other => {
                panic!("{script} did not print PORT=<n> within {EMULATOR_STARTUP:?}: {other:?}")
            }
        };
        emulator.port = first
            .trim()
            .strip_prefix("PORT=")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} printed {first:?}, not PORT=<n>"));
        emulator
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the emulator holds (`GET /_emulator/state`).
    pub fn state(&self) -> Value {
        let body = run_ok(Command::new("curl").args([
            "-sS",
            "--fail-with-body",
            &format!("{}/_emulator/state", self.url()),
        ]));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("state is not JSON ({e}): {body}"))
    }

    /// Makes the emulator answer as the provider does with `mode`: `none`, `deny` (a
    /// permission is missing), `expired` (the credentials have expired), `error500`, or
    /// where the emulator has it `hang` (hold requests until the mode changes).
    pub fn fault(&self, mode: &str) {
        self.admin("fault", serde_json::json!({ "mode": mode }));
    }

    /// `POST /_emulator/<what>` with `body` (`setup`, `fault`); its JSON answer.
    pub fn admin(&self, what: &str, body: Value) -> Value {
        let answer = run_ok(Command::new("curl").args([
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body.to_string(),
            &format!("{}/_emulator/{what}", self.url()),
        ]));
        serde_json::from_str(&answer).unwrap_or(Value::Null)
    }
}
