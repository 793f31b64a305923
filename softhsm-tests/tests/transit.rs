//! Transit, end to end: the Clever KMS transcript through the bao CLI, every key type's
//! signatures and HMACs checked by a second implementation (Python `cryptography`) from
//! the public key the API returns, minimum versions and trim, batches mixing good and
//! bad items, bad input answered 400 with a clear message, ACLs, and scheduled rotation
//! across a restart.

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use softhsm_tests::tools::{python, run_ok};
use softhsm_tests::{poll_until, reference_mode, Body, Daemon, HttpResponse};

const DECRYPT_FAILED: &str = "Unable to decrypt the secret";

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `echo "my secret data" | base64`, as in the transcript.
fn secret_b64() -> String {
    b64(b"my secret data\n")
}

/// The `data` of a 200 answer.
#[track_caller]
fn data(r: &HttpResponse) -> Value {
    assert_eq!(r.status, 200, "{r}");
    r.json()["data"].clone()
}

#[track_caller]
fn create_key(d: &Daemon, name: &str, body: Value) {
    let r = d.post_json(&format!("/v1/transit/keys/{name}"), &body);
    assert_eq!(r.status, 200, "{r}");
}

fn read_key(d: &Daemon, name: &str) -> Value {
    data(&d.get(&format!("/v1/transit/keys/{name}")))
}

fn encrypt(d: &Daemon, key: &str, plaintext: &[u8]) -> String {
    let r = d.post_json(
        &format!("/v1/transit/encrypt/{key}"),
        &json!({ "plaintext": b64(plaintext) }),
    );
    data(&r)["ciphertext"].as_str().unwrap().to_string()
}

fn decrypt(d: &Daemon, key: &str, ciphertext: &str) -> HttpResponse {
    d.post_json(
        &format!("/v1/transit/decrypt/{key}"),
        &json!({ "ciphertext": ciphertext }),
    )
}

/// Checks signatures and HMACs with Python `cryptography` and `hmac`, knowing only
/// public keys (and, for HMACs, the exported HMAC key). One line of output: a JSON list
/// of booleans, one per case.
const VERIFIER: &str = r#"
import base64, hashlib, hmac, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils

H = {"sha1": hashes.SHA1, "sha2-224": hashes.SHA224, "sha2-256": hashes.SHA256,
     "sha2-384": hashes.SHA384, "sha2-512": hashes.SHA512, "sha3-224": hashes.SHA3_224,
     "sha3-256": hashes.SHA3_256, "sha3-384": hashes.SHA3_384, "sha3-512": hashes.SHA3_512}
L = {"sha1": hashlib.sha1, "sha2-224": hashlib.sha224, "sha2-256": hashlib.sha256,
     "sha2-384": hashlib.sha384, "sha2-512": hashlib.sha512, "sha3-224": hashlib.sha3_224,
     "sha3-256": hashlib.sha3_256, "sha3-384": hashlib.sha3_384, "sha3-512": hashlib.sha3_512}

def unb64(s):
    s = s + "=" * (-len(s) % 4)
    return base64.urlsafe_b64decode(s) if ("-" in s or "_" in s) else base64.b64decode(s)

def check(c):
    data = unb64(c["input"])
    if c["kind"] == "hmac":
        want = hmac.new(unb64(c["key"]), data, L[c["hash"]]).digest()
        return hmac.compare_digest(want, unb64(c["mac"]))
    sig = unb64(c["signature"])
    try:
        if c["kind"] == "rsa":
            pub = serialization.load_pem_public_key(c["public_key"].encode())
            h = H[c["hash"]]()
            pad = (padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO)
                   if c["scheme"] == "pss" else padding.PKCS1v15())
            pub.verify(sig, data, pad, h)
        elif c["kind"] == "ec":
            pub = serialization.load_pem_public_key(c["public_key"].encode())
            if c["marshaling"] == "jws":
                n = len(sig) // 2
                sig = utils.encode_dss_signature(int.from_bytes(sig[:n], "big"),
                                                 int.from_bytes(sig[n:], "big"))
            pub.verify(sig, data, ec.ECDSA(H[c["hash"]]()))
        elif c["kind"] == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(unb64(c["public_key"])).verify(sig, data)
        else:
            raise ValueError(c["kind"])
        return True
    except InvalidSignature:
        return False

print(json.dumps([check(c) for c in json.load(open(sys.argv[1]))]))
"#;

