//! The init / unseal / seal transcript of clever-kms.md, run with the real bao CLI over TLS
//! verified against the CA the appliance generates; and wrong unseal shares.

use softhsm_tests::tools::run_ok;
use softhsm_tests::{decode_key, reference_mode, Body, Daemon, Output};

/// Parses the plain output of `bao operator init`: the unseal keys in order and the root
/// token.
fn parse_init(out: &Output) -> (Vec<String>, String) {
    let mut keys = Vec::new();
    let mut token = None;
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("Unseal Key ") {
            let (n, key) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("odd line {line:?} in {out}"));
            assert_eq!(n, (keys.len() + 1).to_string(), "keys out of order: {out}");
            keys.push(key.trim().to_string());
        }
        if let Some(t) = line.strip_prefix("Initial Root Token: ") {
            token = Some(t.trim().to_string());
        }
    }
    (
        keys,
        token.unwrap_or_else(|| panic!("no root token in {out}")),
    )
}

#[track_caller]
fn assert_field(out: &Output, key: &str, want: &str) {
    assert_eq!(
        out.field(key).as_deref(),
        Some(want),
        "row {key:?} should be {want:?}: {out}"
    );
}

#[test]
fn clever_kms_init_unseal_seal_transcript_over_tls() {
    let d = Daemon::config(true);
    let ca = d.cacert().unwrap();
    assert!(d.addr.starts_with("https://"), "{}", d.addr);
    let pem = std::fs::read_to_string(&ca).expect("the generated CA is at <data>/tls/ca.pem");
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");

    // Not initialised yet: `bao status` says so (exit 2 = sealed).
    let st = d.bao_as(None, &["status"]).code(2);
    assert_field(&st, "Initialized", "false");
    assert_field(&st, "Sealed", "true");

    // vault operator init
    let init = d.bao_as(None, &["operator", "init"]).ok();
    let (keys, root_token) = parse_init(&init);
    assert_eq!(keys.len(), 5, "five unseal keys by default: {init}");
    let mut indexes = Vec::new();
    for k in &keys {
        assert_eq!(
            k.len(),
            44,
            "an unseal key is 44 base64url characters: {k:?}"
        );
        let raw = decode_key(k);
        assert_eq!(raw.len(), 33, "a share is 33 bytes: {k:?}");
        if reference_mode() {
            continue; // OpenBao prints standard base64 and puts the index last.
        }
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "not base64url: {k:?}"
        );
        assert_ne!(raw[0], 0, "share index 0 is not a share: {k:?}");
        indexes.push(raw[0]);
    }
    indexes.sort();
    indexes.dedup();
    if !reference_mode() {
        assert_eq!(indexes.len(), 5, "five distinct share indexes: {init}");
    }
    assert!(!root_token.is_empty());
    assert!(
        init.stdout
            .contains("initialized with 5 key shares and a key threshold of 3"),
        "{init}"
    );

    // Initialised, still sealed.
    let st = d.bao_as(None, &["status"]).code(2);
    assert_field(&st, "Initialized", "true");
    assert_field(&st, "Sealed", "true");
    assert_field(&st, "Total Shares", "5");
    assert_field(&st, "Threshold", "3");
    assert_field(&st, "Unseal Progress", "0/3");

    // Sealed: everything outside sys/ answers 503 "Vault is sealed".
    d.http(
        "GET",
        "/v1/secret/data/anything",
        Some(&root_token),
        Body::None,
    )
    .assert_error(503, "Vault is sealed");

    // vault operator unseal (the key as an argument: the CLI's hidden prompt needs a tty
    // and sends the same request)
    let u1 = d.bao_as(None, &["operator", "unseal", &keys[0]]).ok();
    assert_field(&u1, "Seal Type", "shamir");
    assert_field(&u1, "Initialized", "true");
    assert_field(&u1, "Sealed", "true");
    assert_field(&u1, "Total Shares", "5");
    assert_field(&u1, "Threshold", "3");
    assert_field(&u1, "Unseal Progress", "1/3");
    let nonce = u1.field("Unseal Nonce").unwrap_or_default();
    assert!(!nonce.is_empty() && nonce != "n/a", "an unseal nonce: {u1}");

    let u2 = d.bao_as(None, &["operator", "unseal", &keys[1]]).ok();
    assert_field(&u2, "Sealed", "true");
    assert_field(&u2, "Unseal Progress", "2/3");
    assert_field(&u2, "Unseal Nonce", &nonce);

    let u3 = d.bao_as(None, &["operator", "unseal", &keys[2]]).ok();
    assert_field(&u3, "Initialized", "true");
    assert_field(&u3, "Sealed", "false");
    assert_field(&u3, "Total Shares", "5");
    assert_field(&u3, "Threshold", "3");
    assert!(u3.field("Unseal Progress").is_none(), "{u3}");

    let st = d.bao_as(None, &["status"]).code(0);
    assert_field(&st, "Sealed", "false");

    // The root token works now, over the verified TLS connection.
    let me = d
        .bao_as(Some(&root_token), &["token", "lookup", "-format=json"])
        .ok();
    let policies = me.json()["data"]["policies"].clone();
    assert!(
        policies.as_array().unwrap().iter().any(|p| p == "root"),
        "the initial root token has the root policy: {me}"
    );

    // vault operator seal
    let sealed = d.bao_as(Some(&root_token), &["operator", "seal"]).ok();
    assert!(
        sealed.stdout.contains("Success! Vault is sealed."),
        "{sealed}"
    );
    let st = d.bao_as(None, &["status"]).code(2);
    assert_field(&st, "Sealed", "true");
    assert_field(&st, "Unseal Progress", "0/3");
    d.http(
        "GET",
        "/v1/auth/token/lookup-self",
        Some(&root_token),
        Body::None,
    )
    .assert_error(503, "Vault is sealed");

    // Any three keys unseal it again: here the last three.
    for (i, k) in keys[2..].iter().enumerate() {
        let u = d.bao_as(None, &["operator", "unseal", k]).ok();
        if i < 2 {
            assert_field(&u, "Unseal Progress", &format!("{}/3", i + 1));
        } else {
            assert_field(&u, "Sealed", "false");
        }
    }
    d.bao_as(Some(&root_token), &["token", "lookup"]).ok();

    // A second init is refused.
    d.bao_as(None, &["operator", "init"]).code(2);
    d.http(
        "PUT",
        "/v1/sys/init",
        None,
        Body::Json(r#"{"secret_shares":1,"secret_threshold":1}"#),
    )
    .assert_error(400, "already initialized");
}

