//! The PKCS#11 seal against a real SoftHSM2 token per test: init returns recovery keys,
//! the daemon unseals itself at start, the root key stays inside the token, another
//! token cannot open the data dir, a broken PIN or module keeps it sealed with a clear
//! error until fixed (no restart), recovery keys regenerate a root token, seal migration
//! shamir -> pkcs11 -> shamir keeps every secret, and kill -9 during keyring rotation
//! leaves a keyring that opens.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use softhsm_tests::hardware::{SoftHsm, ROOT_KEY_LABEL, SOFTHSM_MODULE, USER_PIN};
use softhsm_tests::{poll_until, reference_mode, Daemon};

const DEADLINE: Duration = Duration::from_secs(60);

/// `bao operator init` against a hardware seal, with every recovery field checked;
/// returns the recovery keys (base64).
fn init_with_recovery(d: &mut Daemon, shares: usize, threshold: usize) -> Vec<String> {
    let init = d.init_recovery(shares, threshold);
    let (v, out) = (&init.json, &init.out);
    assert_eq!(
        v["recovery_keys_hex"].as_array().map(Vec::len),
        Some(shares),
        "{out}"
    );
    assert_eq!(v["recovery_keys_shares"], shares, "{out}");
    assert_eq!(v["recovery_keys_threshold"], threshold, "{out}");
    assert_eq!(
        v["unseal_keys_b64"].as_array().map(Vec::len),
        Some(0),
        "a hardware seal hands out no unseal keys: {out}"
    );
    init.keys_b64
}

/// A daemon on a fresh token `label`, initialised as [`init_with_recovery`] checks and
/// unsealed, with kv v2 at `secret/` holding `secret` (path, value); the token, the
/// daemon and the recovery keys, in the order they are to be dropped last to first.
fn serving(
    label: &str,
    shares: usize,
    threshold: usize,
    secret: (&str, &str),
) -> (SoftHsm, Daemon, Vec<String>) {
    let hsm = SoftHsm::new(label);
    let mut d = hsm.daemon();
    let keys = init_with_recovery(&mut d, shares, threshold);
    d.wait_unsealed();
    d.ensure_secret_kv2();
    d.kv_put_value(secret.0, secret.1);
    (hsm, d, keys)
}

/// Waits until seal-status reports the seal error `category`; returns the whole answer,
/// after checking it holds nothing but the category (seal-status is unauthenticated).
fn wait_seal_error(d: &Daemon, hsm: &SoftHsm, category: &str) -> Value {
    let status = d.wait_seal_error(&format!("the seal error {category:?}"), |e| e == category);
    let text = status.to_string();
    for secret in [
        ROOT_KEY_LABEL,
        &hsm.label,
        "softhsm",
        "CKR_",
        "seal_error_detail",
    ] {
        assert!(
            !text.contains(secret),
            "seal-status shows {secret:?}: {text}"
        );
    }
    status
}

#[test]
fn pkcs11_init_auto_unseals_after_restart_and_the_root_key_stays_in_the_token() {
    if reference_mode() {
        return; // Ironseal's seals: OpenBao has no SoftHSM2 set up here.
    }
    let hsm = SoftHsm::new("ironseal-a");
    let mut d = hsm.daemon();
    let status = d.seal_status();
    assert_eq!(status["type"], "pkcs11", "{status}");
    assert_eq!(status["recovery_seal"], true, "{status}");
    assert_eq!(status["initialized"], false, "{status}");

    init_with_recovery(&mut d, 3, 2);
    let status = d.wait_unsealed();
    assert_eq!(status["type"], "pkcs11", "{status}");
    assert_eq!(status["recovery_seal"], true, "{status}");
    assert_eq!(status["t"], 2, "{status}");
    assert_eq!(status["n"], 3, "{status}");
    d.ensure_secret_kv2();
    d.kv_put_value("app/db", "hunter2-before-restart");

    d.restart_after_kill9();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("app/db"), "hunter2-before-restart");
    assert!(d.logs().contains("auto-unseal"), "{}", d.logs());
    let st = d.bao(&["status", "-format=json"]).ok().json();
    assert_eq!(st["type"], "pkcs11", "{st}");
    assert_eq!(st["recovery_seal"], true, "{st}");
    assert_eq!(st["sealed"], false, "{st}");

    // The root key: an AES-256 token object, sensitive and never extractable.
    let list = hsm.pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success(), "{text}");
    assert!(text.contains(ROOT_KEY_LABEL), "{text}");
    assert!(text.contains("AES length 32"), "{text}");
    assert!(text.contains("sensitive"), "{text}");
    assert!(text.contains("never extractable"), "{text}");
    assert!(!text.contains("Value:"), "{text}");
    // Reading its value fails.
    let read = hsm.pkcs11_tool(&[
        "--read-object",
        "--type",
        "secrkey",
        "--label",
        ROOT_KEY_LABEL,
    ]);
    assert!(
        !read.status.success() || read.stdout.is_empty(),
        "the root key's value was readable: {}",
        String::from_utf8_lossy(&read.stdout)
    );
    // The PIN never reached the logs.
    assert!(!d.logs().contains(USER_PIN), "the PIN is in the logs");
}

