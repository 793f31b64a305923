//! A fresh appliance brought to service through the web console's wizards, over TLS, and
//! the status page; every request the console made is in the audit log as the signed-in
//! token's own. Skipped against OpenBao: its UI is another application.

use sha2::{Digest, Sha256};
use softhsm_tests::console::run_script;
use softhsm_tests::{reference_mode, Daemon};

/// The SHA-256 fingerprint of the first certificate of a PEM file, as `AB:CD:...`.
fn fingerprint(pem: &str) -> String {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("the certificate is base64");
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn init_unseal_sign_in_and_status_through_the_console() {
    if reference_mode() {
        return;
    }
    let d = Daemon::config_with_top_level(true, "ui = true");
    let cert = std::fs::read_to_string(d.data_dir().join("tls/cert.pem"))
        .expect("the generated certificate");
    let audit = d.dir().join("audit.log");
    let out = d.dir().join("root-token");
    run_script(
        "wizards.py",
        &d,
        None,
        &[
            ("CONSOLE_TLS_SHA256", &fingerprint(&cert)),
            ("CONSOLE_AUDIT_FILE", audit.to_str().unwrap()),
            ("CONSOLE_OUT", out.to_str().unwrap()),
        ],
    );
    let root = std::fs::read_to_string(&out).expect("the script wrote the root token");

    // The status page's reads, made through the proxy, are the root token's own.
    let mut d = d;
    d.token = Some(root.clone());
    let hashed = d
        .bao(&[
            "write",
            "-field=hash",
            "sys/audit-hash/file",
            &format!("input={root}"),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let log = std::fs::read_to_string(&audit).expect("the audit file");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect();
    let appliance: Vec<_> = lines
        .iter()
        .filter(|l| l["request"]["path"] == "sys/appliance")
        .collect();
    assert!(
        appliance.len() >= 2,
        "the status page's sys/appliance read is audited (request and response): {log}"
    );
    for l in appliance {
        assert_eq!(l["auth"]["client_token"], hashed.as_str(), "{l}");
        assert_eq!(l["auth"]["display_name"], "root", "{l}");
        assert_eq!(l["auth"]["policies"], serde_json::json!(["root"]), "{l}");
    }
    assert!(
        !d.logs().contains(&root),
        "the root token is in the daemon's log"
    );
}
