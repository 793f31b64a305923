//! `python-pkcs11` (PyPI) from 8 threads at once: sign, verify, encrypt, decrypt and find
//! objects, every result checked with Python `cryptography` (`pkcs11/threads.py`); and
//! the session keys python-pkcs11 makes by default (`pkcs11/session_keys.py`).

use std::path::Path;

use softhsm_tests::pkcs11::{run, skip, Token};
use softhsm_tests::tools::python;
use softhsm_tests::Body;

#[test]
fn eight_threads_sign_verify_encrypt_decrypt_find() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    t.keypair("rsa:2048", "01", "py-rsa");
    t.keypair_for(
        "rsa:2048",
        "03",
        "py-rsa-enc",
        &["--usage-decrypt", "--usage-wrap"],
    );
    t.keypair("EC:prime256v1", "02", "py-ec");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pkcs11/threads.py");
    let mut cmd = t.command(python());
    cmd.arg(script).arg(&t.module).args([&t.label, &t.pin]);
    if t.is_reference() {
        // python-pkcs11 initialises with no arguments, and SoftHSM2 then drops its own
        // locking: on the reference the threads take turns (see threads.py).
        cmd.arg("--take-turns");
    }
    let out = run(&mut cmd);
    assert!(out.success(), "{out}");
    // 8 threads x 4 rounds x 16 checked operations each.
    assert_eq!(out.stdout.trim(), "ok 512", "{out}");
}

#[test]
fn session_keys_by_default_sign_verify_and_go_with_their_session() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pkcs11/session_keys.py");
    let mut cmd = t.command(python());
    cmd.arg(script).arg(&t.module).args([&t.label, &t.pin]);
    let out = run(&mut cmd);
    assert!(out.success(), "{out}");
    // 6 made and used, 3 x 2 seen by a second session and not by another application,
    // 3 gone with their session, and the token key still there.
    assert_eq!(out.stdout.trim(), "ok 16", "{out}");
    if t.is_reference() {
        return;
    }
    // Only the token key is a managed key.
    let r = t
        .daemon()
        .http("GET", "/api/v1/keys", Some(&t.pin), Body::None);
    assert_eq!(r.status, 200, "{r}");
    let names: Vec<String> = r.json()["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {r}"))
        .iter()
        .filter_map(|k| k["name"].as_str().map(String::from))
        .collect();
    assert_eq!(names, vec!["py-stored".to_string()], "{r}");
}
