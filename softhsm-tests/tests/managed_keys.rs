//! Managed keys through `/api/v1/keys` against the real daemon: with SoftHSM2 as the seal
//! (keys generated inside the token, stored only as wrapped blobs, signatures checked by
//! `openssl`, before and after a restart), rotation and version states, destruction after
//! its window, scoped and offline-attenuated Biscuit tokens, bad input, and the Shamir
//! (software keys) path.
//!
//! `/api/v1` is Ironseal's own key API: OpenBao has no counterpart, so in reference mode
//! (`IRONSEAL_REFERENCE=openbao`) these tests have nothing to compare and return at once.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use softhsm_tests::hardware::{SoftHsm, ROOT_KEY_LABEL};
use softhsm_tests::{files_containing, poll_until, reference_mode, Body, Daemon};

const DEADLINE: Duration = Duration::from_secs(60);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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

fn sign_and_check(d: &Daemon, root: &str, key: &Value, msg: &[u8]) -> (Vec<u8>, u64) {
    let id = key["id"].as_str().unwrap();
    let r = d.kms_sign(root, id, msg, None).ok();
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
    let mut d = hsm.unsealed_daemon(1, 1).0;
    let root = d.token.clone().unwrap();
    let rsa = d.kms_create_key(&root, "app-rsa", "RSA_2048");
    let ec = d.kms_create_key(&root, "app-ec", "EC_P256");
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
    assert!(objects.contains(ROOT_KEY_LABEL), "{objects}");
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
    d.wait_unsealed();
    sign_and_check(&d, &root, &rsa, msg);
    sign_and_check(&d, &root, &ec, msg);

    // Rotation: v2 signs, v1 still verifies.
    let rsa_id = rsa["id"].as_str().unwrap();
    let rotated = d
        .kms("POST", &format!("keys/{rsa_id}/rotate"), &root, None)
        .ok();
    assert_eq!(rotated["primaryVersion"], 2, "{rotated}");
    assert_eq!(rotated["versions"][1]["protection"], "HSM");
    let (_, v) = sign_and_check(&d, &root, &rotated, msg);
    assert_eq!(v, 2);
    let verify = |version: u32, sig: &[u8]| {
        d.kms("POST",
            &format!("keys/{rsa_id}/verify"),
            &root,
            Some(
                json!({"message": B64.encode(msg), "signature": B64.encode(sig), "version": version}),
            ),
        )
    };
    assert_eq!(verify(1, &rsa_sig1).ok()["valid"], true);
    assert_eq!(verify(2, &rsa_sig1).ok()["valid"], false);

    // A disabled version refuses; enabled again, it works.
    d.kms(
        "POST",
        &format!("keys/{rsa_id}/versions/1/disable"),
        &root,
        None,
    )
    .ok();
    d.kms_sign(&root, rsa_id, msg, Some(1))
        .problem(409, "KEY_VERSION_DISABLED");
    verify(1, &rsa_sig1).problem(409, "KEY_VERSION_DISABLED");
    d.kms_sign(&root, rsa_id, msg, Some(2)).ok();
    d.kms(
        "POST",
        &format!("keys/{rsa_id}/versions/1/enable"),
        &root,
        None,
    )
    .ok();
    d.kms_sign(&root, rsa_id, msg, Some(1)).ok();

    // AES inside the HSM.
    let aes = d.kms_create_key(&root, "app-aes", "AES_256");
    assert_eq!(aes["protection"], "HSM");
    let aes_id = aes["id"].as_str().unwrap();
    let ct = d.kms_encrypt(&root, aes_id, b"secret bytes").ok();
    let pt = d.kms_decrypt(&root, aes_id, &ct["ciphertext"]).ok();
    assert_eq!(pt["plaintext"], B64.encode(b"secret bytes"));

    // Destruction: pending, cancellable, then gone after its window.
    let ec_id = ec["id"].as_str().unwrap();
    let pending = d
        .kms(
            "POST",
            &format!("keys/{ec_id}/schedule-destruction"),
            &root,
            Some(json!({"pendingWindowSeconds": 3600})),
        )
        .ok();
    assert_eq!(pending["state"], "PENDING_DESTRUCTION", "{pending}");
    d.kms_sign(&root, ec_id, msg, None)
        .problem(409, "KEY_PENDING_DESTRUCTION");
    d.kms(
        "POST",
        &format!("keys/{ec_id}/cancel-destruction"),
        &root,
        None,
    )
    .ok();
    d.kms_sign(&root, ec_id, msg, None).ok();
    d.kms(
        "POST",
        &format!("keys/{ec_id}/schedule-destruction"),
        &root,
        Some(json!({"pendingWindowSeconds": 1})),
    )
    .ok();
    poll_until(DEADLINE, "the key to be destroyed", || {
        (d.kms("GET", &format!("keys/{ec_id}"), &root, None).status == 404).then_some(())
    });
    d.kms_sign(&root, ec_id, msg, None)
        .problem(404, "KEY_NOT_FOUND");
    let list = d.kms("GET", "keys", &root, None).ok();
    assert!(!list.to_string().contains(ec_id), "{list}");
    // And a restart does not bring it back.
    d.restart_after_kill9();
    d.wait_unsealed();
    d.kms("GET", &format!("keys/{ec_id}"), &root, None)
        .problem(404, "KEY_NOT_FOUND");
    d.kms_sign(&root, rsa_id, msg, None).ok();
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
    let app = d.kms_create_key(&root, "app-signer", "EC_P256");
    let db = d.kms_create_key(&root, "db-key", "EC_P256");
    let (app_id, db_id) = (app["id"].as_str().unwrap(), db["id"].as_str().unwrap());

    // Read-only: lists and reads, cannot rotate or sign.
    let reader = d.kms_token_with_scopes(&root, &["keys:read"]);
    let list = d.kms("GET", "keys", &reader, None).ok();
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "{list}");
    d.kms("GET", &format!("keys/{db_id}"), &reader, None).ok();
    let p = d
        .kms("POST", &format!("keys/{app_id}/rotate"), &reader, None)
        .problem(403, "MISSING_SCOPE");
    assert_eq!(p["scope"], "keys:write");
    assert!(p["detail"].as_str().unwrap().contains("keys:write"), "{p}");
    let p = d
        .kms_sign(&reader, app_id, b"m", None)
        .problem(403, "MISSING_SCOPE");
    assert!(p["detail"].as_str().unwrap().contains("keys:use"), "{p}");
    // A token without any scope; and no token at all.
    let plain = d.kms_token_with_scopes(&root, &[]);
    d.kms("GET", "keys", &plain, None)
        .problem(403, "MISSING_SCOPE");
    d.kms("GET", "keys", "", None)
        .problem(401, "UNAUTHENTICATED");
    // A child cannot get scopes its parent lacks (nor, with the default policy, any token).
    let r = d.http(
        "POST",
        "/v1/auth/token/create",
        Some(&reader),
        Body::Json(r#"{"scopes":["keys:write"]}"#),
    );
    assert!(r.status == 400 || r.status == 403, "{r}");

    // Full scopes, attenuated offline to keys named app-*.
    let full = d.kms_token_with_scopes(&root, &["keys:read", "keys:write", "keys:use"]);
    let app_only = attenuate(&full, r#"check if key_name($n), $n.starts_with("app-");"#);
    d.kms_sign(&app_only, app_id, b"m", None).ok();
    d.kms("GET", &format!("keys/{app_id}"), &app_only, None)
        .ok();
    d.kms_sign(&app_only, db_id, b"m", None)
        .problem(403, "ATTENUATION_DENIED");
    d.kms("GET", &format!("keys/{db_id}"), &app_only, None)
        .problem(403, "ATTENUATION_DENIED");
    d.kms("POST", &format!("keys/{db_id}/rotate"), &app_only, None)
        .problem(403, "ATTENUATION_DENIED");
    d.kms(
        "POST",
        "keys",
        &app_only,
        Some(json!({"name": "db-2", "algorithm": "AES_256"})),
    )
    .problem(403, "ATTENUATION_DENIED");
    d.kms(
        "POST",
        "keys",
        &app_only,
        Some(json!({"name": "app-2", "algorithm": "AES_256"})),
    )
    .ok();
    let listed = d.kms("GET", "keys", &app_only, None).ok();
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
    d.kms_sign(&full, db_id, b"m", None).ok();

    // Read-only attenuation.
    let read_only = attenuate(&full, r#"check if operation("read");"#);
    d.kms("GET", &format!("keys/{db_id}"), &read_only, None)
        .ok();
    d.kms_sign(&read_only, db_id, b"m", None)
        .problem(403, "ATTENUATION_DENIED");

    // Expiry: a future one works, a past one is refused.
    let later = attenuate(&full, r#"check if time($t), $t < 2999-01-01T00:00:00Z;"#);
    d.kms_sign(&later, app_id, b"m", None).ok();
    let expired = attenuate(&full, r#"check if time($t), $t < 2020-01-01T00:00:00Z;"#);
    d.kms_sign(&expired, app_id, b"m", None)
        .problem(403, "ATTENUATION_DENIED");
    d.kms("GET", "keys", &expired, None)
        .problem(403, "ATTENUATION_DENIED");

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
    let p = d
        .kms(
            "POST",
            "keys",
            &root,
            Some(json!({"name": "k", "algorithm": "RSA_1024"})),
        )
        .problem(400, "UNKNOWN_ALGORITHM");
    assert!(p["detail"].as_str().unwrap().contains("RSA_2048"), "{p}");
    d.kms("POST", "keys", &root, Some(json!({"algorithm": "AES_256"})))
        .problem(400, "MISSING_FIELD");
    d.kms(
        "POST",
        "keys",
        &root,
        Some(json!({"name": "bad name!", "algorithm": "AES_256"})),
    )
    .problem(400, "INVALID_NAME");
    d.kms(
        "POST",
        "keys",
        &root,
        Some(json!({"name": "k", "algorithm": "EC_P256", "usage": "ENCRYPT_DECRYPT"})),
    )
    .problem(400, "INVALID_USAGE");
    let r = d.http("POST", "/api/v1/keys", Some(&root), Body::Json("{not json"));
    assert_eq!(r.status, 400, "{r}");
    assert_eq!(r.json()["code"], "MALFORMED_JSON", "{r}");

    let ec = d.kms_create_key(&root, "ec", "EC_P256");
    let ec_id = ec["id"].as_str().unwrap();
    d.kms(
        "POST",
        "keys",
        &root,
        Some(json!({"name": "ec", "algorithm": "EC_P256"})),
    )
    .problem(409, "KEY_NAME_EXISTS");
    let aes = d.kms_create_key(&root, "aes", "AES_256");
    let aes_id = aes["id"].as_str().unwrap();
    // Wrong key type for the operation.
    let p = d
        .kms(
            "POST",
            &format!("keys/{ec_id}/encrypt"),
            &root,
            Some(json!({"plaintext": "aGk="})),
        )
        .problem(400, "UNSUPPORTED_OPERATION");
    assert!(
        p["detail"].as_str().unwrap().contains("cannot encrypt"),
        "{p}"
    );
    d.kms_sign(&root, aes_id, b"m", None)
        .problem(400, "UNSUPPORTED_OPERATION");
    // Malformed base64, malformed ids, missing versions.
    d.kms(
        "POST",
        &format!("keys/{ec_id}/sign"),
        &root,
        Some(json!({"message": "***"})),
    )
    .problem(400, "INVALID_BASE64");
    d.kms("GET", "keys/not-a-uuid", &root, None)
        .problem(400, "INVALID_KEY_ID");
    d.kms(
        "GET",
        "keys/6f1c1b9e-0000-4000-8000-000000000000",
        &root,
        None,
    )
    .problem(404, "KEY_NOT_FOUND");
    d.kms_sign(&root, ec_id, b"m", Some(9))
        .problem(404, "KEY_VERSION_NOT_FOUND");
    d.kms(
        "POST",
        &format!("keys/{aes_id}/decrypt"),
        &root,
        Some(json!({"ciphertext": B64.encode([0u8; 40])})),
    )
    .problem(400, "DECRYPTION_FAILED");
    // Oversized: a 70 KB message, and a body over the 1 MiB limit.
    d.kms_sign(&root, ec_id, &vec![7u8; 70_000], None)
        .problem(413, "PAYLOAD_TOO_LARGE");
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
    d.kms("GET", "keys?pageSize=0", &root, None)
        .problem(400, "INVALID_PAGE_SIZE");
    d.kms(
        "POST",
        &format!("keys/{ec_id}/schedule-destruction"),
        &root,
        Some(json!({"pendingWindowSeconds": 0})),
    )
    .problem(400, "INVALID_PENDING_WINDOW");
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
        let k = d.kms_create_key(
            &root,
            &format!("sw-{}", alg.to_lowercase().replace('_', "-")),
            alg,
        );
        assert_eq!(k["protection"], "SOFTWARE", "{k}");
        let id = k["id"].as_str().unwrap();
        let r = d.kms_sign(&root, id, msg, None).ok();
        let sig = B64.decode(r["signature"].as_str().unwrap()).unwrap();
        if alg != "EC_P384" {
            assert!(
                openssl_verifies(k["publicKeyPem"].as_str().unwrap(), msg, &sig),
                "{alg}"
            );
        }
        let v = d
            .kms(
                "POST",
                &format!("keys/{id}/verify"),
                &root,
                Some(json!({"message": B64.encode(msg), "signature": r["signature"]})),
            )
            .ok();
        assert_eq!(v["valid"], true, "{alg}");
    }
    // Post-quantum: never exportable; ML-DSA signs and verifies, ML-KEM round-trips.
    let pq = d.kms_create_key(&root, "pq-sign", "ML_DSA_65");
    assert_eq!(pq["exportable"], false);
    assert!(
        pq["publicKey"].is_string() && pq.get("publicKeyPem").is_none(),
        "{pq}"
    );
    let id = pq["id"].as_str().unwrap();
    let s = d.kms_sign(&root, id, msg, None).ok();
    let v = d
        .kms(
            "POST",
            &format!("keys/{id}/verify"),
            &root,
            Some(json!({"message": B64.encode(msg), "signature": s["signature"]})),
        )
        .ok();
    assert_eq!(v["valid"], true);
    let v = d
        .kms(
            "POST",
            &format!("keys/{id}/verify"),
            &root,
            Some(json!({"message": B64.encode(b"other"), "signature": s["signature"]})),
        )
        .ok();
    assert_eq!(v["valid"], false);
    for alg in ["ML_KEM_768", "AES_256", "RSA_3072"] {
        let k = d.kms("POST",
            "keys",
            &root,
            Some(
                json!({"name": format!("enc-{}", alg.to_lowercase().replace('_', "-")), "algorithm": alg, "usage": "ENCRYPT_DECRYPT"}),
            ),
        ).ok();
        let id = k["id"].as_str().unwrap();
        let ct = d.kms_encrypt(&root, id, b"pq secret").ok();
        let pt = d.kms_decrypt(&root, id, &ct["ciphertext"]).ok();
        assert_eq!(pt["plaintext"], B64.encode(b"pq secret"), "{alg}");
    }
    // Pagination and filters.
    let page = d.kms("GET", "keys?pageSize=2", &root, None).ok();
    assert_eq!(page["keys"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap();
    let next = d
        .kms(
            "GET",
            &format!("keys?pageSize=2&pageToken={token}"),
            &root,
            None,
        )
        .ok();
    assert_eq!(next["keys"].as_array().unwrap().len(), 2);
    assert_ne!(page["keys"][0]["id"], next["keys"][0]["id"]);
    let ec = d.kms("GET", "keys?algorithm=EC_P256", &root, None).ok();
    assert_eq!(ec["keys"].as_array().unwrap().len(), 1, "{ec}");
    let named = d.kms("GET", "keys?name=enc-", &root, None).ok();
    assert_eq!(named["keys"].as_array().unwrap().len(), 3, "{named}");
}