#[test]
fn tls_is_verified_against_the_generated_ca() {
    let d = Daemon::config(true);
    // The generated CA verifies the leaf for 127.0.0.1 (d.addr) and for localhost.
    d.bao_as(None, &["status"]).code(2);
    let port = d.addr.rsplit(':').next().unwrap();
    let by_name = d.bao_full(
        None,
        &["status"],
        None,
        &[
            ("VAULT_ADDR", &format!("https://localhost:{port}")),
            ("BAO_ADDR", &format!("https://localhost:{port}")),
        ],
    );
    assert_eq!(
        by_name.status, 2,
        "localhost is a SAN of the leaf: {by_name}"
    );

    // Another CA (the system's) does not verify it: the client really checks.
    let other = d.bao_full(
        None,
        &["status"],
        None,
        &[
            ("VAULT_CACERT", "/etc/ssl/certs/ca-certificates.crt"),
            ("BAO_CACERT", "/etc/ssl/certs/ca-certificates.crt"),
        ],
    );
    assert_ne!(other.status, 0, "{other}");
    assert!(
        other.stderr.contains("certificate") || other.stderr.contains("x509"),
        "a certificate error: {other}"
    );
    assert!(other.field("Sealed").is_none(), "{other}");

    // Plain HTTP to the TLS listener gets no Vault answer.
    let plain = d.bao_full(
        None,
        &["status"],
        None,
        &[
            ("VAULT_ADDR", &format!("http://127.0.0.1:{port}")),
            ("BAO_ADDR", &format!("http://127.0.0.1:{port}")),
        ],
    );
    assert!(plain.field("Sealed").is_none(), "{plain}");
}

