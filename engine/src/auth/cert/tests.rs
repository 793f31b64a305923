use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};

use super::*;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A client certificate for `cn`, with a DNS name, an email, a URI and an OU.
fn client(ca: &Ca, cn: &str) -> (PeerChain, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "payments");
    params.subject_alt_names.push(SanType::Rfc822Name(
        format!("{cn}@example.com").try_into().unwrap(),
    ));
    params.subject_alt_names.push(SanType::URI(
        format!("spiffe://example/{cn}").try_into().unwrap(),
    ));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (
        PeerChain::new(vec![cert.der().to_vec()]).unwrap(),
        cert.pem(),
    )
}

fn role(certificate: &str) -> CertRole {
    CertRole {
        certificate: certificate.to_string(),
        ..Default::default()
    }
}

fn trusted(role: &CertRole, chain: &PeerChain) -> bool {
    matches!(trust(role, chain, UnixTime::now()).unwrap(), Trust::Trusted)
}

fn names(chain: &PeerChain) -> Names {
    Names::of(&X509Certificate::from_der(chain.leaf()).unwrap().1)
}

#[test]
fn a_ca_role_trusts_what_it_signed_and_nothing_else() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    let (chain, _) = client(&ours, "web");
    let (stranger, _) = client(&theirs, "web");
    assert!(trusted(&role(&ours.pem), &chain));
    assert!(!trusted(&role(&ours.pem), &stranger));
}

#[test]
fn a_leaf_role_trusts_that_certificate_alone() {
    let ours = ca("ours");
    let (chain, pem) = client(&ours, "web");
    let (sibling, _) = client(&ours, "web");
    assert!(trusted(&role(&pem), &chain));
    assert!(!trusted(&role(&pem), &sibling));
}

#[test]
fn constraints_match_as_openbao_globs() {
    let ours = ca("ours");
    let (chain, _) = client(&ours, "web");
    let n = names(&chain);
    assert_eq!(n.common_name, "web");
    assert_eq!(n.organizational_units, vec!["payments"]);
    let with = |f: fn(&mut CertRole)| {
        let mut r = role(&ours.pem);
        f(&mut r);
        n.match_role(&r)
    };
    assert!(with(|_| {}));
    assert!(with(|r| r.allowed_common_names = vec!["w*".into()]));
    assert!(!with(|r| r.allowed_common_names = vec!["db".into()]));
    assert!(with(|r| r.allowed_dns_sans = vec!["*.example".into()]));
    assert!(!with(|r| r.allowed_dns_sans = vec!["*.other".into()]));
    assert!(with(|r| r.allowed_email_sans = vec!["web@*".into()]));
    assert!(with(
        |r| r.allowed_uri_sans = vec!["spiffe://example/*".into()]
    ));
    assert!(with(
        |r| r.allowed_organizational_units = vec!["pay*".into()]
    ));
    assert!(!with(
        |r| r.allowed_organizational_units = vec!["ops".into()]
    ));
    // `allowed_names` looks at the common name, DNS and email names together.
    assert!(with(|r| r.allowed_names = vec!["web@example.com".into()]));
    assert!(!with(|r| r.allowed_names = vec!["spiffe://*".into()]));
}

#[test]
fn a_role_certificate_must_parse_and_a_leaf_must_allow_client_auth() {
    let ours = ca("ours");
    let mut r = CertRole::default();
    let fields = |v: Value| v.as_object().cloned().unwrap();
    r.update_from(&fields(json!({"certificate": "junk"})))
        .unwrap();
    assert!(r.parsed().is_empty());
    for refused in [
        json!({"ocsp_enabled": true}),
        json!({"required_extensions": ["1.2.3:*"]}),
    ] {
        let e = CertRole::default()
            .update_from(&fields(refused.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{refused}: {e}");
    }
    r.update_from(&fields(json!({"certificate": ours.pem, "lease": 60})))
        .unwrap();
    assert_eq!(r.parsed().len(), 1);
    assert_eq!(r.token.token_ttl, 60);
}
