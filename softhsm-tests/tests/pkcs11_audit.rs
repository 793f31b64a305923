//! A PKCS#11 call is audited like any other request: after a C_Sign through the library,
//! the daemon's file audit device holds a request and a response entry whose path names
//! the PKCS#11 function (`pkcs11/C_Sign`). Appliance only.

use std::fs;
use std::time::Duration;

use serde_json::Value;
use softhsm_tests::pkcs11::{skip, Token};
use softhsm_tests::poll_until;

#[test]
fn c_sign_is_in_the_audit_log() {
    if skip(true) {
        return;
    }
    let t = Token::start();
    let log = t.path("audit.log");
    let out = t
        .daemon()
        .bao(&[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", log.display()),
        ])
        .ok();
    assert!(out.stdout.contains("Success!"), "{out}");
    t.keypair("EC:prime256v1", "02", "audited-ec");
    let data = t.path("data");
    fs::write(&data, [0x5a; 32]).unwrap();
    t.pkcs11_tool_login(&[
        "--sign",
        "-m",
        "ECDSA",
        "--id",
        "02",
        "-i",
        data.to_str().unwrap(),
        "-o",
        t.path("sig").to_str().unwrap(),
    ])
    .ok();

    let entries = poll_until(
        Duration::from_secs(10),
        "a request and a response entry for pkcs11/C_Sign",
        || {
            let entries: Vec<Value> = fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|e: &Value| e["request"]["path"] == "pkcs11/C_Sign")
                .collect();
            let has = |kind: &str| entries.iter().any(|e| e["type"] == kind);
            (has("request") && has("response")).then_some(entries)
        },
    );
    let response = entries
        .iter()
        .find(|e| e["type"] == "response")
        .expect("a response entry");
    assert!(
        response["error"].is_null() || response["error"] == "",
        "the audited C_Sign failed: {response}"
    );
}
