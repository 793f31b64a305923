//! Managed keys through `/api/v1/keys` against the real daemon: with SoftHSM2 as the seal
//! (keys generated inside the token, stored only as wrapped blobs, signatures checked by
//! `openssl`, before and after a restart), rotation and version states, destruction after
//! its window, scoped and offline-attenuated Biscuit tokens, bad input, and the Shamir
//! (software keys) path.
//!
//! `/api/v1` is Ironseal's own key API: OpenBao has no counterpart, so in reference mode
//! (`IRONSEAL_REFERENCE=openbao`) these tests have nothing to compare and return at once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use softhsm_tests::hardware::{SoftHsm, SOFTHSM_MODULE};
use softhsm_tests::{files_containing, poll_until, reference_mode, Body, Daemon};

const KEY_LABEL: &str = "ironseal-root";
const DEADLINE: Duration = Duration::from_secs(60);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Reply {
    status: u16,
    body: Value,
    text: String,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

fn api(d: &Daemon, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
    let text = body.map(|b| b.to_string());
    let r = d.http(
        method,
        &format!("/api/v1/{path}"),
        Some(token),
        match &text {
            Some(t) => Body::Json(t),
            None => Body::None,
        },
    );
    Reply {
        status: r.status,
        body: serde_json::from_str(&r.body).unwrap_or(Value::Null),
        text: format!(
            "{method} {path} -> {}",
            r.body.chars().take(600).collect::<String>()
        ),
    }
}

#[track_caller]
fn ok(r: Reply) -> Value {
    assert!((200..300).contains(&r.status), "{r}");
    r.body
}

/// Asserts a problem object with `status` and `code`.
#[track_caller]
fn problem(r: Reply, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.body["code"], code, "{r}");
    assert_eq!(r.body["status"], status, "{r}");
    assert!(
        r.body["type"].is_string() && r.body["title"].is_string(),
        "{r}"
    );
    assert!(!r.body["detail"].as_str().unwrap_or("").is_empty(), "{r}");
    r.body
}

fn create(d: &Daemon, token: &str, name: &str, algorithm: &str) -> Value {
    ok(api(
        d,
        "POST",
        "keys",
        token,
        Some(json!({"name": name, "algorithm": algorithm, "labels": {"team": "t1"}})),
    ))
}

fn sign(d: &Daemon, token: &str, id: &str, msg: &[u8], version: Option<u32>) -> Reply {
    let mut body = json!({"message": B64.encode(msg)});
    if let Some(v) = version {
        body["version"] = v.into();
    }
    api(d, "POST", &format!("keys/{id}/sign"), token, Some(body))
}

/// `openssl dgst -sha256 -verify` of `sig` over `msg` with `pem`.
fn openssl_verifies(pem: &str, msg: &[u8], sig: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("msg"), msg).unwrap();
    std::fs::write(dir.path().join("sig"), sig).unwrap();
    let out = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "msg",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl");
    out.status.success()
}

fn hsm_daemon(hsm: &SoftHsm) -> Daemon {
    let seal = hsm.seal_hcl(Path::new(SOFTHSM_MODULE), KEY_LABEL, false);
    let conf = hsm.conf();
    let mut d = Daemon::config_with_seal(&seal, &[("SOFTHSM2_CONF", conf.to_str().unwrap())]);
    let out = d
        .bao_as(
            None,
            &[
                "operator",
                "init",
                "-format=json",
                "-recovery-shares=1",
                "-recovery-threshold=1",
            ],
        )
        .ok();
    d.token = Some(out.json()["root_token"].as_str().unwrap().to_string());
    wait_unsealed(&d);
    d
}

fn wait_unsealed(d: &Daemon) {
    poll_until(DEADLINE, "the daemon to unseal itself", || {
        (d.seal_status()["sealed"] == false).then_some(())
    });
}

