//! Abuse resistance at the doors: the HTTPS listener speaks TLS 1.2 and 1.3 with AEAD
//! suites only (rustls's defaults), so a TLS 1.1 client or a CBC/RSA-key-exchange suite
//! gets no handshake; a source failing JWT logins, or submitting unseal keys that do
//! not open the appliance, waits longer before each new attempt (429 meanwhile). The
//! other doors have their own tests: userpass and AppRole (auth_methods.rs), PKCS#11
//! logins (api/src/pkcs11/login_limit.rs), PKCS#11 over TCP requiring a client
//! certificate (api/src/pkcs11/listener/tests.rs).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use softhsm_tests::tools::run_ok;
use softhsm_tests::unseal::decode_key;
use softhsm_tests::{poll_until, reference_mode, Body, Daemon, HttpResponse};

fn s_client(d: &Daemon, args: &[&str]) -> Output {
    let ca = d.cacert().expect("a TLS daemon");
    Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &d.host_port(), "-servername", "localhost"])
        .args(args)
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify_return_error")
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client")
}

fn shown(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn tls_below_1_2_and_weak_suites_get_no_handshake() {
    let d = Daemon::config(true);
    // The client's own floor (OpenSSL's security level) is lowered so that the refusal
    // seen is the server's.
    for old in ["-tls1", "-tls1_1"] {
        let o = s_client(&d, &[old, "-cipher", "DEFAULT:@SECLEVEL=0"]);
        assert!(!o.status.success(), "{old} was served: {}", shown(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("Cipher is ECDHE"),
            "{}",
            shown(&o)
        );
    }
    let v12 = s_client(&d, &["-tls1_2"]);
    assert!(v12.status.success(), "TLS 1.2 refused: {}", shown(&v12));
    let out = String::from_utf8_lossy(&v12.stdout);
    assert!(out.contains("TLSv1.2"), "{out}");
    if reference_mode() {
        return; // Go's defaults still offer ECDHE with CBC suites at TLS 1.2.
    }
    // No CBC, no RSA key exchange, no 3DES: none of these is offered.
    let weak = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:\
                ECDHE-RSA-AES256-SHA384:AES128-SHA:AES256-SHA:AES128-GCM-SHA256:\
                AES256-GCM-SHA384:DES-CBC3-SHA";
    let o = s_client(&d, &["-tls1_2", "-cipher", weak]);
    assert!(
        !o.status.success(),
        "a weak suite was served: {}",
        shown(&o)
    );
}

fn root(d: &Daemon) -> &str {
    d.token.as_deref().expect("root token")
}

fn jwt_login(d: &Daemon, jwt: &str) -> HttpResponse {
    d.http(
        "POST",
        "/v1/auth/jwt/login",
        None,
        Body::Json(&json!({"role": "ci", "jwt": jwt}).to_string()),
    )
}

/// OpenBao does not throttle logins; Ironseal does, for every auth method.
#[test]
fn failing_jwt_logins_are_throttled_per_source() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    let key = d.dir().join("jwt.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&key),
    );
    let public = run_ok(
        Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&key),
    );
    d.bao(&["auth", "enable", "jwt"]).ok();
    let post = |path: &str, body: Value| {
        let r = d.http("POST", path, Some(root(&d)), Body::Json(&body.to_string()));
        assert!(r.status < 300, "{path}: {r}");
    };
    post(
        "/v1/auth/jwt/config",
        json!({"jwt_validation_pubkeys": [public], "jwt_supported_algs": ["ES256"]}),
    );
    post(
        "/v1/auth/jwt/role/ci",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["ironseal"],
               "token_policies": ["default"]}),
    );
    // A signed credential cannot be guessed: ten failures are free, for clients
    // retrying with a misconfiguration; then each one locks the source for longer.
    for _ in 0..10 {
        jwt_login(&d, "not.a.jwt").assert_error(400, "error validating token");
    }
    jwt_login(&d, "not.a.jwt").assert_error(400, "error validating token");
    let locked = jwt_login(&d, "not.a.jwt");
    locked.assert_error(429, "too many failed login attempts");
    // The lock passes: an attempt is checked again.
    poll_until(Duration::from_secs(30), "the lock to end", || {
        (jwt_login(&d, "not.a.jwt").status == 400).then_some(())
    });
}

/// The share with one of its value bytes changed: well formed, same index, wrong key.
fn tampered(share: &str) -> String {
    let mut bytes = decode_key(share);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unseal(d: &Daemon, key: &str) -> HttpResponse {
    d.http(
        "POST",
        "/v1/sys/unseal",
        None,
        Body::Json(&json!({ "key": key }).to_string()),
    )
}

/// OpenBao does not throttle unseal attempts; Ironseal does, per source.
#[test]
fn unseal_keys_that_do_not_open_the_appliance_slow_their_source_down() {
    if reference_mode() {
        return;
    }
    let mut d = Daemon::config(false);
    let init = d.init(1, 1);
    let right = init.keys_b64[0].clone();
    let wrong = tampered(&right);
    // A config-mode appliance starts sealed after init.
    assert_eq!(d.seal_status()["sealed"], true);
    for _ in 0..3 {
        unseal(&d, &wrong).assert_error(400, "do not open this appliance");
    }
    // Locked: the right key is not even looked at.
    unseal(&d, &right).assert_error(429, "too many failed unseal attempts");
    assert_eq!(d.seal_status()["sealed"], true);
    let status = poll_until(Duration::from_secs(30), "the lock to end", || {
        let r = unseal(&d, &right);
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(status["sealed"], false, "{status}");
}