#[test]
fn generated_certificate_fingerprint_is_logged() {
    if reference_mode() {
        return; // OpenBao does not generate certificates.
    }
    let d = Daemon::config(true);
    let logs = d.logs().to_lowercase().replace(':', "");
    // SHA-256 of the DER of the CA and of the leaf, as openssl computes them.
    let mut found = Vec::new();
    for f in ["ca.pem", "cert.pem"] {
        let path = d.data_dir().join("tls").join(f);
        let text = run_ok(
            std::process::Command::new("openssl")
                .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
                .arg(&path),
        )
        .to_lowercase();
        let fp = text.trim().rsplit('=').next().unwrap().replace(':', "");
        assert_eq!(fp.len(), 64, "{text}");
        if logs.contains(&fp) {
            found.push(f);
        }
    }
    assert!(
        !found.is_empty(),
        "the log names the SHA-256 fingerprint of the generated certificate:\n{}",
        d.logs()
    );
    // The private key never reaches the log.
    let key = std::fs::read_to_string(d.data_dir().join("tls/key.pem")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(body.len() > 40);
    assert!(!d.logs().contains(&body[..40]), "the TLS key is in the log");
}

#[test]
fn malformed_share_is_refused_without_touching_progress() {
    let mut d = Daemon::config(false);
    let init = d.init(5, 3);
    let k = &init.keys_b64;

    let u = d
        .bao_as(None, &["operator", "unseal", "-format=json", &k[0]])
        .ok();
    assert_eq!(u.json()["progress"], 1, "{u}");

    // Not base64 nor hex; the right encoding but the wrong length; empty.
    for bad in ["this is not a key!", "c2hvcnQ", "00112233", "AA"] {
        let r = d.http(
            "PUT",
            "/v1/sys/unseal",
            None,
            Body::Json(&format!(r#"{{"key":"{bad}"}}"#)),
        );
        assert!(
            r.status == 400,
            "a malformed share is a 400 with an error body: {r}"
        );
        assert!(!r.errors().is_empty(), "{r}");
        let st = d.seal_status();
        assert_eq!(st["progress"], 1, "progress untouched after {bad:?}: {st}");
        assert_eq!(st["sealed"], true);
    }
    let cli = d.bao_as(None, &["operator", "unseal", "not-a-key"]);
    assert_eq!(cli.status, 2, "{cli}");
    assert!(cli.stderr.contains("Code: 400"), "{cli}");
    assert_eq!(d.seal_status()["progress"], 1);

    // A body without a key at all.
    let r = d.http("PUT", "/v1/sys/unseal", None, Body::Json("{}"));
    assert_eq!(r.status, 400, "{r}");
    assert_eq!(d.seal_status()["progress"], 1);

    // The same share again does not count twice.
    d.bao_as(None, &["operator", "unseal", &k[0]]);
    d.bao_as(None, &["operator", "unseal", &k[0]]);
    let st = d.seal_status();
    assert_eq!(
        st["sealed"], true,
        "one share repeated must not unseal: {st}"
    );
    assert_eq!(st["progress"], 1, "{st}");

    // Hex works as well as base64url, and completes the unseal.
    d.bao_as(None, &["operator", "unseal", &init.keys_hex[1]])
        .ok();
    let last = d
        .bao_as(None, &["operator", "unseal", "-format=json", &k[2]])
        .ok();
    assert_eq!(last.json()["sealed"], false, "{last}");
}

#[test]
fn wrong_share_set_fails_at_threshold_resets_progress_and_stays_sealed() {
    let mut a = Daemon::config(false);
    let mut b = Daemon::config(false);
    let a_init = a.init(5, 3);
    let b_init = b.init(5, 3);

    // B's shares are well-formed, so A takes them until the threshold...
    for (i, key) in b_init.keys_b64[..2].iter().enumerate() {
        let u = a
            .bao_as(None, &["operator", "unseal", "-format=json", key])
            .ok();
        assert_eq!(u.json()["progress"], i + 1, "{u}");
        assert_eq!(u.json()["sealed"], true, "{u}");
    }
    // ...where combining them gives the wrong root key: refused.
    let third = a.http(
        "PUT",
        "/v1/sys/unseal",
        None,
        Body::Json(&format!(r#"{{"key":"{}"}}"#, b_init.keys_b64[2])),
    );
    assert!(
        (400..500).contains(&third.status),
        "the wrong share set is refused with 4xx (Vault: 400): {third}"
    );
    assert!(!third.errors().is_empty(), "{third}");

    let st = a.seal_status();
    assert_eq!(st["sealed"], true, "still sealed: {st}");
    assert_eq!(
        st["progress"], 0,
        "progress reset after the failed attempt: {st}"
    );
    a.http("GET", "/v1/secret/data/x", a.token.as_deref(), Body::None)
        .assert_error(503, "Vault is sealed");

    // Two right shares and one wrong one fail too.
    a.bao_as(None, &["operator", "unseal", &a_init.keys_b64[0]])
        .ok();
    a.bao_as(None, &["operator", "unseal", &a_init.keys_b64[1]])
        .ok();
    let mixed = a.bao_as(None, &["operator", "unseal", &b_init.keys_b64[3]]);
    assert_ne!(mixed.status, 0, "{mixed}");
    let st = a.seal_status();
    assert_eq!(st["sealed"], true, "{st}");
    assert_eq!(st["progress"], 0, "{st}");

    // The right shares, from zero, unseal; so nothing stale was left behind.
    for (i, key) in a_init.keys_b64[2..].iter().enumerate() {
        let u = a
            .bao_as(None, &["operator", "unseal", "-format=json", key])
            .ok();
        if i < 2 {
            assert_eq!(u.json()["progress"], i + 1, "{u}");
        } else {
            assert_eq!(u.json()["sealed"], false, "{u}");
        }
    }
    a.bao(&["token", "lookup"]).ok();
}

#[test]
fn unseal_reset_discards_progress() {
    let mut d = Daemon::config(false);
    let init = d.init(3, 2);
    d.bao_as(None, &["operator", "unseal", &init.keys_b64[0]])
        .ok();
    assert_eq!(d.seal_status()["progress"], 1);
    let r = d
        .bao_as(None, &["operator", "unseal", "-reset", "-format=json"])
        .ok();
    assert_eq!(r.json()["progress"], 0, "{r}");
    assert_eq!(d.seal_status()["progress"], 0);
    d.bao_as(None, &["operator", "unseal", &init.keys_b64[1]])
        .ok();
    let u = d
        .bao_as(
            None,
            &["operator", "unseal", "-format=json", &init.keys_b64[2]],
        )
        .ok();
    assert_eq!(u.json()["sealed"], false, "{u}");
}

#[test]
fn health_answers_with_vaults_status_codes_and_query_flags() {
    let mut d = Daemon::config(false);
    let code = |d: &Daemon, q: &str| d.http("GET", &format!("/v1/sys/health{q}"), None, Body::None);

    let r = code(&d, "");
    assert_eq!(r.status, 501, "not initialised: {r}");
    assert_eq!(r.json()["initialized"], false, "{r}");
    assert_eq!(code(&d, "?uninitcode=299").status, 299);

    d.init(1, 1);
    let r = code(&d, "");
    assert_eq!(r.status, 503, "sealed: {r}");
    assert_eq!(r.json()["sealed"], true, "{r}");
    assert_eq!(code(&d, "?sealedcode=298").status, 298);

    d.unseal();
    let r = code(&d, "");
    assert_eq!(r.status, 200, "active: {r}");
    assert_eq!(r.json()["initialized"], true, "{r}");
    assert_eq!(r.json()["sealed"], false, "{r}");
    assert_eq!(code(&d, "?activecode=297").status, 297);
    // HEAD answers too, without a body.
    let head = d
        .http_with("HEAD", "/v1/sys/health", Body::None, &["-I"])
        .unwrap();
    assert_eq!(head.status, 200, "{head}");

    let leader = d.http("GET", "/v1/sys/leader", None, Body::None);
    assert_eq!(leader.status, 200, "{leader}");
    assert!(leader.json().get("ha_enabled").is_some(), "{leader}");
}

/// Kills the daemon (abort, as a power cut) right after each step of `operator init`
/// with the Shamir seal, then starts it without the crash point: the appliance is still
/// uninitialised, init runs again with new keys, and they unseal an appliance that works.
#[test]
fn init_killed_at_each_step_can_be_run_again() {
    if reference_mode() {
        return; // Ironseal's crash points (debug builds only).
    }
    for step in [
        "init:root-key",
        "init:keyring",
        "init:token-store",
        "init:default-policy",
        "init:root-token",
    ] {
        let mut d = Daemon::config_with_env(false, &[("IRONSEAL_TEST_CRASH_AT", step)]);
        softhsm_tests::crash::init_aborted_at(&mut d, step, &["-key-shares=3", "-key-threshold=2"]);
        let r = d.http("GET", "/v1/sys/init", None, Body::None);
        assert_eq!(r.json()["initialized"], false, "{step}: {r}");

        d.init(3, 2);
        d.unseal();
        d.ensure_secret_kv2();
        d.bao(&[
            "kv",
            "put",
            "-mount=secret",
            "crash",
            &format!("step={step}"),
        ])
        .ok();
        let got = d
            .bao(&["kv", "get", "-mount=secret", "-field=step", "crash"])
            .ok();
        assert_eq!(got.stdout.trim(), step);
        if step != "init:root-key" {
            assert!(
                d.logs().contains("an earlier init was interrupted"),
                "{step}: {}",
                d.logs()
            );
        }
        // Survives a restart: the new keys open what the retried init made.
        d.restart_after_kill9();
        d.unseal();
        let got = d
            .bao(&["kv", "get", "-mount=secret", "-field=step", "crash"])
            .ok();
        assert_eq!(got.stdout.trim(), step);
    }
}

/// `sys/init` parameters that do not apply to the seal are refused, as OpenBao does, and
/// the appliance stays uninitialised.
#[test]
fn init_refuses_parameters_of_the_other_seal() {
    let d = Daemon::config(false);
    let r = d.http(
        "PUT",
        "/v1/sys/init",
        None,
        Body::Json(r#"{"secret_shares":1,"secret_threshold":1,"recovery_shares":3,"recovery_threshold":2}"#),
    );
    r.assert_error(400, "not applicable to seal type shamir");
    let r = d.http("GET", "/v1/sys/init", None, Body::None);
    assert_eq!(r.json()["initialized"], false, "{r}");
}

/// What Ironseal cannot honour in `sys/init` is refused rather than ignored: a PGP key for
/// the root token, stored shares with the Shamir seal, a parameter it does not know.
#[test]
fn init_refuses_what_it_cannot_honour() {
    if reference_mode() {
        return; // OpenBao encrypts with PGP keys and ignores unknown fields.
    }
    let d = Daemon::config(false);
    for (body, needle) in [
        (
            r#"{"secret_shares":1,"secret_threshold":1,"root_token_pgp_key":"mQENBFzX"}"#,
            "root_token_pgp_key is not supported",
        ),
        (
            r#"{"secret_shares":1,"secret_threshold":1,"pgp_keys":["mQENBFzX"]}"#,
            "pgp_keys are not supported",
        ),
        (
            r#"{"secret_shares":1,"secret_threshold":1,"recovery_pgp_keys":["mQENBFzX"]}"#,
            "pgp_keys are not supported",
        ),
        (
            r#"{"secret_shares":1,"secret_threshold":1,"stored_shares":1}"#,
            "stored keys are not supported by the shamir seal",
        ),
        (
            r#"{"secret_shares":1,"secret_threshold":1,"secret_sharez":2}"#,
            "unknown parameters for sys/init: secret_sharez",
        ),
    ] {
        let r = d.http("PUT", "/v1/sys/init", None, Body::Json(body));
        r.assert_error(400, needle);
    }
    // A field may come from the query too, so an unknown one there is refused as well.
    let r = d.http(
        "PUT",
        "/v1/sys/init?secret_sharez=2",
        None,
        Body::Json(r#"{"secret_shares":1,"secret_threshold":1}"#),
    );
    r.assert_error(400, "unknown parameters for sys/init: secret_sharez");
    let r = d.http("GET", "/v1/sys/init", None, Body::None);
    assert_eq!(r.json()["initialized"], false, "{r}");
    // What the bao CLI sends (every field, empty where unused) is accepted.
    let r = d.http(
        "PUT",
        "/v1/sys/init",
        None,
        Body::Json(r#"{"secret_shares":1,"secret_threshold":1,"pgp_keys":null,"root_token_pgp_key":"","recovery_shares":0,"recovery_threshold":0,"recovery_pgp_keys":null}"#),
    );
    assert_eq!(r.status, 200, "{r}");
}