#[test]
fn pkcs11_data_dir_next_to_another_token_cannot_unseal() {
    if reference_mode() {
        return;
    }
    // Not labelled "ironseal": seal-status carries `ironseal_version`, and the label must
    // not show there.
    let (_a, mut d, _) = serving("vault-hsm", 1, 1, ("x", "only-on-token-a"));
    d.kill9();

    // Token B (same label) that never held this appliance's root key.
    let b = SoftHsm::new("vault-hsm");
    let mut other = b.daemon();
    other.kill9();
    std::fs::copy(d.storage_path(), other.storage_path()).unwrap();
    other.start();
    wait_seal_error(&other, &b, "device_mismatch");
    let logs = other.logs();
    assert!(logs.contains("another HSM token"), "{logs}");
    assert!(logs.contains(ROOT_KEY_LABEL), "{logs}");

    // Token B with its own root key under the same label: the key does not open it.
    let mut own = b.daemon();
    init_with_recovery(&mut own, 1, 1);
    own.wait_unsealed();
    own.kill9();
    std::fs::copy(d.storage_path(), own.storage_path()).unwrap();
    own.start();
    wait_seal_error(&own, &b, "device_mismatch");
    let logs = own.logs();
    assert!(logs.contains("could not open the stored keyring"), "{logs}");
    assert!(logs.contains("sealed by another HSM token"), "{logs}");
}

#[test]
fn pkcs11_wrong_pin_and_missing_module_recover_without_a_restart() {
    if reference_mode() {
        return;
    }
    let (hsm, mut d, recovery) = serving("ironseal-pin", 1, 1, ("k", "survives-a-bad-pin"));
    d.kill9();

    // Wrong PIN: sealed, the error names the PKCS#11 return code, the PIN is nowhere.
    let wrong = "99887766";
    softhsm_tests::hardware::write_private(&hsm.pin_file(), &format!("{wrong}\n"));
    d.start();
    let status = wait_seal_error(&d, &hsm, "hsm_pin_incorrect");
    assert!(!status.to_string().contains(wrong), "{status}");
    // A token cannot be checked while sealed: sending one changes nothing.
    let with_token = d.seal_status_as(d.token.as_deref().unwrap());
    assert!(
        with_token.get("seal_error_detail").is_none(),
        "{with_token}"
    );
    assert!(d.logs().contains("CKR_PIN_INCORRECT"), "{}", d.logs());
    assert!(!d.logs().contains(wrong), "the wrong PIN is in the logs");
    let r = d.get("/v1/secret/data/k");
    assert_eq!(r.status, 503, "{r}");
    // sys/unseal answers without a token: the category, never the device's words.
    let body = format!("{{\"key\": \"{}\"}}", recovery[0]);
    let r = d.http(
        "PUT",
        "/v1/sys/unseal",
        None,
        softhsm_tests::Body::Json(&body),
    );
    assert_eq!(r.status, 503, "{r}");
    let text = r.to_string();
    assert!(text.contains("hsm_pin_incorrect"), "{text}");
    for secret in [ROOT_KEY_LABEL, hsm.label.as_str(), "softhsm", "CKR_"] {
        assert!(
            !text.contains(secret),
            "sys/unseal shows {secret:?}: {text}"
        );
    }
    // Fixed: unsealed by the retry loop, same process.
    let pid = d.pid();
    softhsm_tests::hardware::write_private(&hsm.pin_file(), &format!("{USER_PIN}\n"));
    d.wait_unsealed();
    assert_eq!(d.pid(), pid);
    assert_eq!(d.kv_get_value("k"), "survives-a-bad-pin");
    // Unsealed, an operator with sudo on sys/seal-status reads what kept it sealed.
    let root = d.seal_status_as(d.token.as_deref().unwrap());
    assert!(root.get("seal_error").is_none(), "{root}");
    let detail = &root["seal_error_detail"];
    assert_eq!(detail["category"], "hsm_pin_incorrect", "{root}");
    let message = detail["message"].as_str().unwrap_or_default();
    assert!(message.contains("CKR_PIN_INCORRECT"), "{root}");
    assert!(message.contains(&hsm.label), "{root}");
    assert!(!message.contains(wrong), "{root}");
    assert!(
        detail["device"]
            .as_str()
            .is_some_and(|dev| dev.contains(SOFTHSM_MODULE)),
        "{root}"
    );
    // Without sudo on sys/seal-status (or without a token): the public answer.
    d.bao_stdin(
        &["policy", "write", "seal-reader", "-"],
        "path \"sys/seal-status\" { capabilities = [\"read\"] }\n",
    )
    .ok();
    let reader = d
        .bao(&["token", "create", "-policy=seal-reader", "-field=token"])
        .ok()
        .stdout
        .trim()
        .to_string();
    for view in [d.seal_status_as(&reader), d.seal_status()] {
        assert!(view.get("seal_error_detail").is_none(), "{view}");
        assert!(!view.to_string().contains("CKR_"), "{view}");
    }
    d.kill9();

    // Missing module: the same, then the module appears.
    let module_dir = hsm.dir().join("modules");
    std::fs::create_dir_all(&module_dir).unwrap();
    let lib = module_dir.join("libsofthsm2.so");
    d.set_seal(Some(&hsm.seal_hcl(&lib, ROOT_KEY_LABEL, false)));
    d.start();
    wait_seal_error(&d, &hsm, "hsm_unreachable");
    let logs = d.logs();
    assert!(logs.contains("does not exist"), "{logs}");
    assert!(logs.contains(&lib.display().to_string()), "{logs}");
    std::os::unix::fs::symlink(SOFTHSM_MODULE, &lib).unwrap();
    d.wait_unsealed();
    assert_eq!(d.kv_get_value("k"), "survives-a-bad-pin");
    let root = d.seal_status_as(d.token.as_deref().unwrap());
    let detail = &root["seal_error_detail"];
    assert_eq!(detail["category"], "hsm_unreachable", "{root}");
    assert!(
        detail["message"]
            .as_str()
            .is_some_and(|m| m.contains(&lib.display().to_string())),
        "{root}"
    );
}

