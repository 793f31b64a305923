//! The web console's browser tests: a Playwright script from `softhsm-tests/console/`
//! (Python, in the venv of [`crate::tools::python`]) drives Debian's chromium against a
//! daemon the test started, with the daemon's address and a token in its environment.
//! Screenshots go to `$IRONSEAL_ARTIFACTS/console/` (default `target/console-screenshots/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::tools::python;

/// How long one script may run before it is killed and the test fails.
pub const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the scripts save their screenshots.
pub fn screenshots_dir() -> PathBuf {
    match std::env::var_os("IRONSEAL_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir).join("console"),
        None => workspace().join("target/console-screenshots"),
    }
}

/// The vendored axe-core the scripts inject (never served by the daemon).
pub fn axe_path() -> PathBuf {
    workspace().join("console/vendor/axe.min.js")
}

/// What a script printed.
pub struct ScriptOutput {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `softhsm-tests/console/<script>` against `daemon`, signing in with `token` when
/// the script does; fails the test if the script fails or outlives [`SCRIPT_DEADLINE`].
pub fn run_script(
    script: &str,
    daemon: &Daemon,
    token: Option<&str>,
    env: &[(&str, &str)],
) -> ScriptOutput {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let logs = tempfile::tempdir().expect("a temp dir for the script's output");
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let create = |p: &Path| std::fs::File::create(p).expect("cannot create the script's log");
    let mut cmd = Command::new(python());
    cmd.arg(dir.join(script))
        .current_dir(&dir)
        .env("PYTHONPATH", &dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("CONSOLE_ADDR", &daemon.addr)
        .env("CONSOLE_SCREENSHOTS", screenshots_dir())
        .env("CONSOLE_AXE", axe_path())
        .env("HOME", daemon.dir().join("home"))
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path));
    if let Some(t) = token {
        cmd.env("CONSOLE_TOKEN", t);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the script") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let output = ScriptOutput {
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    match status {
        Some(s) if s.success() => output,
        Some(s) => panic!(
            "console script {script} failed ({s})\n--- stdout\n{}\n--- stderr\n{}\n--- daemon log (tail)\n{}",
            output.stdout,
            output.stderr,
            tail(&daemon.logs(), 40)
        ),
        None => panic!(
            "console script {script} ran past {SCRIPT_DEADLINE:?}\n--- stdout\n{}\n--- stderr\n{}",
            output.stdout, output.stderr
        ),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
