//! The PKCS#11 seal against a real SoftHSM2 token per test: init returns recovery keys,
//! the daemon unseals itself at start, the root key stays inside the token, another
//! token cannot open the data dir, a broken PIN or module keeps it sealed with a clear
//! error until fixed (no restart), recovery keys regenerate a root token, seal migration
//! shamir -> pkcs11 -> shamir keeps every secret, and kill -9 during keyring rotation
//! leaves a keyring that opens.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use softhsm_tests::hardware::{SoftHsm, SOFTHSM_MODULE, USER_PIN};
use softhsm_tests::{poll_until, reference_mode, Daemon};

const KEY_LABEL: &str = "ironseal-root";
const DEADLINE: Duration = Duration::from_secs(60);

fn hsm_daemon(hsm: &SoftHsm) -> Daemon {
    let seal = hsm.seal_hcl(Path::new(SOFTHSM_MODULE), KEY_LABEL, false);
    let conf = hsm.conf();
    Daemon::config_with_seal(&seal, &[("SOFTHSM2_CONF", conf.to_str().unwrap())])
}

/// `bao operator init` against a hardware seal; returns the recovery keys (base64).
fn init_with_recovery(d: &mut Daemon, shares: usize, threshold: usize) -> Vec<String> {
    let out = d
        .bao_as(
            None,
            &[
                "operator",
                "init",
                "-format=json",
                &format!("-recovery-shares={shares}"),
                &format!("-recovery-threshold={threshold}"),
            ],
        )
        .ok();
    let v = out.json();
    let keys: Vec<String> = v["recovery_keys_b64"]
        .as_array()
        .unwrap_or_else(|| panic!("no recovery_keys_b64: {out}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), shares, "{out}");
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
    d.token = Some(v["root_token"].as_str().expect("root_token").to_string());
    keys
}

fn wait_unsealed(d: &Daemon) -> Value {
    poll_until(DEADLINE, "the daemon to unseal itself", || {
        let s = d.seal_status();
        (s["sealed"] == false).then_some(s)
    })
}

/// Waits until seal-status reports the seal error `category`; returns the whole answer,
/// after checking it holds nothing but the category (seal-status is unauthenticated).
fn wait_seal_error(d: &Daemon, hsm: &SoftHsm, category: &str) -> Value {
    let status = poll_until(DEADLINE, &format!("the seal error {category:?}"), || {
        let s = d.seal_status();
        assert_eq!(s["sealed"], true, "unexpectedly unsealed: {s}");
        (s["seal_error"] == category).then_some(s)
    });
    let text = status.to_string();
    for secret in [
        KEY_LABEL,
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

/// seal-status as `token` sees it.
fn seal_status_as(d: &Daemon, token: &str) -> Value {
    let r = d.http(
        "GET",
        "/v1/sys/seal-status",
        Some(token),
        softhsm_tests::Body::None,
    );
    assert_eq!(r.status, 200, "{r}");
    r.json()
}

fn put_secret(d: &Daemon, path: &str, value: &str) {
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        path,
        &format!("value={value}"),
    ])
    .ok();
}

fn get_secret(d: &Daemon, path: &str) -> String {
    let out = d
        .bao(&["kv", "get", "-mount=secret", "-field=value", path])
        .ok();
    out.stdout.trim().to_string()
}

#[test]
fn pkcs11_init_auto_unseals_after_restart_and_the_root_key_stays_in_the_token() {
    if reference_mode() {
        return; // Ironseal's seals: OpenBao has no SoftHSM2 set up here.
    }
    let hsm = SoftHsm::new("ironseal-a");
    let mut d = hsm_daemon(&hsm);
    let status = d.seal_status();
    assert_eq!(status["type"], "pkcs11", "{status}");
    assert_eq!(status["recovery_seal"], true, "{status}");
    assert_eq!(status["initialized"], false, "{status}");

    init_with_recovery(&mut d, 3, 2);
    let status = wait_unsealed(&d);
    assert_eq!(status["type"], "pkcs11", "{status}");
    assert_eq!(status["recovery_seal"], true, "{status}");
    assert_eq!(status["t"], 2, "{status}");
    assert_eq!(status["n"], 3, "{status}");
    d.ensure_secret_kv2();
    put_secret(&d, "app/db", "hunter2-before-restart");

    d.restart_after_kill9();
    wait_unsealed(&d);
    assert_eq!(get_secret(&d, "app/db"), "hunter2-before-restart");
    assert!(d.logs().contains("auto-unseal"), "{}", d.logs());
    let st = d.bao(&["status", "-format=json"]).ok().json();
    assert_eq!(st["type"], "pkcs11", "{st}");
    assert_eq!(st["recovery_seal"], true, "{st}");
    assert_eq!(st["sealed"], false, "{st}");

    // The root key: an AES-256 token object, sensitive and never extractable.
    let list = hsm.pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success(), "{text}");
    assert!(text.contains(KEY_LABEL), "{text}");
    assert!(text.contains("AES length 32"), "{text}");
    assert!(text.contains("sensitive"), "{text}");
    assert!(text.contains("never extractable"), "{text}");
    assert!(!text.contains("Value:"), "{text}");
    // Reading its value fails.
    let read = hsm.pkcs11_tool(&["--read-object", "--type", "secrkey", "--label", KEY_LABEL]);
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
    let a = SoftHsm::new("ironseal");
    let mut d = hsm_daemon(&a);
    init_with_recovery(&mut d, 1, 1);
    wait_unsealed(&d);
    d.ensure_secret_kv2();
    put_secret(&d, "x", "only-on-token-a");
    d.kill9();

    // Token B (same label) that never held this appliance's root key.
    let b = SoftHsm::new("ironseal");
    let mut other = hsm_daemon(&b);
    other.kill9();
    std::fs::copy(d.storage_path(), other.storage_path()).unwrap();
    other.start();
    wait_seal_error(&other, &b, "device_mismatch");
    let logs = other.logs();
    assert!(logs.contains("another HSM token"), "{logs}");
    assert!(logs.contains(KEY_LABEL), "{logs}");

    // Token B with its own root key under the same label: the key does not open it.
    let mut own = hsm_daemon(&b);
    init_with_recovery(&mut own, 1, 1);
    wait_unsealed(&own);
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
    let hsm = SoftHsm::new("ironseal-pin");
    let mut d = hsm_daemon(&hsm);
    let recovery = init_with_recovery(&mut d, 1, 1);
    wait_unsealed(&d);
    d.ensure_secret_kv2();
    put_secret(&d, "k", "survives-a-bad-pin");
    d.kill9();

    // Wrong PIN: sealed, the error names the PKCS#11 return code, the PIN is nowhere.
    let wrong = "99887766";
    softhsm_tests::hardware::write_private(&hsm.pin_file(), &format!("{wrong}\n"));
    d.start();
    let status = wait_seal_error(&d, &hsm, "hsm_pin_incorrect");
    assert!(!status.to_string().contains(wrong), "{status}");
    // A token cannot be checked while sealed: sending one changes nothing.
    let with_token = seal_status_as(&d, d.token.as_deref().unwrap());
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
    for secret in [KEY_LABEL, hsm.label.as_str(), "softhsm", "CKR_"] {
        assert!(
            !text.contains(secret),
            "sys/unseal shows {secret:?}: {text}"
        );
    }
    // Fixed: unsealed by the retry loop, same process.
    let pid = d.pid();
    softhsm_tests::hardware::write_private(&hsm.pin_file(), &format!("{USER_PIN}\n"));
    wait_unsealed(&d);
    assert_eq!(d.pid(), pid);
    assert_eq!(get_secret(&d, "k"), "survives-a-bad-pin");
    // Unsealed, an operator with sudo on sys/seal-status reads what kept it sealed.
    let root = seal_status_as(&d, d.token.as_deref().unwrap());
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
    for view in [seal_status_as(&d, &reader), d.seal_status()] {
        assert!(view.get("seal_error_detail").is_none(), "{view}");
        assert!(!view.to_string().contains("CKR_"), "{view}");
    }
    d.kill9();

    // Missing module: the same, then the module appears.
    let module_dir = hsm.dir().join("modules");
    std::fs::create_dir_all(&module_dir).unwrap();
    let lib = module_dir.join("libsofthsm2.so");
    d.set_seal(Some(&hsm.seal_hcl(&lib, KEY_LABEL, false)));
    d.start();
    wait_seal_error(&d, &hsm, "hsm_unreachable");
    let logs = d.logs();
    assert!(logs.contains("does not exist"), "{logs}");
    assert!(logs.contains(&lib.display().to_string()), "{logs}");
    std::os::unix::fs::symlink(SOFTHSM_MODULE, &lib).unwrap();
    wait_unsealed(&d);
    assert_eq!(get_secret(&d, "k"), "survives-a-bad-pin");
    let root = seal_status_as(&d, d.token.as_deref().unwrap());
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
    let hsm = SoftHsm::new("ironseal-gr");
    let mut d = hsm_daemon(&hsm);
    let keys = init_with_recovery(&mut d, 3, 2);
    wait_unsealed(&d);
    d.ensure_secret_kv2();
    put_secret(&d, "gr", "read-with-the-new-root");

    let init = d
        .bao_as(
            None,
            &["operator", "generate-root", "-init", "-format=json"],
        )
        .ok()
        .json();
    let otp = init["otp"].as_str().expect("otp").to_string();
    let nonce = init["nonce"].as_str().expect("nonce").to_string();
    assert_eq!(init["required"], 2, "{init}");
    assert_eq!(otp.len(), init["otp_length"].as_u64().unwrap() as usize);
    let mut last = Value::Null;
    for key in &keys[..2] {
        last = d
            .bao_as(
                None,
                &[
                    "operator",
                    "generate-root",
                    "-format=json",
                    &format!("-nonce={nonce}"),
                    key,
                ],
            )
            .ok()
            .json();
    }
    assert_eq!(last["complete"], true, "{last}");
    let encoded = last["encoded_token"].as_str().expect("encoded_token");
    let decoded = d
        .bao_as(
            None,
            &[
                "operator",
                "generate-root",
                "-format=json",
                &format!("-decode={encoded}"),
                &format!("-otp={otp}"),
            ],
        )
        .ok()
        .json();
    let token = decoded["token"].as_str().expect("token").to_string();
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
    let mut stranger = hsm_daemon(&other);
    let wrong = init_with_recovery(&mut stranger, 3, 2);
    let init = d
        .bao_as(
            None,
            &["operator", "generate-root", "-init", "-format=json"],
        )
        .ok()
        .json();
    let nonce = init["nonce"].as_str().unwrap().to_string();
    d.bao_as(
        None,
        &[
            "operator",
            "generate-root",
            &format!("-nonce={nonce}"),
            &wrong[0],
        ],
    )
    .ok();
    let out = d.bao_as(
        None,
        &[
            "operator",
            "generate-root",
            &format!("-nonce={nonce}"),
            &wrong[1],
        ],
    );
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
        put_secret(&d, p, v);
    }
    let term_before = d.get("/v1/sys/key-status").json()["term"].clone();

    // shamir -> pkcs11: the unseal keys with -migrate; they become the recovery keys.
    d.kill9();
    d.set_seal(Some(&hsm.seal_hcl(
        Path::new(SOFTHSM_MODULE),
        KEY_LABEL,
        false,
    )));
    d.start();
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
        assert_eq!(&get_secret(&d, p), v);
    }
    assert_eq!(d.get("/v1/sys/key-status").json()["term"], term_before);
    // It now unseals itself.
    d.restart_after_kill9();
    let s = wait_unsealed(&d);
    assert_eq!(s["recovery_seal"], true, "{s}");
    assert_eq!(
        (s["t"].clone(), s["n"].clone()),
        (2.into(), 3.into()),
        "{s}"
    );
    put_secret(&d, "mig/while-pkcs11", "written-under-the-hsm");
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
        d.kill9();
        d.set_seal(Some(&hsm.seal_hcl(
            Path::new(SOFTHSM_MODULE),
            KEY_LABEL,
            true,
        )));
        d.start();
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
    d.kill9();
    d.set_seal(Some(&hsm.seal_hcl(
        Path::new(SOFTHSM_MODULE),
        KEY_LABEL,
        false,
    )));
    d.start();
    wait_unsealed(&d);
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
        assert_eq!(&get_secret(&d, p), v);
    }
    assert_eq!(get_secret(&d, "mig/while-pkcs11"), "written-under-the-hsm");
}