fn sign_and_check(d: &Daemon, root: &str, key: &Value, msg: &[u8]) -> (Vec<u8>, u64) {
    let id = key["id"].as_str().unwrap();
    let r = ok(sign(d, root, id, msg, None));
    let sig = B64.decode(r["signature"].as_str().unwrap()).unwrap();
    let pem = key["publicKeyPem"].as_str().unwrap();
    assert!(
        openssl_verifies(pem, msg, &sig),
        "openssl rejects the {} signature",
        key["algorithm"]
    );
    (sig, r["version"].as_u64().unwrap())
}

#[test]
fn managed_keys_live_in_softhsm_and_sign_for_openssl() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("managed");
    let mut d = hsm_daemon(&hsm);
    let root = d.token.clone().unwrap();
    let rsa = create(&d, &root, "app-rsa", "RSA_2048");
    let ec = create(&d, &root, "app-ec", "EC_P256");
    for k in [&rsa, &ec] {
        assert_eq!(k["protection"], "HSM", "{k}");
        assert_eq!(k["primaryVersion"], 1, "{k}");
        assert_eq!(k["versions"][0]["state"], "ENABLED", "{k}");
        assert!(k["versions"][0]["createTime"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        assert!(k["publicKeyPem"]
            .as_str()
            .unwrap()
            .contains("BEGIN PUBLIC KEY"));
        assert!(k["publicKeyJwk"]["kty"].is_string(), "{k}");
    }

    // The token holds no copy of them: only the root key, which is not extractable.
    let listing = hsm.pkcs11_tool(&["--list-objects"]);
    let objects = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listing.status.success(), "{objects}");
    assert!(!objects.contains("Private Key Object"), "{objects}");
    assert!(!objects.contains("Public Key Object"), "{objects}");
    assert_eq!(objects.matches("Secret Key Object").count(), 1, "{objects}");
    assert!(objects.contains(KEY_LABEL), "{objects}");
    assert!(
        objects.contains("never extractable"),
        "the root key is extractable: {objects}"
    );

    let msg = b"a message to sign";
    let (rsa_sig1, v) = sign_and_check(&d, &root, &rsa, msg);
    assert_eq!(v, 1);
    sign_and_check(&d, &root, &ec, msg);

    // Storage holds only ciphertext: no public key, let alone private material, in clear.
    for k in [&rsa, &ec] {
        let pem = k["publicKeyPem"].as_str().unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = B64.decode(der).unwrap();
        let found = files_containing(&d.data_dir(), &[("spki".into(), der)]);
        assert!(found.is_empty(), "public key in clear in {found:?}");
    }

    // After a restart (auto-unseal), the same keys sign, still verifying with openssl.
    d.restart_after_kill9();
    wait_unsealed(&d);
    sign_and_check(&d, &root, &rsa, msg);
    sign_and_check(&d, &root, &ec, msg);

    // Rotation: v2 signs, v1 still verifies.
    let rsa_id = rsa["id"].as_str().unwrap();
    let rotated = ok(api(
        &d,
        "POST",
        &format!("keys/{rsa_id}/rotate"),
        &root,
        None,
    ));
    assert_eq!(rotated["primaryVersion"], 2, "{rotated}");
    assert_eq!(rotated["versions"][1]["protection"], "HSM");
    let (_, v) = sign_and_check(&d, &root, &rotated, msg);
    assert_eq!(v, 2);
    let verify = |version: u32, sig: &[u8]| {
        api(
            &d,
            "POST",
            &format!("keys/{rsa_id}/verify"),
            &root,
            Some(
                json!({"message": B64.encode(msg), "signature": B64.encode(sig), "version": version}),
            ),
        )
    };
    assert_eq!(ok(verify(1, &rsa_sig1))["valid"], true);
    assert_eq!(ok(verify(2, &rsa_sig1))["valid"], false);

    // A disabled version refuses; enabled again, it works.
    ok(api(
        &d,
        "POST",
        &format!("keys/{rsa_id}/versions/1/disable"),
        &root,
        None,
    ));
    problem(
        sign(&d, &root, rsa_id, msg, Some(1)),
        409,
        "KEY_VERSION_DISABLED",
    );
    problem(verify(1, &rsa_sig1), 409, "KEY_VERSION_DISABLED");
    ok(sign(&d, &root, rsa_id, msg, Some(2)));
    ok(api(
        &d,
        "POST",
        &format!("keys/{rsa_id}/versions/1/enable"),
        &root,
        None,
    ));
    ok(sign(&d, &root, rsa_id, msg, Some(1)));

    // AES inside the HSM.
    let aes = create(&d, &root, "app-aes", "AES_256");
    assert_eq!(aes["protection"], "HSM");
    let aes_id = aes["id"].as_str().unwrap();
    let ct = ok(api(
        &d,
        "POST",
        &format!("keys/{aes_id}/encrypt"),
        &root,
        Some(json!({"plaintext": B64.encode(b"secret bytes")})),
    ));
    let pt = ok(api(
        &d,
        "POST",
        &format!("keys/{aes_id}/decrypt"),
        &root,
        Some(json!({"ciphertext": ct["ciphertext"]})),
    ));
    assert_eq!(pt["plaintext"], B64.encode(b"secret bytes"));

    // Destruction: pending, cancellable, then gone after its window.
    let ec_id = ec["id"].as_str().unwrap();
    let pending = ok(api(
        &d,
        "POST",
        &format!("keys/{ec_id}/schedule-destruction"),
        &root,
        Some(json!({"pendingWindowSeconds": 3600})),
    ));
    assert_eq!(pending["state"], "PENDING_DESTRUCTION", "{pending}");
    problem(
        sign(&d, &root, ec_id, msg, None),
        409,
        "KEY_PENDING_DESTRUCTION",
    );
    ok(api(
        &d,
        "POST",
        &format!("keys/{ec_id}/cancel-destruction"),
        &root,
        None,
    ));
    ok(sign(&d, &root, ec_id, msg, None));
    ok(api(
        &d,
        "POST",
        &format!("keys/{ec_id}/schedule-destruction"),
        &root,
        Some(json!({"pendingWindowSeconds": 1})),
    ));
    poll_until(DEADLINE, "the key to be destroyed", || {
        (api(&d, "GET", &format!("keys/{ec_id}"), &root, None).status == 404).then_some(())
    });
    problem(sign(&d, &root, ec_id, msg, None), 404, "KEY_NOT_FOUND");
    let list = ok(api(&d, "GET", "keys", &root, None));
    assert!(!list.to_string().contains(ec_id), "{list}");
    // And a restart does not bring it back.
    d.restart_after_kill9();
    wait_unsealed(&d);
    problem(
        api(&d, "GET", &format!("keys/{ec_id}"), &root, None),
        404,
        "KEY_NOT_FOUND",
    );
    ok(sign(&d, &root, rsa_id, msg, None));
}