#[test]
fn recovery_keys_regenerate_a_root_token() {
    if reference_mode() {
        return;
    }
    let (_hsm, d, keys) = serving("ironseal-gr", 3, 2, ("gr", "read-with-the-new-root"));

    let started = d.generate_root_init();
    let otp = started.otp;
    assert_eq!(started.json["required"], 2, "{}", started.json);
    assert_eq!(
        otp.len(),
        started.json["otp_length"].as_u64().unwrap() as usize
    );
    let mut last = Value::Null;
    for key in &keys[..2] {
        last = d.generate_root_submit(&started.nonce, key).ok().json();
    }
    assert_eq!(last["complete"], true, "{last}");
    let encoded = last["encoded_token"].as_str().expect("encoded_token");
    let token = d.generate_root_decode(encoded, &otp);
    let lookup = d
        .bao_as(Some(&token), &["token", "lookup", "-format=json"])
        .ok()
        .json();
    assert_eq!(lookup["data"]["policies"][0], "root", "{lookup}");
    let read = d
        .bao_as(
            Some(&token),
            &["kv", "get", "-mount=secret", "-field=value", "gr"],
        )
        .ok();
    assert_eq!(read.stdout.trim(), "read-with-the-new-root");

    // Keys that are not this appliance's recovery keys are refused.
    let other = SoftHsm::new("ironseal-gr2");
    let mut stranger = other.daemon();
    let wrong = init_with_recovery(&mut stranger, 3, 2);
    let nonce = d.generate_root_init().nonce;
    d.generate_root_submit(&nonce, &wrong[0]).ok();
    let out = d.generate_root_submit(&nonce, &wrong[1]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("recovery keys do not match"), "{out}");
}

