//! `bao operator rotate-keys` with the Shamir seal: new unseal keys and threshold from a
//! quorum of the current ones, behind a token as OpenBao 2.4+ has it; the old keys stop
//! working and the new ones unseal after a restart; verification, cancel, wrong keys; a
//! rotation killed at any step leaves the old keys valid (or, once stored, the new); and
//! with the PKCS#11 seal (SoftHSM2), the recovery keys rotated the same way.

use softhsm_tests::crash::restart_after_abort;
use softhsm_tests::hardware::SoftHsm;
use softhsm_tests::{reference_mode, Daemon};

/// A configured daemon, initialised with 5 keys of which 3 unseal, unsealed, with kv v2
/// at `secret/` holding `rk` = "kept"; the unseal keys.
fn serving(d: &mut Daemon) -> Vec<String> {
    let init = d.init(5, 3);
    d.unseal();
    d.ensure_secret_kv2();
    d.kv_put_value("rk", "kept");
    init.keys_b64
}

/// Restarts `d` (kill -9) and checks that `old` no longer unseals it and that the first
/// `threshold` of `new` do, with the secret still there.
fn only_new_keys_unseal(d: &mut Daemon, old: &[String], new: &[String], threshold: usize) {
    d.restart_after_kill9();
    let refused = d.unseal_with(old);
    assert!(refused.is_err(), "the old keys still unseal: {refused:?}");
    assert_eq!(d.seal_status()["sealed"], true);
    // A refused quorum leaves no progress behind, here as in OpenBao.
    let status = d
        .unseal_with(&new[..threshold])
        .expect("the new keys unseal");
    assert_eq!(status["sealed"], false, "{status}");
    assert_eq!(d.kv_get_value("rk"), "kept");
}

/// Restarts `d` (kill -9) and checks that the old keys still unseal it.
fn old_keys_unseal(d: &mut Daemon, old: &[String]) {
    d.restart_after_kill9();
    let status = d.unseal_with(&old[..3]).expect("the old keys unseal");
    assert_eq!(status["sealed"], false, "{status}");
    assert_eq!(d.kv_get_value("rk"), "kept");
}

#[test]
fn rotate_keys_changes_the_threshold_and_retires_the_old_keys() {
    let mut d = Daemon::config(false);
    let old = serving(&mut d);

    let status = d.rotate_keys_init(&["-key-shares=3", "-key-threshold=2"]);
    assert_eq!(status["started"], true, "{status}");
    assert_eq!(status["required"], 3, "{status}");
    assert_eq!(status["t"], 2, "{status}");
    assert_eq!(status["n"], 3, "{status}");
    assert_eq!(status["progress"], 0, "{status}");
    let nonce = status["nonce"].as_str().unwrap().to_string();

    let out = d.rotate_keys_submit(&[], &nonce, &old[0]).ok();
    assert_eq!(out.json()["progress"], 1, "{out}");
    // The same key twice does not count twice.
    let again = d.rotate_keys_submit(&[], &nonce, &old[0]);
    assert!(!again.success(), "{again}");
    assert!(again.stderr.contains("already been provided"), "{again}");
    // Another attempt's nonce is refused, naming this one.
    let wrong = d.rotate_keys_submit(&[], "6c7e1b8e-0000-4000-8000-000000000000", &old[1]);
    assert!(!wrong.success(), "{wrong}");
    assert!(wrong.stderr.contains("incorrect nonce supplied"), "{wrong}");

    let new = d
        .rotate_keys_quorum(&[], &nonce, &old[1..3])
        .expect("the quorum completes");
    assert_eq!(new.keys_b64.len(), 3, "{}", new.json);
    assert_eq!(new.json["verification_required"], false, "{}", new.json);
    assert_eq!(d.rotate_keys_status(&[])["started"], false);
    let sealed = d.seal_status();
    assert_eq!(
        (sealed["t"].as_u64(), sealed["n"].as_u64()),
        (Some(2), Some(3))
    );

    only_new_keys_unseal(&mut d, &old[..3], &new.keys_b64, 2);
}