fn verify_with_python(d: &Daemon, cases: &[Value]) -> Vec<bool> {
    let script = d.dir().join("verify.py");
    let input = d.dir().join("cases.json");
    std::fs::write(&script, VERIFIER).unwrap();
    std::fs::write(&input, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = run_ok(Command::new(python()).arg(&script).arg(&input));
    serde_json::from_str(&out).unwrap()
}

/// The signature bytes of `vault:v<N>:<base64>`, as base64 (either alphabet).
fn sig_body(sig: &str) -> String {
    sig.splitn(3, ':').nth(2).unwrap().to_string()
}

#[test]
fn clever_kms_transit_transcript() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();

    // vault write -f transit/keys/my-key: the new key, as OpenBao shows it (the Clever
    // KMS transcript's "Success! Data written" came from a server answering 204).
    let out = d.bao(&["write", "-f", "transit/keys/my-key"]).ok();
    assert_eq!(out.field("latest_version").as_deref(), Some("1"), "{out}");
    assert_eq!(out.field("type").as_deref(), Some("aes256-gcm96"), "{out}");

    // Encrypting twice gives two different ciphertexts.
    let plaintext = format!("plaintext={}", secret_b64());
    let first = d.bao(&["write", "transit/encrypt/my-key", &plaintext]).ok();
    let second = d.bao(&["write", "transit/encrypt/my-key", &plaintext]).ok();
    let (c1, c2) = (
        first.field("ciphertext").expect("a ciphertext row"),
        second.field("ciphertext").expect("a ciphertext row"),
    );
    assert!(
        c1.starts_with("vault:v1:") && c2.starts_with("vault:v1:"),
        "{first}\n{second}"
    );
    assert_ne!(c1, c2);

    // Both decrypt to the plaintext, also written URL-safe as the transcript shows.
    for ct in [&c1, &c2] {
        let out = d
            .bao(&[
                "write",
                "transit/decrypt/my-key",
                &format!("ciphertext={ct}"),
            ])
            .ok();
        assert_eq!(
            out.field("plaintext").as_deref(),
            Some("bXkgc2VjcmV0IGRhdGEK"),
            "{out}"
        );
        let url_safe = ct.replace('+', "-").replace('/', "_");
        if !reference_mode() {
            let r = decrypt(&d, "my-key", &url_safe);
            assert_eq!(data(&r)["plaintext"], "bXkgc2VjcmV0IGRhdGEK");
        }
    }
    let decoded = STANDARD.decode("bXkgc2VjcmV0IGRhdGEK").unwrap();
    assert_eq!(decoded, b"my secret data\n");

    // A key that does not exist and another existing key: the same 400.
    d.bao(&["write", "-f", "transit/keys/my-key2"]).ok();
    let mut bodies = Vec::new();
    for name in ["not-existing", "my-key2"] {
        let out = d.bao(&[
            "write",
            &format!("transit/decrypt/{name}"),
            &format!("ciphertext={c2}"),
        ]);
        assert_eq!(out.status, 2, "{out}");
        assert!(
            out.stderr
                .contains(&format!("Error writing data to transit/decrypt/{name}")),
            "{out}"
        );
        assert!(out.stderr.contains("Code: 400"), "{out}");
        let r = decrypt(&d, name, &c2);
        assert_eq!(r.status, 400, "{r}");
        if !reference_mode() {
            assert!(out.stderr.contains(DECRYPT_FAILED), "{out}");
            assert_eq!(r.errors(), vec![DECRYPT_FAILED.to_string()], "{r}");
        }
        bodies.push(r.body);
    }
    if !reference_mode() {
        assert_eq!(bodies[0], bodies[1], "the two answers must be identical");
    }
    // Probing did not create the missing key.
    assert_eq!(d.get("/v1/transit/keys/not-existing").status, 404);

    // Rotate: new ciphertexts are v2, both versions decrypt.
    let v1 = d
        .bao(&[
            "write",
            "-field=ciphertext",
            "transit/encrypt/my-key",
            &plaintext,
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(v1.starts_with("vault:v1:"), "{v1}");
    let out = d.bao(&["write", "-f", "transit/keys/my-key/rotate"]).ok();
    assert_eq!(out.field("latest_version").as_deref(), Some("2"), "{out}");
    let out = d.bao(&["write", "transit/encrypt/my-key", &plaintext]).ok();
    let v2 = out.field("ciphertext").unwrap();
    assert!(v2.starts_with("vault:v2:"), "{out}");
    for ct in [&v1, &v2] {
        let out = d
            .bao(&[
                "write",
                "transit/decrypt/my-key",
                &format!("ciphertext={ct}"),
            ])
            .ok();
        assert_eq!(
            out.field("plaintext").as_deref(),
            Some("bXkgc2VjcmV0IGRhdGEK"),
            "{out}"
        );
    }

    // Rewrap v1 to v2; the rewrapped ciphertext decrypts.
    let out = d
        .bao(&[
            "write",
            "transit/rewrap/my-key",
            &format!("ciphertext={v1}"),
        ])
        .ok();
    let rewrapped = out.field("ciphertext").unwrap();
    assert!(rewrapped.starts_with("vault:v2:"), "{out}");
    assert_ne!(rewrapped, v2);
    let out = d
        .bao(&[
            "write",
            "transit/decrypt/my-key",
            &format!("ciphertext={rewrapped}"),
        ])
        .ok();
    assert_eq!(
        out.field("plaintext").as_deref(),
        Some("bXkgc2VjcmV0IGRhdGEK"),
        "{out}"
    );

    // The key as Vault shows it.
    let key = read_key(&d, "my-key");
    assert_eq!(key["type"], "aes256-gcm96");
    assert_eq!(key["latest_version"], 2);
    assert_eq!(key["min_decryption_version"], 1);
    assert!(
        key["keys"]["1"].is_number() && key["keys"]["2"].is_number(),
        "{key}"
    );
    assert_eq!(key["supports_encryption"], true);
    assert_eq!(key["supports_signing"], false);
    let list = d.bao(&["list", "-format=json", "transit/keys"]).ok().json();
    assert_eq!(list, json!(["my-key", "my-key2"]));
}

#[test]
fn signatures_and_hmacs_verify_independently() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    let hashes = [
        "sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384",
        "sha3-512",
    ];
    let message = b"The quick brown fox jumps over the lazy dog";
    let input = b64(message);
    let mut cases = Vec::new();
    let mut expect = Vec::new();

    for kind in [
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "ecdsa-p256",
        "ecdsa-p384",
        "ed25519",
    ] {
        create_key(&d, kind, json!({ "type": kind }));
        let key = read_key(&d, kind);
        assert_eq!(key["supports_signing"], true, "{key}");
        assert_eq!(key["latest_version"], 1);
        let public = key["keys"]["1"]["public_key"].as_str().unwrap().to_string();
        let shown_name = key["keys"]["1"]["name"].as_str().unwrap().to_string();
        assert!(key["keys"]["1"]["creation_time"]
            .as_str()
            .unwrap()
            .contains('T'));

        let variants: Vec<(&str, Value)> = if kind.starts_with("rsa") {
            assert_eq!(shown_name, kind);
            assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
            hashes
                .iter()
                .flat_map(|h| {
                    ["pss", "pkcs1v15"].map(|s| (*h, json!({ "signature_algorithm": s })))
                })
                .collect()
        } else if kind.starts_with("ecdsa") {
            assert_eq!(
                shown_name,
                if kind == "ecdsa-p256" {
                    "P-256"
                } else {
                    "P-384"
                }
            );
            hashes
                .iter()
                .flat_map(|h| ["asn1", "jws"].map(|m| (*h, json!({ "marshaling_algorithm": m }))))
                .collect()
        } else {
            assert_eq!(shown_name, "ed25519");
            vec![("sha2-256", json!({}))]
        };

        for (hash, extra) in variants {
            let mut body = extra.clone();
            body["input"] = json!(input);
            let s = data(&d.post_json(&format!("/v1/transit/sign/{kind}/{hash}"), &body));
            let sig = s["signature"].as_str().unwrap().to_string();
            assert!(sig.starts_with("vault:v1:"), "{s}");
            assert_eq!(s["key_version"], 1);

            // The API verifies its own signature, and refuses it for other input.
            let mut check = extra.clone();
            check["input"] = json!(input);
            check["signature"] = json!(sig);
            let v = data(&d.post_json(&format!("/v1/transit/verify/{kind}/{hash}"), &check));
            assert_eq!(v["valid"], true, "{kind} {hash} {extra}");
            check["input"] = json!(b64(b"something else"));
            let v = data(&d.post_json(&format!("/v1/transit/verify/{kind}/{hash}"), &check));
            assert_eq!(v["valid"], false, "{kind} {hash} {extra}");

            let family = if kind.starts_with("rsa") {
                "rsa"
            } else if kind.starts_with("ecdsa") {
                "ec"
            } else {
                "ed25519"
            };
            cases.push(json!({
                "kind": family,
                "public_key": public,
                "hash": hash,
                "scheme": extra.get("signature_algorithm").cloned().unwrap_or(json!("pss")),
                "marshaling": extra.get("marshaling_algorithm").cloned().unwrap_or(json!("asn1")),
                "input": input,
                "signature": sig_body(&sig),
            }));
            expect.push(true);
            // A signature over other data must not verify for Python either.
            cases.push(json!({
                "kind": family, "public_key": public, "hash": hash,
                "scheme": extra.get("signature_algorithm").cloned().unwrap_or(json!("pss")),
                "marshaling": extra.get("marshaling_algorithm").cloned().unwrap_or(json!("asn1")),
                "input": b64(b"tampered"), "signature": sig_body(&sig),
            }));
            expect.push(false);
        }
    }

    // The CLI path: `bao write transit/sign/...` then `transit/verify/...`.
    let out = d
        .bao(&[
            "write",
            "-format=json",
            "transit/sign/ecdsa-p384/sha2-384",
            &format!("input={input}"),
        ])
        .ok();
    let sig = out.json()["data"]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let out = d
        .bao(&[
            "write",
            "transit/verify/ecdsa-p384/sha2-384",
            &format!("input={input}"),
            &format!("signature={sig}"),
        ])
        .ok();
    assert_eq!(out.field("valid").as_deref(), Some("true"), "{out}");

    // Prehashed input and hash_algorithm=none.
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(message).to_vec()
    };
    let s = data(&d.post_json(
        "/v1/transit/sign/rsa-2048",
        &json!({ "input": b64(&digest), "prehashed": true, "signature_algorithm": "pkcs1v15" }),
    ));
    let rsa_public = read_key(&d, "rsa-2048")["keys"]["1"]["public_key"].clone();
    cases.push(json!({
        "kind": "rsa", "public_key": rsa_public, "hash": "sha2-256", "scheme": "pkcs1v15",
        "marshaling": "asn1", "input": input,
        "signature": sig_body(s["signature"].as_str().unwrap()),
    }));
    expect.push(true);

    // HMACs, with an hmac key and with the HMAC key an AES key carries; Python gets the
    // key through export (allowed: both are exportable).
    create_key(
        &d,
        "mac",
        json!({ "type": "hmac", "key_size": 48, "exportable": true }),
    );
    create_key(&d, "aes-mac", json!({ "exportable": true }));
    for name in ["mac", "aes-mac"] {
        let exported = data(&d.get(&format!("/v1/transit/export/hmac-key/{name}/1")));
        let mac_key = exported["keys"]["1"].as_str().unwrap().to_string();
        if name == "mac" {
            assert_eq!(STANDARD.decode(&mac_key).unwrap().len(), 48);
        }
        for hash in hashes {
            let h = data(&d.post_json(
                &format!("/v1/transit/hmac/{name}/{hash}"),
                &json!({ "input": input }),
            ));
            let tag = h["hmac"].as_str().unwrap().to_string();
            assert!(tag.starts_with("vault:v1:"), "{h}");
            let v = data(&d.post_json(
                &format!("/v1/transit/verify/{name}/{hash}"),
                &json!({ "input": input, "hmac": tag }),
            ));
            assert_eq!(v["valid"], true, "{name} {hash}");
            cases.push(json!({
                "kind": "hmac", "key": mac_key, "hash": hash, "input": input,
                "mac": sig_body(&tag),
            }));
            expect.push(true);
        }
    }

    let got = verify_with_python(&d, &cases);
    assert_eq!(got.len(), expect.len());
    for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
        assert_eq!(g, e, "case {i}: {}", cases[i]);
    }
}