#[test]
fn seal_migration_shamir_to_pkcs11_and_back_keeps_every_secret() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("ironseal-mig");
    let conf = hsm.conf();
    let mut d = Daemon::config_with_seal(
        "seal \"shamir\" {}",
        &[("SOFTHSM2_CONF", conf.to_str().unwrap())],
    );
    let init = d.init(3, 2);
    d.unseal();
    d.ensure_secret_kv2();
    let secrets: Vec<(String, String)> = (0..8)
        .map(|i| {
            (
                format!("mig/s{i}"),
                format!("value-{i}-{}", std::process::id()),
            )
        })
        .collect();
    for (p, v) in &secrets {
        d.kv_put_value(p, v);
    }
    let term_before = d.get("/v1/sys/key-status").json()["term"].clone();

    // shamir -> pkcs11: the unseal keys with -migrate; they become the recovery keys.
    d.restart_with_seal(&hsm.root_seal_hcl(false));
    let s = d.seal_status();
    assert_eq!(s["sealed"], true, "{s}");
    assert_eq!(s["migration"], true, "{s}");
    let plain = d.bao_as(None, &["operator", "unseal", &init.keys_b64[0]]);
    assert!(!plain.success(), "{plain}");
    assert!(plain.stderr.contains("-migrate"), "{plain}");
    for key in &init.keys_b64[..2] {
        d.bao_as(None, &["operator", "unseal", "-migrate", key])
            .ok();
    }
    let s = d.seal_status();
    assert_eq!(s["sealed"], false, "{s}");
    assert_eq!(s["type"], "pkcs11", "{s}");
    for (p, v) in &secrets {
        assert_eq!(&d.kv_get_value(p), v);
    }
    assert_eq!(d.get("/v1/sys/key-status").json()["term"], term_before);
    // It now unseals itself.
    d.restart_after_kill9();
    let s = d.wait_unsealed();
    assert_eq!(s["recovery_seal"], true, "{s}");
    assert_eq!(
        (s["t"].clone(), s["n"].clone()),
        (2.into(), 3.into()),
        "{s}"
    );
    d.kv_put_value("mig/while-pkcs11", "written-under-the-hsm");
    // A managed key generated in the HSM exists only wrapped by its root key.
    let created = d.send_json(
        "POST",
        "/api/v1/keys",
        r#"{"name":"hsm-bound","algorithm":"EC_P256"}"#,
    );
    assert!(created.status < 300, "{}", created.body);
    let key_id = created.json()["id"].as_str().expect("a key id").to_string();

    // pkcs11 -> shamir: the pkcs11 block marked disabled, the recovery keys with -migrate.
    let to_shamir = |d: &mut Daemon| {
        d.restart_with_seal(&hsm.root_seal_hcl(true));
        let s = d.seal_status();
        assert_eq!(
            (s["sealed"].clone(), s["migration"].clone()),
            (true.into(), true.into()),
            "{s}"
        );
    };
    to_shamir(&mut d);
    // Refused while the HSM holds a managed key: leaving it would strand the key.
    d.bao_as(None, &["operator", "unseal", "-migrate", &init.keys_b64[1]])
        .ok();
    let refused = d.bao_as(None, &["operator", "unseal", "-migrate", &init.keys_b64[2]]);
    assert!(!refused.success(), "{refused}");
    assert!(refused.stderr.contains("held by the HSM"), "{refused}");
    assert_eq!(d.seal_status()["sealed"], true);

    // Destroy it under the HSM seal, then the migration goes through.
    d.restart_with_seal(&hsm.root_seal_hcl(false));
    d.wait_unsealed();
    let scheduled = d.send_json(
        "POST",
        &format!("/api/v1/keys/{key_id}/schedule-destruction"),
        r#"{"pendingWindowSeconds":1}"#,
    );
    assert!(scheduled.status < 300, "{}", scheduled.body);
    poll_until(Duration::from_secs(20), "the HSM key destroyed", || {
        (d.get(&format!("/api/v1/keys/{key_id}")).status == 404).then_some(())
    });
    to_shamir(&mut d);
    for key in &init.keys_b64[1..3] {
        d.bao_as(None, &["operator", "unseal", "-migrate", key])
            .ok();
    }
    let s = d.seal_status();
    assert_eq!(s["sealed"], false, "{s}");
    assert_eq!(s["type"], "shamir", "{s}");

    // Plain Shamir again: the same keys unseal it after a restart.
    d.kill9();
    d.set_seal(None);
    d.start();
    assert_eq!(d.seal_status()["sealed"], true);
    d.unseal();
    for (p, v) in &secrets {
        assert_eq!(&d.kv_get_value(p), v);
    }
    assert_eq!(d.kv_get_value("mig/while-pkcs11"), "written-under-the-hsm");
}