#[test]
fn rotate_keys_with_verification_takes_effect_only_once_verified() {
    let mut d = Daemon::config(false);
    let old = serving(&mut d);

    let new = d
        .rotate_keys(&[], &["-verify"], 3, 2, &old[2..5])
        .expect("the quorum completes");
    assert_eq!(new.json["verification_required"], true, "{}", new.json);
    assert!(!new.verification_nonce.is_empty(), "{}", new.json);
    // Not yet in effect: the seal still takes 3 of 5.
    let sealed = d.seal_status();
    assert_eq!(
        (sealed["t"].as_u64(), sealed["n"].as_u64()),
        (Some(3), Some(5))
    );
    let pending = d.rotate_keys_status(&["-verify"]);
    assert_eq!(pending["started"], true, "{pending}");
    assert_eq!(
        pending["nonce"],
        new.verification_nonce.as_str(),
        "{pending}"
    );
    // The current keys are not what verification takes: it fails and starts over with a
    // new nonce.
    d.rotate_keys_submit(&["-verify"], &new.verification_nonce, &new.keys_b64[0])
        .ok();
    let wrong = d.rotate_keys_submit(&["-verify"], &new.verification_nonce, &old[0]);
    assert!(!wrong.success(), "{wrong}");
    assert!(wrong.stderr.contains("verification failed"), "{wrong}");
    let restarted = d.rotate_keys_status(&["-verify"]);
    assert_eq!(restarted["progress"], 0, "{restarted}");
    let nonce = restarted["nonce"].as_str().unwrap().to_string();
    assert_ne!(nonce, new.verification_nonce);

    for key in &new.keys_b64[1..3] {
        d.rotate_keys_submit(&["-verify"], &nonce, key).ok();
    }
    assert_eq!(d.rotate_keys_status(&[])["started"], false);
    let sealed = d.seal_status();
    assert_eq!(
        (sealed["t"].as_u64(), sealed["n"].as_u64()),
        (Some(2), Some(3))
    );

    only_new_keys_unseal(&mut d, &old[..3], &new.keys_b64[1..], 2);
}

#[test]
fn rotate_keys_cancel_wrong_keys_and_tokens_leave_the_keys_as_they_are() {
    let mut d = Daemon::config(false);
    let old = serving(&mut d);

    // As OpenBao 2.4+: a token whose policy grants the path, no quorum alone.
    let anonymous = d.bao_as(None, &["operator", "rotate-keys", "-status"]);
    assert!(!anonymous.success(), "{anonymous}");
    assert!(
        anonymous.stderr.contains("permission denied"),
        "{anonymous}"
    );
    let (plain, _) = d.bao_token_create(None, &["-policy=default"]);
    let denied = d.bao_as(Some(&plain), &["operator", "rotate-keys", "-status"]);
    assert!(denied.stderr.contains("permission denied"), "{denied}");
    d.bao_policy_write(
        "rotator",
        "path \"sys/rotate/root/*\" { capabilities = [\"read\", \"update\", \"delete\"] }\n",
    );
    let (rotator, _) = d.bao_token_create(None, &["-policy=rotator"]);
    let status = d
        .bao_as(
            Some(&rotator),
            &["operator", "rotate-keys", "-status", "-format=json"],
        )
        .ok()
        .json();
    assert_eq!(status["started"], false, "{status}");

    // Cancel: the progress is forgotten, and so is the nonce.
    let status = d.rotate_keys_init(&["-key-shares=3", "-key-threshold=2"]);
    let nonce = status["nonce"].as_str().unwrap().to_string();
    d.rotate_keys_submit(&[], &nonce, &old[0]).ok();
    d.bao(&["operator", "rotate-keys", "-cancel"]).ok();
    assert_eq!(d.rotate_keys_status(&[])["started"], false);
    let late = d.rotate_keys_submit(&[], &nonce, &old[1]);
    assert!(!late.success(), "{late}");
    assert!(late.stderr.contains("No rotation is in progress"), "{late}");

    // Keys of another appliance: refused at the quorum, the attempt stays with no
    // progress, and the right keys then complete it.
    let mut other = Daemon::config(false);
    let stranger = other.init(5, 3);
    let status = d.rotate_keys_init(&["-key-shares=3", "-key-threshold=2"]);
    let nonce = status["nonce"].as_str().unwrap().to_string();
    let refused = d.rotate_keys_quorum(&[], &nonce, &stranger.keys_b64[..3]);
    assert!(refused.is_err(), "a stranger's keys rotated: {refused:?}");
    let status = d.rotate_keys_status(&[]);
    assert_eq!(status["started"], true, "{status}");
    assert_eq!(status["progress"], 0, "{status}");
    let new = d
        .rotate_keys_quorum(&[], &nonce, &old[..3])
        .expect("the right keys complete it");
    only_new_keys_unseal(&mut d, &old[..3], &new.keys_b64, 2);
}

