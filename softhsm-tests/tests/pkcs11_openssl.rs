//! OpenSSL 3 through the PKCS#11 engine (`libengine-pkcs11-openssl`): a CSR and a
//! self-signed certificate signed by a key that never left the token, verified with
//! plain openssl; then the certificate stored on the token and found again.

use std::fs;

use softhsm_tests::pkcs11::{openssl, skip, Token};

/// Signs a CSR and a self-signed certificate with the private key `label` through the
/// engine and checks both with plain openssl, and that they carry the token's public
/// key; the certificate's path.
fn csr_and_certificate(t: &Token, id: &str, label: &str) -> String {
    let key = t.uri(&[("object", label), ("type", "private")]);
    let csr = t.path(&format!("{label}.csr"));
    let crt = t.path(&format!("{label}.crt"));
    let subject = format!("/CN={label}");
    let engine = ["-engine", "pkcs11", "-keyform", "engine", "-key", &key];
    t.openssl_engine(
        &[
            &["req", "-new", "-sha256", "-subj", &subject][..],
            &engine,
            &["-out", csr.to_str().unwrap()],
        ]
        .concat(),
    )
    .ok();
    t.openssl_engine(
        &[
            &["req", "-x509", "-sha256", "-days", "2", "-subj", &subject][..],
            &engine,
            &["-out", crt.to_str().unwrap()],
        ]
        .concat(),
    )
    .ok();
    let verified = openssl(&["req", "-verify", "-noout", "-in", csr.to_str().unwrap()]);
    assert!(
        format!("{}{}", verified.stdout, verified.stderr).contains("verify OK"),
        "{verified}"
    );
    let crt_s = crt.to_str().unwrap();
    let chain = openssl(&["verify", "-CAfile", crt_s, crt_s]).ok();
    assert!(chain.stdout.contains(": OK"), "{chain}");

    let token_key = fs::read_to_string(t.public_key_pem(id)).unwrap();
    let csr_key = openssl(&["req", "-pubkey", "-noout", "-in", csr.to_str().unwrap()]).ok();
    let crt_key = openssl(&["x509", "-pubkey", "-noout", "-in", crt_s]).ok();
    assert_eq!(csr_key.stdout, token_key, "the CSR holds another key");
    assert_eq!(
        crt_key.stdout, token_key,
        "the certificate holds another key"
    );
    crt_s.to_string()
}

/// Stores the certificate on the token under the key's CKA_ID and reads it back.
fn store_and_find(t: &Token, id: &str, crt: &str) {
    let der = t.path("cert.der");
    openssl(&[
        "x509",
        "-in",
        crt,
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ])
    .ok();
    t.pkcs11_tool_login(&[
        "--write-object",
        der.to_str().unwrap(),
        "--type",
        "cert",
        "--private",
        "--id",
        id,
        "--label",
        "stored-cert",
    ])
    .ok();
    let listed = t
        .pkcs11_tool_login(&["--list-objects", "--type", "cert"])
        .ok();
    assert!(listed.stdout.contains("Certificate Object"), "{listed}");
    assert!(
        listed.stdout.contains("label:      stored-cert"),
        "{listed}"
    );
    let back = t.path("cert-back.der");
    t.pkcs11_tool_login(&[
        "--read-object",
        "--type",
        "cert",
        "--label",
        "stored-cert",
        "--output-file",
        back.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(fs::read(back).unwrap(), fs::read(der).unwrap());
}

#[test]
fn rsa_key_signs_a_csr_and_a_certificate() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    t.keypair("rsa:2048", "01", "tls-rsa");
    csr_and_certificate(&t, "01", "tls-rsa");
}

#[test]
fn ec_key_signs_a_csr_and_a_certificate() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    t.keypair("EC:prime256v1", "02", "tls-ec");
    csr_and_certificate(&t, "02", "tls-ec");
}

#[test]
fn certificate_is_stored_and_found_again() {
    if skip(false) {
        return;
    }
    let t = Token::start();
    t.keypair("EC:prime256v1", "02", "tls-ec");
    let crt = csr_and_certificate(&t, "02", "tls-ec");
    store_and_find(&t, "02", &crt);
}