#[test]
fn kill9_during_keyring_rotation_leaves_the_old_or_the_new_keyring() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("ironseal-rot");
    let mut d = hsm_daemon(&hsm);
    init_with_recovery(&mut d, 1, 1);
    wait_unsealed(&d);
    d.ensure_secret_kv2();
    put_secret(&d, "rot/before", "written-before-rotations");
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
        wait_unsealed(&d);
        let term = d.get("/v1/sys/key-status").json()["term"].as_u64().unwrap();
        assert!(
            term >= acknowledged,
            "round {round}: term {term} < {acknowledged}"
        );
        assert_eq!(get_secret(&d, "rot/before"), "written-before-rotations");
        let during = get_secret(&d, "rot/during");
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
        let mut d = hsm_daemon(&hsm);
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
        wait_unsealed(&d);
        d.ensure_secret_kv2();
        put_secret(&d, "after-crash", step);
        assert_eq!(get_secret(&d, "after-crash"), *step);
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
                l.starts_with("label:") && l.ends_with(KEY_LABEL)
            })
            .count();
        assert_eq!(
            labelled, 1,
            "{step}: one root key under the label: {listing}"
        );
        // And it stays usable across a restart (auto-unseal with the reused key).
        d.restart_after_kill9();
        wait_unsealed(&d);
        assert_eq!(get_secret(&d, "after-crash"), *step);
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
    let d = hsm_daemon(&hsm);
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