#[test]
fn kill9_mid_rotation_leaves_the_old_keys_valid() {
    let mut d = Daemon::config(false);
    let old = serving(&mut d);
    let status = d.rotate_keys_init(&["-key-shares=3", "-key-threshold=2"]);
    let nonce = status["nonce"].as_str().unwrap().to_string();
    for key in &old[..2] {
        d.rotate_keys_submit(&[], &nonce, key).ok();
    }
    old_keys_unseal(&mut d, &old);
    assert_eq!(d.rotate_keys_status(&[])["started"], false);
}

/// A daemon that aborts at `step`, serving, with a rotation to 3/2 started; the old keys
/// and the attempt's nonce.
fn crashing_at(step: &str, extra: &[&str]) -> (Daemon, Vec<String>, String) {
    let mut d = Daemon::config_with_env(false, &[("IRONSEAL_TEST_CRASH_AT", step)]);
    let old = serving(&mut d);
    let args = [extra, &["-key-shares=3", "-key-threshold=2"]].concat();
    let status = d.rotate_keys_init(&args);
    let nonce = status["nonce"].as_str().unwrap().to_string();
    (d, old, nonce)
}

#[test]
fn rotation_killed_before_its_commit_leaves_the_old_keys_valid() {
    if reference_mode() {
        return; // Ironseal's crash points.
    }
    // After the quorum was checked, and with the new keys made but not stored.
    for step in ["rotate:quorum", "rotate:commit"] {
        let (mut d, old, nonce) = crashing_at(step, &[]);
        let out = d.rotate_keys_quorum(&[], &nonce, &old[..3]);
        assert!(out.is_err(), "{step}: the rotation answered: {out:?}");
        restart_after_abort(&mut d, step);
        let status = d.unseal_with(&old[..3]).expect("the old keys unseal");
        assert_eq!(status["sealed"], false, "{step}: {status}");
        assert_eq!(
            (status["t"].as_u64(), status["n"].as_u64()),
            (Some(3), Some(5))
        );
        assert_eq!(d.kv_get_value("rk"), "kept", "{step}");
    }
    // Verified, not yet stored.
    let (mut d, old, nonce) = crashing_at("rotate:verified", &["-verify"]);
    let new = d.rotate_keys_quorum(&[], &nonce, &old[..3]).unwrap();
    let out = d.rotate_keys_submit(&["-verify"], &new.verification_nonce, &new.keys_b64[0]);
    out.ok();
    let out = d.rotate_keys_submit(&["-verify"], &new.verification_nonce, &new.keys_b64[1]);
    assert!(!out.success(), "{out}");
    restart_after_abort(&mut d, "rotate:verified");
    let status = d.unseal_with(&old[2..5]).expect("the old keys unseal");
    assert_eq!(status["sealed"], false, "{status}");
}

#[test]
fn rotation_killed_after_its_commit_has_the_new_keys_in_effect() {
    if reference_mode() {
        return; // Ironseal's crash points.
    }
    let (mut d, old, nonce) = crashing_at("rotate:committed", &["-verify"]);
    let new = d.rotate_keys_quorum(&[], &nonce, &old[..3]).unwrap();
    d.rotate_keys_submit(&["-verify"], &new.verification_nonce, &new.keys_b64[2])
        .ok();
    let out = d.rotate_keys_submit(&["-verify"], &new.verification_nonce, &new.keys_b64[0]);
    assert!(!out.success(), "{out}");
    restart_after_abort(&mut d, "rotate:committed");
    let refused = d.unseal_with(&old[..3]);
    assert!(refused.is_err(), "the old keys still unseal: {refused:?}");
    let status = d
        .unseal_with(&new.keys_b64[..2])
        .expect("the new keys unseal");
    assert_eq!(status["sealed"], false, "{status}");
    assert_eq!(d.kv_get_value("rk"), "kept");
}