fn token_with_scopes(d: &Daemon, root: &str, scopes: &[&str]) -> String {
    let r = d.http(
        "POST",
        "/v1/auth/token/create",
        Some(root),
        Body::Json(&json!({"policies": ["default"], "scopes": scopes}).to_string()),
    );
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    let mut want: Vec<&str> = scopes.to_vec();
    want.sort();
    assert_eq!(v["auth"]["scopes"], json!(want), "{r}");
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

/// Appends a block of checks to a token offline, as a holder would with biscuit-cli.
fn attenuate(token: &str, code: &str) -> String {
    let unverified = biscuit_auth::UnverifiedBiscuit::from_base64(token).unwrap();
    let block = biscuit_auth::builder::BlockBuilder::new()
        .code(code)
        .unwrap();
    unverified.append(block).unwrap().to_base64().unwrap()
}

#[test]
fn managed_key_scopes_and_offline_attenuation() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let app = create(&d, &root, "app-signer", "EC_P256");
    let db = create(&d, &root, "db-key", "EC_P256");
    let (app_id, db_id) = (app["id"].as_str().unwrap(), db["id"].as_str().unwrap());

    // Read-only: lists and reads, cannot rotate or sign.
    let reader = token_with_scopes(&d, &root, &["keys:read"]);
    let list = ok(api(&d, "GET", "keys", &reader, None));
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "{list}");
    ok(api(&d, "GET", &format!("keys/{db_id}"), &reader, None));
    let p = problem(
        api(&d, "POST", &format!("keys/{app_id}/rotate"), &reader, None),
        403,
        "MISSING_SCOPE",
    );
    assert_eq!(p["scope"], "keys:write");
    assert!(p["detail"].as_str().unwrap().contains("keys:write"), "{p}");
    let p = problem(sign(&d, &reader, app_id, b"m", None), 403, "MISSING_SCOPE");
    assert!(p["detail"].as_str().unwrap().contains("keys:use"), "{p}");
    // A token without any scope; and no token at all.
    let plain = token_with_scopes(&d, &root, &[]);
    problem(api(&d, "GET", "keys", &plain, None), 403, "MISSING_SCOPE");
    problem(api(&d, "GET", "keys", "", None), 401, "UNAUTHENTICATED");
    // A child cannot get scopes its parent lacks (nor, with the default policy, any token).
    let r = d.http(
        "POST",
        "/v1/auth/token/create",
        Some(&reader),
        Body::Json(r#"{"scopes":["keys:write"]}"#),
    );
    assert!(r.status == 400 || r.status == 403, "{r}");

    // Full scopes, attenuated offline to keys named app-*.
    let full = token_with_scopes(&d, &root, &["keys:read", "keys:write", "keys:use"]);
    let app_only = attenuate(&full, r#"check if key_name($n), $n.starts_with("app-");"#);
    ok(sign(&d, &app_only, app_id, b"m", None));
    ok(api(&d, "GET", &format!("keys/{app_id}"), &app_only, None));
    problem(
        sign(&d, &app_only, db_id, b"m", None),
        403,
        "ATTENUATION_DENIED",
    );
    problem(
        api(&d, "GET", &format!("keys/{db_id}"), &app_only, None),
        403,
        "ATTENUATION_DENIED",
    );
    problem(
        api(&d, "POST", &format!("keys/{db_id}/rotate"), &app_only, None),
        403,
        "ATTENUATION_DENIED",
    );
    problem(
        api(
            &d,
            "POST",
            "keys",
            &app_only,
            Some(json!({"name": "db-2", "algorithm": "AES_256"})),
        ),
        403,
        "ATTENUATION_DENIED",
    );
    ok(api(
        &d,
        "POST",
        "keys",
        &app_only,
        Some(json!({"name": "app-2", "algorithm": "AES_256"})),
    ));
    let listed = ok(api(&d, "GET", "keys", &app_only, None));
    let names: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("app-")) && names.len() == 2,
        "{names:?}"
    );
    // The unattenuated token still reaches db-key.
    ok(sign(&d, &full, db_id, b"m", None));

    // Read-only attenuation.
    let read_only = attenuate(&full, r#"check if operation("read");"#);
    ok(api(&d, "GET", &format!("keys/{db_id}"), &read_only, None));
    problem(
        sign(&d, &read_only, db_id, b"m", None),
        403,
        "ATTENUATION_DENIED",
    );

    // Expiry: a future one works, a past one is refused.
    let later = attenuate(&full, r#"check if time($t), $t < 2999-01-01T00:00:00Z;"#);
    ok(sign(&d, &later, app_id, b"m", None));
    let expired = attenuate(&full, r#"check if time($t), $t < 2020-01-01T00:00:00Z;"#);
    problem(
        sign(&d, &expired, app_id, b"m", None),
        403,
        "ATTENUATION_DENIED",
    );
    problem(
        api(&d, "GET", "keys", &expired, None),
        403,
        "ATTENUATION_DENIED",
    );

    // Bearer works as well as X-Vault-Token.
    let r = d
        .http_with(
            "GET",
            "/api/v1/keys",
            Body::None,
            &["-H", &format!("Authorization: Bearer {reader}")],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn managed_keys_reject_bad_input_clearly() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let p = problem(
        api(
            &d,
            "POST",
            "keys",
            &root,
            Some(json!({"name": "k", "algorithm": "RSA_1024"})),
        ),
        400,
        "UNKNOWN_ALGORITHM",
    );
    assert!(p["detail"].as_str().unwrap().contains("RSA_2048"), "{p}");
    problem(
        api(
            &d,
            "POST",
            "keys",
            &root,
            Some(json!({"algorithm": "AES_256"})),
        ),
        400,
        "MISSING_FIELD",
    );
    problem(
        api(
            &d,
            "POST",
            "keys",
            &root,
            Some(json!({"name": "bad name!", "algorithm": "AES_256"})),
        ),
        400,
        "INVALID_NAME",
    );
    problem(
        api(
            &d,
            "POST",
            "keys",
            &root,
            Some(json!({"name": "k", "algorithm": "EC_P256", "usage": "ENCRYPT_DECRYPT"})),
        ),
        400,
        "INVALID_USAGE",
    );
    let r = d.http("POST", "/api/v1/keys", Some(&root), Body::Json("{not json"));
    assert_eq!(r.status, 400, "{r}");
    assert_eq!(r.json()["code"], "MALFORMED_JSON", "{r}");

    let ec = create(&d, &root, "ec", "EC_P256");
    let ec_id = ec["id"].as_str().unwrap();
    problem(
        api(
            &d,
            "POST",
            "keys",
            &root,
            Some(json!({"name": "ec", "algorithm": "EC_P256"})),
        ),
        409,
        "KEY_NAME_EXISTS",
    );
    let aes = create(&d, &root, "aes", "AES_256");
    let aes_id = aes["id"].as_str().unwrap();
    // Wrong key type for the operation.
    let p = problem(
        api(
            &d,
            "POST",
            &format!("keys/{ec_id}/encrypt"),
            &root,
            Some(json!({"plaintext": "aGk="})),
        ),
        400,
        "UNSUPPORTED_OPERATION",
    );
    assert!(
        p["detail"].as_str().unwrap().contains("cannot encrypt"),
        "{p}"
    );
    problem(
        sign(&d, &root, aes_id, b"m", None),
        400,
        "UNSUPPORTED_OPERATION",
    );
    // Malformed base64, malformed ids, missing versions.
    problem(
        api(
            &d,
            "POST",
            &format!("keys/{ec_id}/sign"),
            &root,
            Some(json!({"message": "***"})),
        ),
        400,
        "INVALID_BASE64",
    );
    problem(
        api(&d, "GET", "keys/not-a-uuid", &root, None),
        400,
        "INVALID_KEY_ID",
    );
    problem(
        api(
            &d,
            "GET",
            "keys/6f1c1b9e-0000-4000-8000-000000000000",
            &root,
            None,
        ),
        404,
        "KEY_NOT_FOUND",
    );
    problem(
        sign(&d, &root, ec_id, b"m", Some(9)),
        404,
        "KEY_VERSION_NOT_FOUND",
    );
    problem(
        api(
            &d,
            "POST",
            &format!("keys/{aes_id}/decrypt"),
            &root,
            Some(json!({"ciphertext": B64.encode([0u8; 40])})),
        ),
        400,
        "DECRYPTION_FAILED",
    );
    // Oversized: a 70 KB message, and a body over the 1 MiB limit.
    problem(
        sign(&d, &root, ec_id, &vec![7u8; 70_000], None),
        413,
        "PAYLOAD_TOO_LARGE",
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"message\":\"{}\"}}", "A".repeat(2 << 20))).unwrap();
    let r = d.http(
        "POST",
        &format!("/api/v1/keys/{ec_id}/sign"),
        Some(&root),
        Body::File(&big),
    );
    assert_eq!(r.status, 413, "{r}");
    assert_eq!(r.json()["code"], "PAYLOAD_TOO_LARGE", "{r}");
    problem(
        api(&d, "GET", "keys?pageSize=0", &root, None),
        400,
        "INVALID_PAGE_SIZE",
    );
    problem(
        api(
            &d,
            "POST",
            &format!("keys/{ec_id}/schedule-destruction"),
            &root,
            Some(json!({"pendingWindowSeconds": 0})),
        ),
        400,
        "INVALID_PENDING_WINDOW",
    );
}

#[test]
fn managed_keys_in_shamir_dev_mode_are_software_keys() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let msg = b"dev mode";
    for alg in ["RSA_2048", "EC_P256", "EC_P384"] {
        let k = create(
            &d,
            &root,
            &format!("sw-{}", alg.to_lowercase().replace('_', "-")),
            alg,
        );
        assert_eq!(k["protection"], "SOFTWARE", "{k}");
        let id = k["id"].as_str().unwrap();
        let r = ok(sign(&d, &root, id, msg, None));
        let sig = B64.decode(r["signature"].as_str().unwrap()).unwrap();
        if alg != "EC_P384" {
            assert!(
                openssl_verifies(k["publicKeyPem"].as_str().unwrap(), msg, &sig),
                "{alg}"
            );
        }
        let v = ok(api(
            &d,
            "POST",
            &format!("keys/{id}/verify"),
            &root,
            Some(json!({"message": B64.encode(msg), "signature": r["signature"]})),
        ));
        assert_eq!(v["valid"], true, "{alg}");
    }
    // Post-quantum: never exportable; ML-DSA signs and verifies, ML-KEM round-trips.
    let pq = create(&d, &root, "pq-sign", "ML_DSA_65");
    assert_eq!(pq["exportable"], false);
    assert!(
        pq["publicKey"].is_string() && pq.get("publicKeyPem").is_none(),
        "{pq}"
    );
    let id = pq["id"].as_str().unwrap();
    let s = ok(sign(&d, &root, id, msg, None));
    let v = ok(api(
        &d,
        "POST",
        &format!("keys/{id}/verify"),
        &root,
        Some(json!({"message": B64.encode(msg), "signature": s["signature"]})),
    ));
    assert_eq!(v["valid"], true);
    let v = ok(api(
        &d,
        "POST",
        &format!("keys/{id}/verify"),
        &root,
        Some(json!({"message": B64.encode(b"other"), "signature": s["signature"]})),
    ));
    assert_eq!(v["valid"], false);
    for alg in ["ML_KEM_768", "AES_256", "RSA_3072"] {
        let k = ok(api(
            &d,
            "POST",
            "keys",
            &root,
            Some(
                json!({"name": format!("enc-{}", alg.to_lowercase().replace('_', "-")), "algorithm": alg, "usage": "ENCRYPT_DECRYPT"}),
            ),
        ));
        let id = k["id"].as_str().unwrap();
        let ct = ok(api(
            &d,
            "POST",
            &format!("keys/{id}/encrypt"),
            &root,
            Some(json!({"plaintext": B64.encode(b"pq secret")})),
        ));
        let pt = ok(api(
            &d,
            "POST",
            &format!("keys/{id}/decrypt"),
            &root,
            Some(json!({"ciphertext": ct["ciphertext"]})),
        ));
        assert_eq!(pt["plaintext"], B64.encode(b"pq secret"), "{alg}");
    }
    // Pagination and filters.
    let page = ok(api(&d, "GET", "keys?pageSize=2", &root, None));
    assert_eq!(page["keys"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap();
    let next = ok(api(
        &d,
        "GET",
        &format!("keys?pageSize=2&pageToken={token}"),
        &root,
        None,
    ));
    assert_eq!(next["keys"].as_array().unwrap().len(), 2);
    assert_ne!(page["keys"][0]["id"], next["keys"][0]["id"]);
    let ec = ok(api(&d, "GET", "keys?algorithm=EC_P256", &root, None));
    assert_eq!(ec["keys"].as_array().unwrap().len(), 1, "{ec}");
    let named = ok(api(&d, "GET", "keys?name=enc-", &root, None));
    assert_eq!(named["keys"].as_array().unwrap().len(), 3, "{named}");
}
