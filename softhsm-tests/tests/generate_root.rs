//! `bao operator generate-root` with the Shamir seal: a quorum of unseal keys and an OTP
//! make a new root token; wrong keys do not.

use serde_json::Value;
use softhsm_tests::{reference_mode, Daemon};

fn generate_root(d: &Daemon, keys: &[String]) -> (Value, String) {
    let init = d
        .bao_as(
            None,
            &["operator", "generate-root", "-init", "-format=json"],
        )
        .ok()
        .json();
    let otp = init["otp"].as_str().expect("otp").to_string();
    let nonce = init["nonce"].as_str().expect("nonce").to_string();
    let mut last = Value::Null;
    for key in keys {
        let out = d.bao_as(
            None,
            &[
                "operator",
                "generate-root",
                "-format=json",
                &format!("-nonce={nonce}"),
                key,
            ],
        );
        if !out.success() {
            return (Value::String(out.stderr), otp);
        }
        last = out.json();
    }
    (last, otp)
}

#[test]
fn unseal_keys_regenerate_a_root_token() {
    if reference_mode() {
        return; // OpenBao 2.5+ puts these endpoints behind a token and policy.
    }
    let mut d = Daemon::config(false);
    let init = d.init(5, 3);
    d.unseal();
    let (status, otp) = generate_root(&d, &init.keys_b64[1..4]);
    assert_eq!(status["complete"], true, "{status}");
    let decoded = d
        .bao_as(
            None,
            &[
                "operator",
                "generate-root",
                "-format=json",
                &format!("-decode={}", status["encoded_token"].as_str().unwrap()),
                &format!("-otp={otp}"),
            ],
        )
        .ok()
        .json();
    let token = decoded["token"].as_str().unwrap().to_string();
    assert_ne!(token, init.root_token);
    let lookup = d
        .bao_as(Some(&token), &["token", "lookup", "-format=json"])
        .ok()
        .json();
    assert_eq!(lookup["data"]["policies"][0], "root", "{lookup}");

    // Keys of another appliance: refused at the threshold.
    let mut other = Daemon::config(false);
    let stranger = other.init(5, 3);
    let (err, _) = generate_root(&d, &stranger.keys_b64[..3]);
    assert!(
        err.as_str().is_some_and(|e| e.contains("do not match")),
        "{err}"
    );
    // A cancelled attempt leaves nothing behind.
    d.bao_as(None, &["operator", "generate-root", "-init"]).ok();
    d.bao_as(None, &["operator", "generate-root", "-cancel"])
        .ok();
    let status = d
        .bao_as(
            None,
            &["operator", "generate-root", "-status", "-format=json"],
        )
        .ok()
        .json();
    assert_eq!(status["started"], false, "{status}");
}
