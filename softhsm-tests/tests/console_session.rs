//! The web console's session in a real browser: sign in, the header and nav, sign out.
//! Ironseal's own console: OpenBao's UI is another application, so these tests are
//! skipped against the reference (`IRONSEAL_REFERENCE=openbao`).

use std::path::Path;

use softhsm_tests::console::run_script;
use softhsm_tests::{reference_mode, Daemon};

#[test]
fn signing_in_and_out_in_the_browser() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    let token = d.token.clone().expect("dev mode printed a root token");
    run_script("signin.py", &d, Some(&token), &[]);
}

#[test]
fn a_revoked_or_expired_token_ends_the_session() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    let root = d.token.clone().expect("dev mode printed a root token");
    let out = d.dir().join("tokens");
    run_script(
        "session_end.py",
        &d,
        None,
        &[
            ("CONSOLE_ROOT_TOKEN", &root),
            ("CONSOLE_OUT", out.to_str().unwrap()),
        ],
    );
    let logs = d.logs();
    for token in std::fs::read_to_string(&out).unwrap().lines() {
        assert!(!logs.contains(token), "a token is in the daemon's log");
    }
}

#[test]
fn csrf_headers_cookie_and_sign_out_at_the_http_level() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    // Not the root token: dev mode prints that one in its banner.
    let token = d
        .bao(&[
            "token",
            "create",
            "-field=token",
            "-policy=root",
            "-display-name=console",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let assets = assets();
    run_script(
        "session_security.py",
        &d,
        Some(&token),
        &[
            ("CONSOLE_ASSETS", &assets.join(",")),
            ("CONSOLE_SECURE", "0"),
            ("CONSOLE_UNSEAL_KEY", d.dev_unseal_key.as_deref().unwrap()),
        ],
    );
    assert!(
        !d.logs().contains(&token),
        "the token is in the daemon's log"
    );
}

/// Every file the console serves, as paths below `/ui/assets/`.
fn assets() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/assets");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(
                    path.strip_prefix(&root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }
    assert!(out.iter().any(|a| a == "js/app.js"), "{out:?}");
    out
}
