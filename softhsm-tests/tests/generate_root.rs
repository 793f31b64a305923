//! `bao operator generate-root` with the Shamir seal: a quorum of unseal keys and an OTP
//! make a new root token; wrong keys do not.

use softhsm_tests::{reference_mode, Daemon};

#[test]
fn unseal_keys_regenerate_a_root_token() {
    if reference_mode() {
        return; // OpenBao 2.5+ puts these endpoints behind a token and policy.
    }
    let mut d = Daemon::config(false);
    let init = d.init(5, 3);
    d.unseal();
    let (status, otp) = d.generate_root(&init.keys_b64[1..4]);
    assert_eq!(status["complete"], true, "{status}");
    let token = d.generate_root_decode(status["encoded_token"].as_str().unwrap(), &otp);
    assert_ne!(token, init.root_token);
    let lookup = d
        .bao_as(Some(&token), &["token", "lookup", "-format=json"])
        .ok()
        .json();
    assert_eq!(lookup["data"]["policies"][0], "root", "{lookup}");

    // Keys of another appliance: refused at the threshold.
    let mut other = Daemon::config(false);
    let stranger = other.init(5, 3);
    let (err, _) = d.generate_root(&stranger.keys_b64[..3]);
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
