//! The cloud providers' stand-ins in `softhsm-tests/emulators/` (Python with
//! `cryptography`, from the venv): started on a loopback port, which each prints as its
//! first line `PORT=<n>`, and stopped when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::tools::python;

/// How long an emulator may take to print its port (Python imports `cryptography`).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running emulator; killed on drop.
pub struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    /// Starts `softhsm-tests/emulators/<script>` and waits for its `PORT=` line.
    pub fn start(script: &str) -> Emulator {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("emulators")
            .join(script);
        let mut child = Command::new(python())
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep reading so the emulator never blocks on a full pipe.
            let _ = reader.read_to_end(&mut Vec::new());
        });
        let line = rx.recv_timeout(START_DEADLINE).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("PORT=")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not print PORT=<n> (first line: {line:?})");
        };
        Emulator { child, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
