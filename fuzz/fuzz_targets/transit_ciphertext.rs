//! Transit's `vault:v<N>:<base64>` strings as clients send them back: ciphertexts to
//! `decrypt` and `rewrap`, signatures to `verify`, HMACs to `verify`, singly and in a
//! batch, against keys of every family. And its promise: what `encrypt` returns, `decrypt`
//! gives back unchanged.
//!
//! Input: a selector byte, then the string (or, for the round trip, the plaintext).
#![no_main]

use std::sync::OnceLock;

use api::fuzzing::Appliance;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fuzz_support::{assert_not_internal, text};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const KEYS: &[(&str, &str)] = &[
    ("aes", r#"{"type":"aes256-gcm96"}"#),
    ("chacha", r#"{"type":"chacha20-poly1305"}"#),
    ("derived", r#"{"type":"aes256-gcm96","derived":true}"#),
    ("rsa", r#"{"type":"rsa-2048"}"#),
    ("ed", r#"{"type":"ed25519"}"#),
    ("ec", r#"{"type":"ecdsa-p256"}"#),
    ("hmac", r#"{"type":"hmac"}"#),
];

const CONTEXT: &str = "Y29udGV4dA==";

fn appliance() -> &'static Appliance {
    static APPLIANCE: OnceLock<Appliance> = OnceLock::new();
    APPLIANCE.get_or_init(|| {
        let a = Appliance::dev();
        let root = a.root_token().to_string();
        for (name, body) in KEYS {
            let (status, answer) = a.v1(
                b"PUT",
                &format!("transit/keys/{name}"),
                &root,
                body.as_bytes(),
            );
            assert!(
                status < 300,
                "creating transit key {name}: {status} {answer}"
            );
        }
        // A second version, so that rewrap has somewhere to go.
        let (status, answer) = a.v1(b"PUT", "transit/keys/aes/rotate", &root, b"");
        assert!(status < 300, "rotating: {status} {answer}");
        a
    })
}

fn call(a: &Appliance, path: &str, body: Value) -> (u16, Value) {
    let (status, answer) = a.v1(b"PUT", path, a.root_token(), body.to_string().as_bytes());
    assert_not_internal(path, status, &answer);
    (status, answer)
}

/// What encrypt gives, decrypt takes back, and rewrap keeps meaning the same.
fn round_trip(a: &Appliance, plaintext: &[u8]) {
    let plaintext = STANDARD.encode(plaintext);
    let (status, enc) = call(a, "transit/encrypt/aes", json!({ "plaintext": plaintext }));
    assert_eq!(status, 200, "{enc}");
    let ciphertext = enc["data"]["ciphertext"].clone();
    let (status, rewrapped) = call(a, "transit/rewrap/aes", json!({ "ciphertext": ciphertext }));
    assert_eq!(status, 200, "{rewrapped}");
    for c in [ciphertext, rewrapped["data"]["ciphertext"].clone()] {
        let (status, dec) = call(a, "transit/decrypt/aes", json!({ "ciphertext": c }));
        assert_eq!(status, 200, "{dec}");
        assert_eq!(dec["data"]["plaintext"].as_str(), Some(plaintext.as_str()));
    }
}

fuzz_target!(|data: &[u8]| {
    let a = appliance();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let s = text(rest);
    let input = STANDARD.encode(b"input");
    let (path, body) = match selector % 12 {
        0 => ("transit/decrypt/aes", json!({ "ciphertext": s })),
        1 => ("transit/decrypt/chacha", json!({ "ciphertext": s })),
        2 => (
            "transit/decrypt/derived",
            json!({ "ciphertext": s, "context": CONTEXT }),
        ),
        3 => ("transit/decrypt/rsa", json!({ "ciphertext": s })),
        4 => ("transit/rewrap/aes", json!({ "ciphertext": s })),
        5 => (
            "transit/verify/ed",
            json!({ "input": input, "signature": s }),
        ),
        6 => (
            "transit/verify/ec",
            json!({ "input": input, "signature": s }),
        ),
        7 => ("transit/verify/hmac", json!({ "input": input, "hmac": s })),
        8 => (
            "transit/verify/rsa",
            json!({ "input": input, "signature": s }),
        ),
        9 => (
            "transit/decrypt/aes",
            json!({ "batch_input": [{ "ciphertext": s }, { "ciphertext": s, "context": CONTEXT }] }),
        ),
        10 => return round_trip(a, rest),
        _ => (
            "transit/decrypt/derived",
            json!({ "ciphertext": s, "context": STANDARD.encode(rest) }),
        ),
    };
    call(a, path, body);
});
