//! GnuTLS's `p11tool --provider <library>`: tokens and objects listed by RFC 7512
//! `pkcs11:` URI, and a signature made and checked through them.

use softhsm_tests::pkcs11::{skip, Token};

#[test]
fn list_tokens_names_the_token_by_uri() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    let out = t.p11tool(&["--list-tokens"]).ok();
    // The URI of the token alone is `pkcs11:token=<label>`; p11tool adds the other
    // token attributes around it.
    let token_attr = &t.uri(&[])["pkcs11:".len()..];
    let url = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URL: "))
        .find(|u| {
            u.split(';')
                .any(|a| a.trim_start_matches("pkcs11:") == token_attr)
        })
        .unwrap_or_else(|| panic!("no URL names token {:?}: {out}", t.label));
    assert!(url.starts_with("pkcs11:"), "{url}");
    assert!(out.stdout.contains(&format!("Label: {}", t.label)), "{out}");
    assert!(out.stdout.contains("Requires login"), "{out}");
}

#[test]
fn list_all_by_uri_finds_the_key_pair() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    t.keypair("rsa:2048", "01", "listed-rsa");
    t.keypair("EC:prime256v1", "02", "other-ec");
    let out = t
        .p11tool(&["--login", "--list-all", &t.uri(&[("object", "listed-rsa")])])
        .ok();
    let objects: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URL: "))
        .collect();
    assert_eq!(objects.len(), 2, "a public and a private object: {out}");
    for kind in ["type=public", "type=private"] {
        assert!(
            objects.iter().any(|u| u.contains(kind)
                && u.contains("object=listed-rsa")
                && u.contains("id=%01")),
            "no {kind} object: {out}"
        );
    }
    assert!(out.stdout.contains("Private key (RSA-2048)"), "{out}");
    assert!(
        !out.stdout.contains("other-ec"),
        "the URI filter let more through: {out}"
    );
    // Without login the private objects stay hidden.
    let anonymous = t.p11tool(&["--list-all", &t.uri(&[("type", "private")])]);
    assert!(
        !anonymous.stdout.contains("object=listed-rsa"),
        "{anonymous}"
    );
}

fn test_sign(key_type: &str, label: &str) {
    let t = Token::start();
    t.keypair(key_type, "01", label);
    let out = t
        .p11tool(&[
            "--login",
            "--test-sign",
            &t.uri(&[("object", label), ("type", "private")]),
        ])
        .ok();
    // p11tool reports the test on stderr.
    let report = format!("{}{}", out.stdout, out.stderr);
    assert!(report.contains("Signing using"), "{out}");
    assert!(
        report.contains("Verifying against private key parameters... ok"),
        "{out}"
    );
    assert!(
        report.contains("Verifying against public key in the token... ok"),
        "{out}"
    );
    assert!(!report.contains("failed"), "{out}");
}

#[test]
fn test_sign_rsa() {
    if skip(false) {
        return;
    }
    test_sign("rsa:2048", "p11tool-rsa");
}

#[test]
fn test_sign_ec() {
    if skip(false) {
        return;
    }
    test_sign("EC:prime256v1", "p11tool-ec");
}
