//! JWTs as `auth/jwt/login` receives them: any string, or claims the fuzzer chose signed
//! with the configured key, so that the role's checks (issuer, audience, times, bound
//! claims, the user claim) see them. A login that succeeds had the claims the role binds.
//!
//! Input: a selector byte (even: the JWT as given; odd: the claims, as JSON, to sign),
//! then the JWT or the claims.
#![no_main]

use std::sync::OnceLock;

use api::fuzzing::Appliance;
use fuzz_support::{assert_not_internal, text};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

// A P-256 key made for these tests only (the seeds in corpus/jwt_login are signed with it).
const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0ovXeUH7dhJ18xhB
mnGJFbnS+P769Rn3vS7R+gDJ5UChRANCAAQcW+v+/vVLyCxKYwp6m5gqGCiG8leO
UWj+/frImD608DipoIcVrweC6YBRIxB+r22jM/J4DT6W+IA/XDCMzgXW
-----END PRIVATE KEY-----
";
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHFvr/v71S8gsSmMKepuYKhgohvJX
jlFo/v36yJg+tPA4qaCHFa8HgumAUSMQfq9tozPyeA0+lviAP1wwjM4F1g==
-----END PUBLIC KEY-----
";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "ironseal";

struct Setup {
    appliance: Appliance,
    key: EncodingKey,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let a = Appliance::dev();
        let root = a.root_token().to_string();
        let steps = [
            ("sys/auth/jwt", json!({ "type": "jwt" })),
            (
                "auth/jwt/config",
                json!({ "jwt_validation_pubkeys": [PUBLIC_KEY], "bound_issuer": ISSUER }),
            ),
            (
                "auth/jwt/role/fuzz",
                json!({
                    "role_type": "jwt",
                    "user_claim": "sub",
                    "bound_audiences": [AUDIENCE],
                    "bound_claims": { "team": "crypto" },
                    "claim_mappings": { "email": "email" },
                    "policies": ["default"],
                }),
            ),
        ];
        for (path, body) in steps {
            let (status, answer) = a.v1(b"PUT", path, &root, body.to_string().as_bytes());
            assert!(status < 300, "{path}: {status} {answer}");
        }
        let key = match EncodingKey::from_ec_pem(PRIVATE_KEY.as_bytes()) {
            Ok(key) => key,
            Err(e) => panic!("the test key does not load: {e}"),
        };
        Setup { appliance: a, key }
    })
}

fn audience_is_bound(claims: &Map<String, Value>) -> bool {
    match claims.get("aud") {
        Some(Value::String(s)) => s == AUDIENCE,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(AUDIENCE)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let setup = setup();
    let (jwt, claims) = if selector % 2 == 0 {
        (text(rest), None)
    } else {
        let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(rest) else {
            return;
        };
        match jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &setup.key) {
            Ok(jwt) => (jwt, Some(claims)),
            Err(_) => return,
        }
    };
    let body = json!({ "role": "fuzz", "jwt": jwt }).to_string();
    let (status, answer) = setup
        .appliance
        .v1(b"PUT", "auth/jwt/login", "", body.as_bytes());
    assert_not_internal("auth/jwt/login", status, &answer);
    if let (200, Some(claims)) = (status, claims) {
        assert!(
            audience_is_bound(&claims),
            "logged in without the audience: {claims:?}"
        );
        assert_eq!(
            claims.get("team"),
            Some(&json!("crypto")),
            "bound claim: {claims:?}"
        );
        assert_eq!(
            claims.get("iss"),
            Some(&json!(ISSUER)),
            "issuer: {claims:?}"
        );
    }
});