#[test]
fn min_decryption_version_and_trim() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    create_key(&d, "k", json!({}));
    let v1 = encrypt(&d, "k", b"one");
    d.bao(&["write", "-f", "transit/keys/k/rotate"]).ok();
    let v2 = encrypt(&d, "k", b"two");
    d.bao(&["write", "-f", "transit/keys/k/rotate"]).ok();
    assert!(v2.starts_with("vault:v2:"));

    // Refuse v1 ciphertexts, keep them in storage.
    let key = data(&d.post_json(
        "/v1/transit/keys/k/config",
        &json!({ "min_decryption_version": 2 }),
    ));
    assert_eq!(key["min_decryption_version"], 2, "{key}");
    let r = decrypt(&d, "k", &v1);
    assert_eq!(r.status, 400, "{r}");
    if !reference_mode() {
        assert_eq!(r.errors(), vec![DECRYPT_FAILED.to_string()]);
    }
    assert_eq!(data(&decrypt(&d, "k", &v2))["plaintext"], b64(b"two"));

    // Trim needs min_encryption_version; then version 1 is gone for good.
    let r = d.post_json(
        "/v1/transit/keys/k/trim",
        &json!({ "min_available_version": 2 }),
    );
    r.assert_error(400, "minimum encryption version is not set");
    data(&d.post_json(
        "/v1/transit/keys/k/config",
        &json!({ "min_encryption_version": 2 }),
    ));
    let key = data(&d.post_json(
        "/v1/transit/keys/k/trim",
        &json!({ "min_available_version": 2 }),
    ));
    assert_eq!(key["min_available_version"], 2, "{key}");
    let key = read_key(&d, "k");
    let versions: Vec<&String> = key["keys"].as_object().unwrap().keys().collect();
    assert_eq!(versions, vec!["2", "3"], "{key}");
    let r = d.post_json(
        "/v1/transit/keys/k/config",
        &json!({ "min_decryption_version": 1 }),
    );
    r.assert_error(400, "min available version");
    assert_eq!(decrypt(&d, "k", &v1).status, 400);
    // Encrypting with a version below min_encryption_version is refused.
    let r = d.post_json(
        "/v1/transit/encrypt/k",
        &json!({ "plaintext": b64(b"x"), "key_version": 1 }),
    );
    r.assert_error(400, "less than the minimum encryption key version");
    let r = d.post_json(
        "/v1/transit/keys/k/trim",
        &json!({ "min_available_version": 1 }),
    );
    r.assert_error(400, "cannot be decremented");

    // Delete needs deletion_allowed.
    let r = d.http(
        "DELETE",
        "/v1/transit/keys/k",
        d.token.as_deref(),
        Body::None,
    );
    r.assert_error(400, "deletion is not allowed for this key");
    data(&d.post_json(
        "/v1/transit/keys/k/config",
        &json!({ "deletion_allowed": true }),
    ));
    let r = d.http(
        "DELETE",
        "/v1/transit/keys/k",
        d.token.as_deref(),
        Body::None,
    );
    assert_eq!(r.status, 204, "{r}");
    assert_eq!(d.get("/v1/transit/keys/k").status, 404);
}

