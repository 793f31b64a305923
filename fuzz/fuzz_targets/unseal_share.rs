//! Unseal keys as `sys/unseal` receives them (hex, base64, base64url), several in a row
//! towards a 3-of-5 threshold, then a reset. The keys are made at start, so no input can
//! hold three of them: the appliance must stay sealed, also when the input completes
//! genuine keys given first (a forged share must not combine into an opening).
//!
//! Input: how many genuine keys go first (the first byte, mod 3), then keys, one a line.
#![no_main]

use std::sync::OnceLock;

use api::fuzzing::Appliance;
use fuzz_support::{assert_not_internal, text};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn appliance() -> &'static Appliance {
    static APPLIANCE: OnceLock<Appliance> = OnceLock::new();
    APPLIANCE.get_or_init(|| Appliance::sealed(5, 3))
}

fuzz_target!(|data: &[u8]| {
    let a = appliance();
    let Some((&genuine, data)) = data.split_first() else {
        return;
    };
    let genuine = usize::from(genuine % 3);
    let keys = a.unseal_keys()[..genuine]
        .iter()
        .cloned()
        .chain(data.split(|&b| b == b'\n').map(text))
        .take(3);
    for key in keys {
        let body = json!({ "key": key }).to_string();
        let (status, answer) = a.v1(b"PUT", "sys/unseal", "", body.as_bytes());
        assert_not_internal("sys/unseal", status, &answer);
    }
    assert!(a.is_sealed(), "unsealed by keys it did not issue");
    let (status, answer) = a.v1(b"PUT", "sys/unseal", "", br#"{"reset":true}"#);
    assert_eq!(status, 200, "reset: {answer}");
});
