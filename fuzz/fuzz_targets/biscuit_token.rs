//! Biscuit tokens as clients present them in `X-Vault-Token`: any string, a minted token
//! with a block its holder appended (Datalog checks the appliance then runs), or with a
//! third-party block in its raw bytes.
//!
//! Input: a selector byte (mod 3: the token as given, a first-party block's Datalog
//! source, a third-party block's bytes), then that text or those bytes.
#![no_main]

use std::sync::OnceLock;

use api::fuzzing::Appliance;
use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::UnverifiedBiscuit;
use fuzz_support::{assert_not_internal, text};
use libfuzzer_sys::fuzz_target;

struct Setup {
    appliance: Appliance,
    /// A token minted by `auth/token/create`, with root's policy.
    minted: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let appliance = Appliance::dev();
        let root = appliance.root_token().to_string();
        let (status, answer) = appliance.v1(
            b"PUT",
            "transit/keys/aes",
            &root,
            br#"{"type":"aes256-gcm96"}"#,
        );
        assert!(status < 300, "creating the transit key: {status} {answer}");
        let (status, answer) = appliance.v1(
            b"PUT",
            "auth/token/create",
            &root,
            br#"{"policies":["root"],"ttl":"8760h"}"#,
        );
        assert_eq!(status, 200, "minting: {answer}");
        let minted = answer["auth"]["client_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            UnverifiedBiscuit::from_base64(&minted).is_ok(),
            "auth/token/create minted no Biscuit: {minted}"
        );
        Setup { appliance, minted }
    })
}

fn present(a: &Appliance, token: &str) {
    let (status, answer) = a.v1(b"GET", "auth/token/lookup-self", token, b"");
    assert_not_internal("auth/token/lookup-self", status, &answer);
    let (status, answer) = a.v1(
        b"PUT",
        "transit/encrypt/aes",
        token,
        br#"{"plaintext":"aGVsbG8="}"#,
    );
    assert_not_internal("transit/encrypt/aes", status, &answer);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let setup = setup();
    let token = match selector % 3 {
        0 => Some(text(rest)),
        1 => {
            let minted = UnverifiedBiscuit::from_base64(&setup.minted).ok();
            BlockBuilder::new()
                .code(text(rest))
                .ok()
                .and_then(|block| minted?.append(block).ok())
                .and_then(|t| t.to_base64().ok())
        }
        _ => UnverifiedBiscuit::from_base64(&setup.minted)
            .ok()
            .and_then(|t| t.append_third_party(rest).ok())
            .and_then(|t| t.to_base64().ok()),
    };
    if let Some(token) = token {
        present(&setup.appliance, &token);
    }
});