#[test]
fn kill9_during_keyring_rotation_leaves_the_old_or_the_new_keyring() {
    if reference_mode() {
        return;
    }
    let (_hsm, mut d, _) = serving(
        "ironseal-rot",
        1,
        1,
        ("rot/before", "written-before-rotations"),
    );
    let token = d.token.clone().unwrap();

    for round in 0..3 {
        // A client rotating as fast as it can, with writes in between.
        let script = format!(
            "while :; do curl -s -o /dev/null -X POST -H 'X-Vault-Token: {token}' {addr}/v1/sys/rotate; \
             curl -s -o /dev/null -X POST -H 'X-Vault-Token: {token}' -d '{{\"data\":{{\"value\":\"r{round}\"}}}}' {addr}/v1/secret/data/rot/during; done",
            addr = d.addr
        );
        let mut hammer = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start_term = d.get("/v1/sys/key-status").json()["term"].as_u64().unwrap();
        poll_until(DEADLINE, "a few rotations", || {
            let t = d.get("/v1/sys/key-status").json()["term"].as_u64()?;
            (t >= start_term + 3).then_some(())
        });
        let acknowledged = d.get("/v1/sys/key-status").json()["term"].as_u64().unwrap();
        d.kill9();
        let _ = hammer.kill();
        let _ = hammer.wait();
        d.start();
        d.wait_unsealed();
        let term = d.get("/v1/sys/key-status").json()["term"].as_u64().unwrap();
        assert!(
            term >= acknowledged,
            "round {round}: term {term} < {acknowledged}"
        );
        assert_eq!(d.kv_get_value("rot/before"), "written-before-rotations");
        let during = d.kv_get_value("rot/during");
        assert!(during.starts_with('r'), "{during}");
    }
}

/// The init steps a crash point follows, in order (engine/src/seal/init.rs `init_with`).
const INIT_STEPS_PKCS11: &[&str] = &[
    "init:root-key",
    "init:keyring",
    "init:token-store",
    "init:default-policy",
    "init:root-token",
    "init:recovery-key",
];

/// Kills the daemon (abort, as a power cut) right after each step of `operator init`,
/// then starts it without the crash point: init runs again, reuses the root key the
/// killed init made in the HSM (one key under the label, never two), and the appliance
/// unseals itself and serves secrets.
#[test]
fn pkcs11_init_killed_at_each_step_can_be_run_again() {
    if reference_mode() {
        return; // Ironseal's crash points (debug builds only).
    }
    for step in INIT_STEPS_PKCS11 {
        let hsm = SoftHsm::new("ironseal-crash");
        let mut d = hsm.daemon();
        d.kill9();
        d.set_env("IRONSEAL_TEST_CRASH_AT", step);
        d.start();
        softhsm_tests::crash::init_aborted_at(
            &mut d,
            step,
            &[
                "-format=json",
                "-recovery-shares=1",
                "-recovery-threshold=1",
            ],
        );
        let status = d.seal_status();
        assert_eq!(status["initialized"], false, "{step}: {status}");

        init_with_recovery(&mut d, 3, 2);
        d.wait_unsealed();
        d.ensure_secret_kv2();
        // Not the point's name alone: the daemon names the point in its log as it dies,
        // and every value written is checked not to reach a log.
        let value = format!("written after {step}");
        d.kv_put_value("after-crash", &value);
        assert_eq!(d.kv_get_value("after-crash"), value);
        if *step != "init:root-key" {
            assert!(
                d.logs().contains("an earlier init was interrupted"),
                "{step}: {}",
                d.logs()
            );
        }
        let list = hsm.pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
        let listing = String::from_utf8_lossy(&list.stdout).to_string();
        let labelled = listing
            .lines()
            .filter(|l| {
                let l = l.trim();
                l.starts_with("label:") && l.ends_with(ROOT_KEY_LABEL)
            })
            .count();
        assert_eq!(
            labelled, 1,
            "{step}: one root key under the label: {listing}"
        );
        // And it stays usable across a restart (auto-unseal with the reused key).
        d.restart_after_kill9();
        d.wait_unsealed();
        assert_eq!(d.kv_get_value("after-crash"), value);
    }
}

/// With a hardware seal, `sys/init` refuses the Shamir parameters rather than ignoring
/// them (as OpenBao does), and leaves the appliance uninitialised.
#[test]
fn pkcs11_init_refuses_unseal_key_parameters() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("ironseal-params");
    let d = hsm.daemon();
    for (body, needle) in [
        (
            r#"{"secret_shares":3,"secret_threshold":2}"#,
            "secret_shares,secret_threshold not applicable to seal type pkcs11",
        ),
        (
            r#"{"recovery_shares":1,"recovery_threshold":1,"stored_shares":2}"#,
            "stored_shares",
        ),
        (
            r#"{"recovery_shares":1,"recovery_threshold":1,"root_token_pgp_key":"mQENBF"}"#,
            "root_token_pgp_key",
        ),
    ] {
        let r = d.http("PUT", "/v1/sys/init", None, softhsm_tests::Body::Json(body));
        r.assert_error(400, needle);
    }
    assert_eq!(d.seal_status()["initialized"], false);
}
