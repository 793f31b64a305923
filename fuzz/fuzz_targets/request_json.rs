//! `/v1` and `/api/v1` requests as their doors parse them: method, path, query and JSON
//! body, decoded by the handlers into operations. Most run without a token, so every
//! handler decodes its fields and is then refused; transit's data paths also run as root
//! on keys made at start, so their decoded values reach the engine.
//!
//! Input: `METHOD path?query` (`!` before the method: as root), a newline, the body.
#![no_main]

use std::sync::OnceLock;

use api::fuzzing::Appliance;
use fuzz_support::{assert_not_internal, split_once, text};
use libfuzzer_sys::fuzz_target;

/// Data paths whose requests write nothing that accumulates.
const AS_ROOT: &[&str] = &[
    "transit/encrypt/",
    "transit/decrypt/",
    "transit/rewrap/",
    "transit/datakey/",
    "transit/hmac/",
    "transit/sign/",
    "transit/verify/",
    "transit/hash",
    "transit/random",
];

fn appliance() -> &'static Appliance {
    static APPLIANCE: OnceLock<Appliance> = OnceLock::new();
    APPLIANCE.get_or_init(|| {
        let a = Appliance::dev();
        let root = a.root_token().to_string();
        for (name, kind) in [
            ("aes", "aes256-gcm96"),
            ("ed", "ed25519"),
            ("ec", "ecdsa-p256"),
        ] {
            let body = format!(r#"{{"type":"{kind}"}}"#);
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
        a
    })
}

fuzz_target!(|data: &[u8]| {
    let a = appliance();
    let (line, body) = split_once(data, b'\n');
    let line = text(line);
    let (as_root, line) = match line.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, line.as_str()),
    };
    let (method, target) = line.split_once(' ').unwrap_or((line, ""));
    let (api_v1, path) = match target.strip_prefix("api/v1/") {
        Some(rest) => (true, rest),
        None => (false, target),
    };
    let token = if as_root && !api_v1 && AS_ROOT.iter().any(|p| path.starts_with(p)) {
        a.root_token()
    } else {
        ""
    };
    let (status, answer) = if api_v1 {
        a.api_v1(method.as_bytes(), path, token, body)
    } else {
        a.v1(method.as_bytes(), path, token, body)
    };
    assert_not_internal(target, status, &answer);
});