#[test]
fn rotate_keys_refuses_what_the_appliance_does_not_do() {
    let mut d = Daemon::config(false);
    serving(&mut d);
    // Unseal keys are not recovery keys.
    let out = d.bao(&[
        "operator",
        "rotate-keys",
        "-init",
        "-target=recovery",
        "-key-shares=3",
        "-key-threshold=2",
    ]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("recovery keys not supported"), "{out}");
    // A threshold of one with several shares.
    let out = d.bao(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=1",
    ]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("threshold must be greater than one for multiple shares"),
        "{out}"
    );
    // The unauthenticated rekey of old is not served, as OpenBao 2.4+ by default.
    let r = d.send_json(
        "PUT",
        "/v1/sys/rekey/init",
        r#"{"secret_shares": 3, "secret_threshold": 2}"#,
    );
    r.assert_error(405, "unsupported operation");
    let r = d.get("/v1/sys/rotate/root/backup");
    r.assert_error(400, "no backed-up keys found");
    if reference_mode() {
        return; // OpenBao encrypts the new keys with PGP and backs them up.
    }
    let r = d.post_json(
        "/v1/sys/rotate/root/init",
        &serde_json::json!({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["bm90IGEga2V5"]}),
    );
    r.assert_error(400, "pgp_keys is not supported");
    let r = d.post_json(
        "/v1/sys/rotate/root/init",
        &serde_json::json!({"secret_shares": 3, "secret_threshold": 2, "backup": true}),
    );
    r.assert_error(400, "backup is not supported");
    let r = d.post_json("/v1/sys/rotate/root", &serde_json::json!({}));
    r.assert_error(400, "without key shares is not supported");
    assert_eq!(d.rotate_keys_status(&[])["started"], false);
}

#[test]
fn pkcs11_recovery_keys_rotate_and_the_root_key_stays_in_the_device() {
    if reference_mode() {
        return; // Ironseal's seals: OpenBao has no SoftHSM2 set up here.
    }
    let hsm = SoftHsm::new("ironseal-rotate");
    let (mut d, old) = hsm.unsealed_daemon(5, 3);
    d.ensure_secret_kv2();
    d.kv_put_value("rk", "kept");

    // The root key is the token's: it is neither split into shares nor replaced.
    let out = d.bao(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
    ]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("held inside the device"), "{out}");

    let status = d.rotate_keys_status(&["-target=recovery"]);
    assert_eq!(status["required"], 3, "{status}");
    let new = d
        .rotate_keys(&["-target=recovery"], &[], 3, 2, &old[1..4])
        .expect("the recovery quorum completes");
    assert_eq!(new.keys_b64.len(), 3, "{}", new.json);
    let sealed = d.seal_status();
    assert_eq!(sealed["recovery_seal"], true, "{sealed}");
    assert_eq!(
        (sealed["t"].as_u64(), sealed["n"].as_u64()),
        (Some(2), Some(3))
    );

    // The old recovery keys no longer make a root token; the new ones do.
    let (refused, _) = d.generate_root(&old[..3]);
    assert!(
        refused.as_str().is_some_and(|e| e.contains("do not match")),
        "{refused}"
    );
    let (done, _) = d.generate_root(&new.keys_b64[1..]);
    assert_eq!(done["complete"], true, "{done}");

    // The token still unseals it after a restart; sealed by hand, only the new recovery
    // keys open it.
    d.restart_after_kill9();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("rk"), "kept");
    d.bao(&["operator", "seal"]).ok();
    let refused = d.unseal_with(&old[..3]);
    assert!(
        refused.is_err(),
        "the old recovery keys unseal: {refused:?}"
    );
    let status = d
        .unseal_with(&new.keys_b64[..2])
        .expect("the new recovery keys unseal");
    assert_eq!(status["sealed"], false, "{status}");
    assert_eq!(d.kv_get_value("rk"), "kept");
}
