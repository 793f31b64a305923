//! The TPM 2.0 seal against swtpm per test: init with recovery keys, auto-unseal after a
//! restart with the data intact, sealed with a clear error while swtpm is down and
//! unsealed once it is back (same process), and a fresh TPM cannot open the data dir.

use std::time::Duration;

use serde_json::Value;
use softhsm_tests::hardware::Swtpm;
use softhsm_tests::{poll_until, reference_mode, Daemon};

const DEADLINE: Duration = Duration::from_secs(60);

fn wait_unsealed(d: &Daemon) -> Value {
    poll_until(DEADLINE, "the daemon to unseal itself", || {
        let s = d.seal_status();
        (s["sealed"] == false).then_some(s)
    })
}

fn wait_seal_error(d: &Daemon, needle: &str) -> String {
    poll_until(DEADLINE, &format!("a seal error about {needle:?}"), || {
        let s = d.seal_status();
        assert_eq!(s["sealed"], true, "unexpectedly unsealed: {s}");
        s["seal_error"]
            .as_str()
            .filter(|e| e.contains(needle))
            .map(String::from)
    })
}

fn get_secret(d: &Daemon, path: &str) -> String {
    d.bao(&["kv", "get", "-mount=secret", "-field=value", path])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn tpm2_seal_auto_unseals_survives_tpm_outage_and_refuses_another_tpm() {
    if reference_mode() {
        return; // Ironseal's seals: OpenBao has no swtpm set up here.
    }
    let mut tpm = Swtpm::start();
    let mut d = Daemon::config_with_seal(&tpm.seal_hcl(), &[]);
    assert_eq!(d.seal_status()["type"], "tpm2");
    let out = d
        .bao_as(
            None,
            &[
                "operator",
                "init",
                "-format=json",
                "-recovery-shares=3",
                "-recovery-threshold=2",
            ],
        )
        .ok();
    let v = out.json();
    assert_eq!(
        v["recovery_keys_b64"].as_array().map(Vec::len),
        Some(3),
        "{out}"
    );
    d.token = Some(v["root_token"].as_str().unwrap().to_string());
    let s = wait_unsealed(&d);
    assert_eq!(s["type"], "tpm2", "{s}");
    assert_eq!(s["recovery_seal"], true, "{s}");
    assert!(d.data_dir().join("tpm2-root.pub").exists());
    assert!(d.data_dir().join("tpm2-root.priv").exists());
    d.ensure_secret_kv2();
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "t/one",
        "value=sealed-to-the-tpm",
    ])
    .ok();

    d.restart_after_kill9();
    wait_unsealed(&d);
    assert_eq!(get_secret(&d, "t/one"), "sealed-to-the-tpm");

    // swtpm down at start: sealed, says so, and unseals when the TPM is back.
    d.kill9();
    tpm.stop();
    d.start();
    // seal-status is unauthenticated: a category there, the details in the log.
    wait_seal_error(&d, "tpm_unreachable");
    assert!(d.logs().contains("cannot reach the TPM"), "{}", d.logs());
    let pid = d.pid();
    tpm.resume();
    wait_unsealed(&d);
    assert_eq!(d.pid(), pid);
    assert_eq!(get_secret(&d, "t/one"), "sealed-to-the-tpm");

    // The data dir next to a fresh TPM: cannot be unsealed, and the error says why.
    d.kill9();
    let fresh = Swtpm::start();
    d.set_seal(Some(&fresh.seal_hcl()));
    d.start();
    wait_seal_error(&d, "device_mismatch");
    let logs = d.logs();
    assert!(
        logs.contains("another TPM") && logs.contains("tpm2"),
        "{logs}"
    );
}