#[test]
fn batches_mix_valid_and_invalid_items() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    // Encrypt creates the key; the bad items get errors, the good ones ciphertexts.
    // Items without a plaintext or with one of the wrong type are Ironseal's per-item
    // errors; OpenBao fails the whole batch with a 500 for those, so the reference run
    // sends two more items with bad base64 instead.
    let (c, dd) = if reference_mode() {
        (
            json!({ "plaintext": "???", "reference": "c" }),
            json!({ "plaintext": "&&", "reference": "d" }),
        )
    } else {
        (
            json!({ "reference": "c" }),
            json!({ "plaintext": 42, "reference": "d" }),
        )
    };
    let r = d.post_json(
        "/v1/transit/encrypt/batch",
        &json!({ "batch_input": [
            { "plaintext": b64(b"alpha"), "reference": "a" },
            { "plaintext": "!!not base64!!", "reference": "b" },
            c,
            dd,
            { "plaintext": b64(b"omega"), "reference": "e" },
        ]}),
    );
    assert_eq!(r.status, 400, "Vault answers 400 when an item failed: {r}");
    let results = r.json()["data"]["batch_results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 5, "{r}");
    let refs: Vec<&str> = results
        .iter()
        .map(|x| x["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["a", "b", "c", "d", "e"]);
    for i in [1, 2, 3] {
        assert!(
            results[i]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{r}"
        );
        assert!(results[i].get("ciphertext").is_none(), "{r}");
    }
    if !reference_mode() {
        assert!(
            results[1]["error"]
                .as_str()
                .unwrap()
                .contains("illegal base64 data"),
            "{r}"
        );
        assert_eq!(results[2]["error"], "missing plaintext to encrypt", "{r}");
    }
    let a = results[0]["ciphertext"].as_str().unwrap().to_string();
    let e = results[4]["ciphertext"].as_str().unwrap().to_string();
    assert_eq!(results[0]["key_version"], 1);

    // With partial_failure_response_code the caller picks the status of partial success.
    let r = d.post_json(
        "/v1/transit/encrypt/batch",
        &json!({ "partial_failure_response_code": 200, "batch_input": [
            { "plaintext": b64(b"x") }, { "plaintext": "***" },
        ]}),
    );
    assert_eq!(r.status, 200, "{r}");

    // Decrypt: good, tampered, malformed, missing; the good ones decrypt.
    let mut tampered = STANDARD.decode(a.trim_start_matches("vault:v1:")).unwrap();
    tampered[20] ^= 1;
    let r = d.post_json(
        "/v1/transit/decrypt/batch",
        &json!({ "batch_input": [
            { "ciphertext": a },
            { "ciphertext": format!("vault:v1:{}", b64(&tampered)) },
            { "ciphertext": "vault:v1:%%%" },
            { "ciphertext": "" },
            { "ciphertext": e },
        ]}),
    );
    assert_eq!(r.status, 400, "{r}");
    let results = r.json()["data"]["batch_results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results[0]["plaintext"], b64(b"alpha"));
    assert_eq!(results[4]["plaintext"], b64(b"omega"));
    for i in [1, 2, 3] {
        assert!(
            results[i]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{r}"
        );
    }
    if !reference_mode() {
        assert_eq!(results[1]["error"], DECRYPT_FAILED);
        assert!(results[2]["error"]
            .as_str()
            .unwrap()
            .contains("could not decode base64"));
        assert_eq!(results[3]["error"], "missing ciphertext to decrypt");
    }
    // Mixing items with and without context fails the whole request.
    let r = d.post_json(
        "/v1/transit/decrypt/batch",
        &json!({ "batch_input": [{ "ciphertext": a, "context": b64(b"c") }, { "ciphertext": e }] }),
    );
    r.assert_error(
        400,
        "context should be set either in all the request blocks or in none",
    );

    // Rewrap after a rotation: 200, per-item errors.
    d.bao(&["write", "-f", "transit/keys/batch/rotate"]).ok();
    let r = d.post_json(
        "/v1/transit/rewrap/batch",
        &json!({ "batch_input": [{ "ciphertext": a }, { "ciphertext": "nope" }] }),
    );
    let results = data(&r)["batch_results"].as_array().unwrap().clone();
    assert!(results[0]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v2:"));
    assert!(results[1]["error"].as_str().is_some());

    // Sign and HMAC batches answer 200 with per-item errors.
    create_key(&d, "signer", json!({ "type": "ed25519" }));
    let r = d.post_json("/v1/transit/sign/signer",
        &json!({ "batch_input": [{ "input": b64(b"m1") }, { "input": "@@" }, { "input": b64(b"m2") }] }),
    );
    let results = data(&r)["batch_results"].as_array().unwrap().clone();
    assert!(results[0]["signature"]
        .as_str()
        .unwrap()
        .starts_with("vault:v1:"));
    assert!(
        results[1]["error"].as_str().unwrap().contains("base64"),
        "{r}"
    );
    let sigs: Vec<Value> = [
        (b"m1" as &[u8], &results[0]),
        (b"m2", &results[2]),
        (b"m3", &results[2]),
    ]
    .iter()
    .map(|(m, r)| json!({ "input": b64(m), "signature": r["signature"] }))
    .collect();
    let r = d.post_json("/v1/transit/verify/signer", &json!({ "batch_input": sigs }));
    let valid: Vec<Value> = data(&r)["batch_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["valid"].clone())
        .collect();
    assert_eq!(valid, vec![json!(true), json!(true), json!(false)]);
    let r = d.post_json(
        "/v1/transit/hmac/signer",
        &json!({ "batch_input": [{ "input": b64(b"x") }, { "input": "??" }] }),
    );
    let results = data(&r)["batch_results"].as_array().unwrap().clone();
    assert!(results[0]["hmac"]
        .as_str()
        .unwrap()
        .starts_with("vault:v1:"));
    assert!(results[1]["error"].as_str().is_some());
}

#[test]
fn bad_input_is_a_clear_400_never_a_500() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    create_key(&d, "aes", json!({}));
    create_key(&d, "ec", json!({ "type": "ecdsa-p256" }));
    let good = encrypt(&d, "aes", b"payload");
    let raw = STANDARD
        .decode(good.trim_start_matches("vault:v1:"))
        .unwrap();
    let mut tampered = raw.clone();
    tampered[13] ^= 0x40;
    let truncated = format!("vault:v1:{}", b64(&raw[..raw.len() - 3]));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "decrypt/aes",
            json!({ "ciphertext": "vault:v1:not*base64" }),
            "invalid ciphertext: could not decode base64",
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": "vault:v1:AAAA" }),
            "invalid ciphertext length",
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": truncated }),
            DECRYPT_FAILED,
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": format!("vault:v1:{}", b64(&tampered)) }),
            DECRYPT_FAILED,
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": good.replace("vault:v1:", "vault:v9:") }),
            DECRYPT_FAILED,
        ),
        // Fixed payloads: a random one starting with "v" would match the "vault:v"
        // prefix and take the next refusal, as it does in OpenBao.
        (
            "decrypt/aes",
            json!({ "ciphertext": format!("vault:{}", b64(&raw).replace('v', "A")) }),
            "invalid ciphertext: no prefix",
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": "vault:vQUFBQUFB" }),
            "invalid ciphertext: wrong number of fields",
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": good.replace("vault:v1:", "vault:vX:") }),
            "version number could not be decoded",
        ),
        (
            "decrypt/aes",
            json!({ "ciphertext": good.replace("vault:v1:", "kms:v1:") }),
            "invalid ciphertext: no prefix",
        ),
        ("decrypt/aes", json!({}), "missing ciphertext to decrypt"),
        ("decrypt/ec", json!({ "ciphertext": good }), DECRYPT_FAILED),
        (
            "encrypt/aes",
            json!({ "plaintext": "%%%" }),
            "illegal base64 data at input byte 0",
        ),
        ("encrypt/aes", json!({}), "missing plaintext to encrypt"),
        (
            "encrypt/ec",
            json!({ "plaintext": b64(b"x") }),
            "message encryption not supported for key type ecdsa-p256",
        ),
        (
            "encrypt/aes",
            json!({ "plaintext": b64(b"x"), "key_version": 7 }),
            "higher than the latest key version",
        ),
        (
            "encrypt/new-ec",
            json!({ "plaintext": b64(b"x"), "type": "ecdsa-p256" }),
            "key type ecdsa-p256 not supported for this operation",
        ),
        (
            "sign/aes",
            json!({ "input": b64(b"x") }),
            "key type aes256-gcm96 does not support signing",
        ),
        (
            "sign/ec",
            json!({ "input": b64(b"x"), "hash_algorithm": "md5" }),
            "invalid hash algorithm \"md5\"",
        ),
        (
            "sign/ec",
            json!({ "input": b64(b"x"), "marshaling_algorithm": "pem" }),
            "invalid marshaling type",
        ),
        (
            "sign/nokey",
            json!({ "input": b64(b"x") }),
            "signing key not found",
        ),
        (
            "verify/ec",
            json!({ "input": b64(b"x") }),
            "neither a 'signature' nor an 'hmac' were given to verify",
        ),
        (
            "verify/ec",
            json!({ "input": b64(b"x"), "signature": "sig" }),
            "invalid signature: no prefix",
        ),
        (
            "verify/ec",
            json!({ "input": b64(b"x"), "signature": "vault:v1:AAAA" }),
            "supplied signature is invalid",
        ),
        (
            "hmac/aes",
            json!({ "input": b64(b"x"), "algorithm": "sha9" }),
            "unsupported algorithm",
        ),
        ("keys/odd", json!({ "type": "des" }), "unknown key type des"),
        (
            "keys/conv",
            json!({ "convergent_encryption": true }),
            "convergent encryption requires derivation",
        ),
        (
            "keys/rot",
            json!({ "auto_rotate_period": "5m" }),
            "auto rotate period must be 0 to disable or at least an hour",
        ),
        (
            "keys/aes/config",
            json!({ "min_decryption_version": 5 }),
            "latest key version is 1",
        ),
        ("keys/aes/trim", json!({}), "missing min_available_version"),
        ("keys/nokey/rotate", json!({}), "key not found"),
        (
            "datakey/raw/aes",
            json!({}),
            "Invalid path, must be 'plaintext' or 'wrapped'",
        ),
        (
            "datakey/plaintext/aes",
            json!({ "bits": 7 }),
            "invalid bit length",
        ),
        ("random/0", json!({}), "'bytes' cannot be less than 1"),
        (
            "random/platform/9999999",
            json!({}),
            "'bytes' should be less than",
        ),
        (
            "random",
            json!({ "format": "base32" }),
            "unsupported encoding format",
        ),
        (
            "hash/sha2-256",
            json!({ "input": b64(b"x"), "format": "octal" }),
            "unsupported encoding format",
        ),
        (
            "hash/md5",
            json!({ "input": b64(b"x") }),
            "unsupported algorithm",
        ),
    ];
    for (path, body, message) in cases {
        let r = d.post_json(&format!("/v1/transit/{path}"), &body);
        assert!(r.status < 500, "{r}");
        if reference_mode() {
            continue;
        }
        r.assert_error(400, message);
    }
    // Export of key material that is not exportable; unknown export types.
    let r = d.get("/v1/transit/export/encryption-key/aes");
    assert!(r.status < 500, "{r}");
    r.assert_error(400, "private key material is not exportable");
    d.get("/v1/transit/export/secret-key/aes")
        .assert_error(400, "invalid export type: secret-key");
    assert_eq!(d.get("/v1/transit/export/public-key/missing").status, 404);
    // Deleting a key that is not allowed to be deleted.
    d.http(
        "DELETE",
        "/v1/transit/keys/aes",
        d.token.as_deref(),
        Body::None,
    )
    .assert_error(400, "deletion is not allowed for this key");
    // Methods a path does not take.
    assert_eq!(d.get("/v1/transit/encrypt/aes").status, 405);
    assert_eq!(d.get("/v1/transit/decrypt/aes").status, 405);
}

#[test]
fn datakey_random_hash_export_and_derived_keys() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    create_key(&d, "wrap", json!({ "exportable": true }));
    let dk = data(&d.post_json(
        "/v1/transit/datakey/plaintext/wrap",
        &json!({ "bits": 512 }),
    ));
    let plain = dk["plaintext"].as_str().unwrap();
    assert_eq!(STANDARD.decode(plain).unwrap().len(), 64);
    let back = data(&decrypt(&d, "wrap", dk["ciphertext"].as_str().unwrap()));
    assert_eq!(back["plaintext"], plain);
    let wrapped = data(&d.post_json("/v1/transit/datakey/wrapped/wrap", &json!({})));
    assert!(wrapped.get("plaintext").is_none(), "{wrapped}");
    assert_eq!(wrapped["key_version"], 1);

    let r = data(&d.post_json("/v1/transit/random/24", &json!({ "format": "hex" })));
    assert_eq!(r["random_bytes"].as_str().unwrap().len(), 48);
    let r = data(&d.post_json("/v1/transit/random", &json!({})));
    assert_eq!(
        STANDARD
            .decode(r["random_bytes"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    let out = d
        .bao(&[
            "write",
            "-field=sum",
            "transit/hash/sha2-256",
            &format!("input={}", b64(b"abc")),
        ])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let r = data(&d.post_json(
        "/v1/transit/hash",
        &json!({ "input": b64(b"abc"), "algorithm": "sha3-256", "format": "base64" }),
    ));
    assert_eq!(r["sum"], "Ophdp0/iJbIEXBcta9OQvYVfCG4+nVJbRr/iRRFDFTI=");

    // Export: the AES key decrypts with an independent implementation (Python).
    let e = data(&d.get("/v1/transit/export/encryption-key/wrap/latest"));
    assert_eq!(e["name"], "wrap");
    assert_eq!(e["type"], "aes256-gcm96");
    let key = e["keys"]["1"].as_str().unwrap().to_string();
    let ct = encrypt(&d, "wrap", b"hello from transit");
    let script = format!(
        "import base64\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\n\
         k = base64.b64decode('{key}')\nb = base64.b64decode('{}')\n\
         print(AESGCM(k).decrypt(b[:12], b[12:], None).decode())\n",
        ct.trim_start_matches("vault:v1:")
    );
    let out = run_ok(Command::new(python()).arg("-c").arg(script));
    assert_eq!(out.trim(), "hello from transit");

    // A derived key: per-context ciphertexts; convergent ones are deterministic.
    let ctx = b64(b"tenant-42");
    create_key(
        &d,
        "conv",
        json!({ "derived": true, "convergent_encryption": true }),
    );
    let key = read_key(&d, "conv");
    assert_eq!(key["derived"], true);
    assert_eq!(key["convergent_encryption"], true);
    assert_eq!(key["kdf"], "hkdf_sha256");
    let enc = |c: &str| {
        data(&d.post_json(
            "/v1/transit/encrypt/conv",
            &json!({ "plaintext": b64(b"same"), "context": c }),
        ))["ciphertext"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(enc(&ctx), enc(&ctx));
    assert_ne!(enc(&ctx), enc(&b64(b"tenant-43")));
    let r = d.post_json(
        "/v1/transit/decrypt/conv",
        &json!({ "ciphertext": enc(&ctx), "context": ctx }),
    );
    assert_eq!(data(&r)["plaintext"], b64(b"same"));
}

const APP_POLICY: &str = r#"
path "transit/encrypt/app" {
  capabilities = ["update"]
}
path "transit/decrypt/app" {
  capabilities = ["update"]
}
"#;

#[test]
fn acl_policies_govern_transit_paths() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    d.bao_policy_write("transit-app", APP_POLICY);
    let (token, _) = d.bao_token_create(None, &["-policy=transit-app"]);
    let as_app =
        |path: &str, body: Value| d.http("POST", path, Some(&token), Body::Json(&body.to_string()));

    // Creating the key through encrypt needs `create`, which the policy lacks.
    let r = as_app("/v1/transit/encrypt/app", json!({ "plaintext": b64(b"x") }));
    r.assert_error(403, "permission denied");
    assert_eq!(d.get("/v1/transit/keys/app").status, 404);
    create_key(&d, "app", json!({}));
    let r = as_app("/v1/transit/encrypt/app", json!({ "plaintext": b64(b"x") }));
    let ct = data(&r)["ciphertext"].as_str().unwrap().to_string();
    let r = as_app("/v1/transit/decrypt/app", json!({ "ciphertext": ct }));
    assert_eq!(data(&r)["plaintext"], b64(b"x"));
    // Everything else is denied, whether the key exists or not.
    for path in [
        "/v1/transit/decrypt/other",
        "/v1/transit/keys/app/rotate",
        "/v1/transit/sign/app",
        "/v1/transit/random",
    ] {
        as_app(path, json!({})).assert_error(403, "permission denied");
    }
    let r = d.http("GET", "/v1/transit/keys/app", Some(&token), Body::None);
    r.assert_error(403, "permission denied");
    let r = d.http("GET", "/v1/transit/keys/app", None, Body::None);
    assert_eq!(r.status, 403, "{r}");
}

#[test]
fn scheduled_rotation_survives_a_restart() {
    if reference_mode() {
        return; // the knobs that shorten the schedule are Ironseal's
    }
    let mut d = Daemon::config_with_env(
        false,
        &[
            ("IRONSEAL_HOUSEKEEPING_INTERVAL", "1s"),
            ("IRONSEAL_TRANSIT_MIN_ROTATE_PERIOD", "1s"),
        ],
    );
    d.init(1, 1);
    d.unseal();
    d.bao(&["secrets", "enable", "transit"]).ok();
    // A key that rotates itself every two seconds, and one that never does.
    create_key(&d, "auto", json!({ "auto_rotate_period": "2s" }));
    create_key(&d, "still", json!({}));
    let before = encrypt(&d, "auto", b"kept");
    let key = read_key(&d, "auto");
    assert_eq!(key["auto_rotate_period"], 2, "{key}");

    let latest = |d: &Daemon| read_key(d, "auto")["latest_version"].as_u64().unwrap();
    let deadline = Duration::from_secs(60);
    poll_until(deadline, "the key to rotate on schedule", || {
        (latest(&d) >= 2).then_some(())
    });

    // After a power cut and an unseal the schedule goes on from storage.
    d.restart_after_kill9();
    d.unseal();
    let at_restart = latest(&d);
    assert!(at_restart >= 2);
    assert_eq!(read_key(&d, "auto")["auto_rotate_period"], 2);
    poll_until(
        deadline,
        "another scheduled rotation after the restart",
        || (latest(&d) > at_restart).then_some(()),
    );
    assert_eq!(
        data(&decrypt(&d, "auto", &before))["plaintext"],
        b64(b"kept")
    );
    assert_eq!(read_key(&d, "still")["latest_version"], 1);

    // Turning the period off stops it.
    data(&d.post_json(
        "/v1/transit/keys/auto/config",
        &json!({ "auto_rotate_period": 0 }),
    ));
    let stopped = latest(&d);
    // Two housekeeping rounds later nothing moved: wait for them through the log.
    let logs_before = d.logs().matches("transit key rotated on schedule").count();
    let r = d.post_json(
        "/v1/transit/keys/probe",
        &json!({ "auto_rotate_period": "1s" }),
    );
    assert_eq!(r.status, 200, "{r}");
    poll_until(deadline, "the probe key to rotate", || {
        (read_key(&d, "probe")["latest_version"].as_u64().unwrap() >= 2).then_some(())
    });
    assert!(d.logs().matches("transit key rotated on schedule").count() > logs_before);
    assert_eq!(
        latest(&d),
        stopped,
        "a key without a period does not rotate"
    );
}

#[test]
fn sealing_drops_keys_and_unsealing_brings_them_back() {
    if reference_mode() {
        return; // OpenBao's dev server keeps no unseal key in the form the harness reads
    }
    let d = Daemon::dev(&[]);
    create_key(&d, "k", json!({ "type": "chacha20-poly1305" }));
    let ct = encrypt(&d, "k", b"survives a seal");
    d.bao(&["operator", "seal"]).ok();
    let r = decrypt(&d, "k", &ct);
    r.assert_error(503, "Vault is sealed");
    let key = d
        .dev_unseal_key
        .clone()
        .expect("dev mode printed an unseal key");
    d.bao_as(None, &["operator", "unseal", &key]).ok();
    assert_eq!(
        data(&decrypt(&d, "k", &ct))["plaintext"],
        b64(b"survives a seal")
    );
}
