//! Outside programs the tests check the daemon with: curl, and the Python of the venv
//! that scripts/install-deps.sh makes (it has `cryptography`).

use std::path::PathBuf;
use std::process::Command;

/// The venv's Python (`IRONSEAL_PYTHON` overrides it).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("IRONSEAL_PYTHON") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("IRONSEAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ironseal"));
    cache.join("venv/bin/python")
}

/// Runs `cmd` and fails the test, with its stderr, unless it succeeds; gives its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
