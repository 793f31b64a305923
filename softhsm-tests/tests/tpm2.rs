//! The TPM 2.0 seal against swtpm per test: init with recovery keys, auto-unseal after a
//! restart with the data intact, sealed with a clear error while swtpm is down and
//! unsealed once it is back (same process), and a fresh TPM cannot open the data dir.

use serde_json::Value;
use softhsm_tests::hardware::Swtpm;
use softhsm_tests::{reference_mode, Daemon};

fn wait_seal_error(d: &Daemon, needle: &str) -> Value {
    d.wait_seal_error(&format!("a seal error about {needle:?}"), |e| {
        e.as_str().is_some_and(|e| e.contains(needle))
    })
}

#[test]
fn tpm2_seal_auto_unseals_survives_tpm_outage_and_refuses_another_tpm() {
    if reference_mode() {
        return; // Ironseal's seals: OpenBao has no swtpm set up here.
    }
    let mut tpm = Swtpm::start();
    let mut d = Daemon::config_with_seal(&tpm.seal_hcl(), &[]);
    assert_eq!(d.seal_status()["type"], "tpm2");
    d.init_recovery(3, 2);
    let s = d.wait_unsealed();
    assert_eq!(s["type"], "tpm2", "{s}");
    assert_eq!(s["recovery_seal"], true, "{s}");
    assert!(d.data_dir().join("tpm2-seal.json").exists());
    d.ensure_secret_kv2();
    d.kv_put_value("t/one", "sealed-to-the-tpm");

    d.restart_after_kill9();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("t/one"), "sealed-to-the-tpm");

    // swtpm down at start: sealed, says so, and unseals when the TPM is back.
    d.kill9();
    tpm.stop();
    d.start();
    // seal-status is unauthenticated: a category there, the details in the log.
    wait_seal_error(&d, "tpm_unreachable");
    assert!(d.logs().contains("cannot reach the TPM"), "{}", d.logs());
    let pid = d.pid();
    tpm.resume();
    d.wait_unsealed();
    assert_eq!(d.pid(), pid);
    assert_eq!(d.kv_get_value("t/one"), "sealed-to-the-tpm");

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

/// `ironseal operator ARGS` against the daemon, as root; its stdout as JSON.
fn operator(d: &Daemon, args: &[&str]) -> Value {
    let out = d
        .client_command(&softhsm_tests::ironseal_bin(), d.token.as_deref())
        .arg("operator")
        .args(args)
        .output()
        .expect("ironseal operator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ironseal operator {args:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn seal_policy(d: &Daemon) -> Value {
    d.bao(&["read", "-format=json", "sys/seal-policy"])
        .ok()
        .json()["data"]
        .clone()
}

/// A PCR-bound TPM seal across firmware updates: a change authorised beforehand keeps
/// auto-unseal working; an unauthorised one leaves the appliance sealed with
/// `tpm_policy_mismatch`, and the recovery keys plus `reseal` bring it back, data intact.
#[test]
fn tpm2_pcr_policy_authorised_update_unplanned_change_and_recovery_reseal() {
    if reference_mode() {
        return; // Ironseal's TPM seal: OpenBao has no swtpm seal here.
    }
    let tpm = Swtpm::start();
    let seal = format!(
        "seal \"tpm2\" {{\n  tcti = \"{}\"\n  pcrs = \"16\"\n}}\n",
        tpm.tcti()
    );
    let mut d = Daemon::config_with_seal(&seal, &[]);
    let recovery = d.init_recovery(3, 2).keys_b64;
    d.wait_unsealed();
    assert!(d.data_dir().join("tpm2-seal.json").exists());
    d.ensure_secret_kv2();
    d.kv_put_value("fw/one", "before-updates");

    let p = seal_policy(&d);
    assert_eq!(p["signed_policy"], true, "{p}");
    assert_eq!(p["current_authorized"], true, "{p}");
    let before = hex::decode(p["current"]["16"].as_str().unwrap()).unwrap();

    // Only a sudo token may authorise platform states.
    let (plain, _) = d.bao_token_create(None, &["-policy=default"]);
    let denied = d.bao_as(Some(&plain), &["write", "-f", "sys/seal-policy/reseal"]);
    assert!(
        !denied.success() && denied.stderr.contains("403"),
        "{denied}"
    );
    // Bad input is refused with what is wrong.
    let bad = d.bao(&["write", "sys/seal-policy/authorize-pcrs", "extend=16=abcd"]);
    assert!(!bad.success() && bad.stderr.contains("32 bytes"), "{bad}");
    let zero = "00".repeat(32);
    let unknown = d.bao(&["write", "sys/seal-policy/authorize-pcrs", "bank=sha1"]);
    assert!(
        !unknown.success()
            && unknown
                .stderr
                .contains("unknown parameters for sys/seal-policy/authorize-pcrs: bank"),
        "{unknown}"
    );
    // The query is checked as well as the body, since a field may come from either.
    for (path, needle) in [
        (
            "/v1/sys/seal-policy/authorize-pcrs?bank=sha1",
            "unknown parameters for sys/seal-policy/authorize-pcrs: bank",
        ),
        (
            "/v1/sys/seal-policy/reseal?pcrs=16",
            "unknown parameters for sys/seal-policy/reseal: pcrs",
        ),
    ] {
        d.send_json("POST", path, "{}").assert_error(400, needle);
    }
    d.get("/v1/sys/seal-policy?verbose=1")
        .assert_error(400, "unknown parameters for sys/seal-policy: verbose");
    let outside = d.bao(&[
        "write",
        "sys/seal-policy/authorize-pcrs",
        &format!("pcrs=7={zero}"),
    ]);
    assert!(
        !outside.success() && outside.stderr.contains("not one of the seal's pcrs"),
        "{outside}"
    );

    // A planned update: authorise PCR 16's next value, then "boot" into it.
    let update = [0x42u8; 32];
    let out = operator(
        &d,
        &[
            "authorize-pcrs",
            &format!("-extend=16={}", hex::encode(update)),
        ],
    );
    let expected = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(&before);
        h.update(update);
        hex::encode(h.finalize())
    };
    let authorized = out["authorized"].clone();
    assert!(
        authorized
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["16"] == expected.as_str()),
        "{out}"
    );
    d.kill9();
    tpm.pcr_extend(16, &update);
    d.start();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("fw/one"), "before-updates");
    assert_eq!(seal_policy(&d)["current"]["16"], expected.as_str());

    // An update nobody authorised: sealed, with the category in seal-status.
    d.kill9();
    tpm.pcr_extend(16, &[0x43u8; 32]);
    d.start();
    wait_seal_error(&d, "tpm_policy_mismatch");
    assert!(d.logs().contains("tpm_policy_mismatch"), "{}", d.logs());

    // The recovery keys open it on this TPM; the operator re-seals for this boot state.
    let first = d
        .bao_as(None, &["operator", "unseal", "-format=json", &recovery[0]])
        .ok();
    assert_eq!(first.json()["sealed"], true, "{first}");
    d.bao_as(None, &["operator", "unseal", "-format=json", &recovery[2]])
        .ok();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("fw/one"), "before-updates");
    assert_eq!(seal_policy(&d)["current_authorized"], false);
    let resealed = operator(&d, &["reseal"]);
    assert_eq!(resealed["current_authorized"], true, "{resealed}");

    // Restart: auto-unseal again, nothing lost.
    d.restart_after_kill9();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("fw/one"), "before-updates");
}
