//! The object model without a door: attributes of each key type, the `CKA_ID` scheme
//! across rotation, template matching, key-generation templates, created objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use cryptoki_sys::*;
use der::asn1::{AnyRef, OctetString};
use der::{Decode, Encode, Tag, Tagged};

use super::keygen::{self, Family};
use super::keys::{self, ID_LABEL, P256_OID};
use super::objects;
use super::session::{SessionObjects, MAX_PER_INSTANCE};
use super::{code, Attr, Handle, KeyClass, Object, Value};
use crate::core::Core;
use crate::error::EngineError;
use crate::managed_keys::{Algorithm, CreateKey, KeyError, ManagedKey, Origin, Protection, Usage};
use crate::storage::{MemoryBackend, Storage};

async fn core() -> Arc<Core> {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    core.dev_setup(None).await.expect("dev setup");
    core
}

async fn create(
    core: &Arc<Core>,
    name: &str,
    algorithm: Algorithm,
    id: Option<&str>,
) -> ManagedKey {
    let mut labels = BTreeMap::new();
    if let Some(id) = id {
        labels.insert(ID_LABEL.to_string(), id.to_string());
    }
    let request = CreateKey {
        name: name.into(),
        algorithm,
        usage: None,
        labels,
        exportable: false,
        allow_unwrapped_export: false,
    };
    core.keys
        .create(request, core.root().expect("root"))
        .await
        .expect("create")
}

fn of_class(objects: &[Object], class: KeyClass) -> &Object {
    objects
        .iter()
        .find(|o| matches!(o.handle, Handle::Key { class: c, .. } if c == class))
        .expect("object of class")
}

fn refused_with(r: Result<impl std::fmt::Debug, EngineError>, expected: &str) {
    match r {
        Err(EngineError::Key(k)) => match *k {
            KeyError::Invalid { code, .. } => assert_eq!(code, expected),
            other => panic!("expected {expected}, got {other:?}"),
        },
        other => panic!("expected {expected}, got {other:?}"),
    }
}

#[tokio::test]
async fn ec_and_aes_objects_carry_what_applications_look_for() {
    let core = core().await;
    let ec = create(&core, "ec", Algorithm::EcP256, None).await;
    let all = keys::key_objects(&ec).expect("objects");
    assert_eq!(all.len(), 2);
    let public = of_class(&all, KeyClass::Public);
    let private = of_class(&all, KeyClass::Private);
    assert_eq!(public.get_ulong(CKA_CLASS), Some(CKO_PUBLIC_KEY));
    assert_eq!(public.get_ulong(CKA_KEY_TYPE), Some(CKK_EC));
    assert_eq!(public.get_bytes(CKA_EC_PARAMS), Some(P256_OID));
    let point = public.get_bytes(CKA_EC_POINT).expect("point");
    assert_eq!(
        &point[..3],
        &[0x04, 65, 0x04],
        "DER OCTET STRING of an uncompressed point"
    );
    assert_eq!(
        OctetString::from_der(point).map(|p| p.as_bytes().len()),
        Ok(65)
    );
    assert!(public.get_bool(CKA_VERIFY) && !public.get_bool(CKA_ENCRYPT));
    assert_eq!(public.get_bytes(CKA_ID), Some(&ec.id.as_bytes()[..]));
    assert_eq!(public.get_bytes(CKA_LABEL), Some(&b"ec"[..]));
    assert!(public.sensitive.is_empty());
    assert!(public.get_bytes(CKA_PUBLIC_KEY_INFO).is_some());
    for (kind, expected) in [
        (CKA_SIGN, true),
        (CKA_DECRYPT, false),
        (CKA_SENSITIVE, true),
        (CKA_ALWAYS_SENSITIVE, true),
        (CKA_EXTRACTABLE, false),
        (CKA_NEVER_EXTRACTABLE, true),
        (CKA_LOCAL, true),
        (CKA_TOKEN, true),
        (CKA_PRIVATE, true),
        (CKA_MODIFIABLE, false),
        (CKA_DESTROYABLE, true),
    ] {
        assert_eq!(private.get(kind), Some(&Value::Bool(expected)), "{kind:#x}");
    }
    assert_eq!(
        private.get_ulong(CKA_KEY_GEN_MECHANISM),
        Some(CKM_EC_KEY_PAIR_GEN)
    );
    assert_eq!(private.sensitive, vec![CKA_VALUE]);
    assert!(private.get(CKA_VALUE).is_none());
    let start = private.get_bytes(CKA_START_DATE).expect("date");
    assert!(start.len() == 8 && start.iter().all(u8::is_ascii_digit));
    assert_eq!(private.get_bytes(CKA_END_DATE), Some(&[][..]));

    let aes = create(&core, "aes", Algorithm::Aes256, None).await;
    let all = keys::key_objects(&aes).expect("objects");
    assert_eq!(all.len(), 1);
    let secret = of_class(&all, KeyClass::Secret);
    assert_eq!(secret.get_ulong(CKA_CLASS), Some(CKO_SECRET_KEY));
    assert_eq!(secret.get_ulong(CKA_KEY_TYPE), Some(CKK_AES));
    assert_eq!(secret.get_ulong(CKA_VALUE_LEN), Some(32));
    assert!(secret.get_bool(CKA_ENCRYPT) && secret.get_bool(CKA_DECRYPT));
    assert!(!secret.get_bool(CKA_SIGN) && !secret.get_bool(CKA_EXTRACTABLE));
    assert_eq!(secret.sensitive, vec![CKA_VALUE]);
}

#[tokio::test]
async fn rsa_and_post_quantum_objects_show_their_public_parts() {
    let core = core().await;
    let rsa = create(&core, "rsa", Algorithm::Rsa2048, None).await;
    let all = keys::key_objects(&rsa).expect("objects");
    let public = of_class(&all, KeyClass::Public);
    assert_eq!(public.get_ulong(CKA_KEY_TYPE), Some(CKK_RSA));
    assert_eq!(public.get_ulong(CKA_MODULUS_BITS), Some(2048));
    assert_eq!(public.get_bytes(CKA_MODULUS).map(<[u8]>::len), Some(256));
    assert_eq!(
        public.get_bytes(CKA_PUBLIC_EXPONENT),
        Some(&[1u8, 0, 1][..])
    );
    let private = of_class(&all, KeyClass::Private);
    assert_eq!(
        private.get_bytes(CKA_MODULUS),
        public.get_bytes(CKA_MODULUS)
    );
    assert!(private.sensitive.contains(&CKA_PRIVATE_EXPONENT));
    assert!(private.sensitive.contains(&CKA_PRIME_1));
    assert_eq!(
        private.get_ulong(CKA_KEY_GEN_MECHANISM),
        Some(CKM_RSA_PKCS_KEY_PAIR_GEN)
    );

    let dsa = create(&core, "dsa", Algorithm::MlDsa65, None).await;
    let all = keys::key_objects(&dsa).expect("objects");
    let public = of_class(&all, KeyClass::Public);
    assert_eq!(public.get_ulong(CKA_KEY_TYPE), Some(CKK_ML_DSA));
    assert_eq!(public.get_ulong(CKA_PARAMETER_SET), Some(CKP_ML_DSA_65));
    assert_eq!(public.get_bytes(CKA_VALUE).map(<[u8]>::len), Some(1952));
    let info = public.get_bytes(CKA_PUBLIC_KEY_INFO).expect("spki");
    assert_eq!(AnyRef::from_der(info).map(|e| e.tag()), Ok(Tag::Sequence));
    let private = of_class(&all, KeyClass::Private);
    assert!(private.get(CKA_VALUE).is_none());
    assert!(private.sensitive.contains(&CKA_VALUE));

    let kem = create(&core, "kem", Algorithm::MlKem768, None).await;
    let all = keys::key_objects(&kem).expect("objects");
    let public = of_class(&all, KeyClass::Public);
    assert_eq!(public.get_ulong(CKA_KEY_TYPE), Some(CKK_ML_KEM));
    assert_eq!(public.get_ulong(CKA_PARAMETER_SET), Some(CKP_ML_KEM_768));
    assert_eq!(public.get_bytes(CKA_VALUE).map(<[u8]>::len), Some(1184));
    assert!(public.get_bool(CKA_ENCAPSULATE) && !public.get_bool(CKA_ENCRYPT));
    assert!(of_class(&all, KeyClass::Private).get_bool(CKA_DECAPSULATE));
}

#[tokio::test]
async fn the_primary_has_the_base_id_and_older_versions_a_suffixed_one() {
    let core = core().await;
    let key = create(&core, "signer", Algorithm::EcP256, Some("01")).await;
    let key = core
        .keys
        .rotate(&key.id, core.root().expect("root"), "test")
        .await
        .expect("rotate");
    assert_eq!(key.primary_version, 2);
    let all = keys::key_objects(&key).expect("objects");
    assert_eq!(all.len(), 4);
    let primary: Vec<_> = all
        .iter()
        .filter(|o| o.matches(&[Attr::bytes(CKA_ID, vec![0x01])]))
        .collect();
    assert_eq!(primary.len(), 2, "--id 01 finds exactly the primary");
    assert!(primary
        .iter()
        .all(|o| matches!(o.handle, Handle::Key { version: 2, .. })));
    assert!(primary
        .iter()
        .all(|o| o.get_bytes(CKA_LABEL) == Some(&b"signer"[..])));
    let older: Vec<_> = all
        .iter()
        .filter(|o| o.matches(&[Attr::bytes(CKA_ID, b"\x01#1".to_vec())]))
        .collect();
    assert_eq!(older.len(), 2);
    assert!(older
        .iter()
        .all(|o| o.get_bytes(CKA_LABEL) == Some(&b"signer#1"[..])));
    let private_v1 = all.iter().find(|o| {
        o.matches(&[
            Attr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
            Attr::bytes(CKA_LABEL, b"signer#1".to_vec()),
        ])
    });
    assert!(matches!(
        private_v1.map(|o| o.handle),
        Some(Handle::Key {
            version: 1,
            class: KeyClass::Private,
            ..
        })
    ));
    // A sensitive attribute never matches, even by value.
    assert!(!all
        .iter()
        .any(|o| o.matches(&[Attr::bytes(CKA_VALUE, Vec::new())])));
    // A key pending destruction has no objects.
    let pending = core
        .keys
        .schedule_destruction(&key.id, 60)
        .await
        .expect("schedule");
    assert!(keys::key_objects(&pending).expect("objects").is_empty());
    assert!(keys::key_object(&pending, 2, KeyClass::Private).is_err());
}

fn rsa_public(bits: CK_ULONG) -> Vec<Attr> {
    vec![
        Attr::ulong(CKA_CLASS, CKO_PUBLIC_KEY),
        Attr::bool(CKA_TOKEN, true),
        Attr::ulong(CKA_MODULUS_BITS, bits),
        Attr::bytes(CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
        Attr::bool(CKA_VERIFY, true),
        Attr::bool(CKA_ENCRYPT, true),
    ]
}

fn rsa_private() -> Vec<Attr> {
    vec![
        Attr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
        Attr::bool(CKA_TOKEN, true),
        Attr::bool(CKA_PRIVATE, true),
        Attr::bool(CKA_SENSITIVE, true),
        Attr::bytes(CKA_LABEL, b"app-rsa".to_vec()),
        Attr::bytes(CKA_ID, vec![0xab, 0x01]),
        Attr::bool(CKA_SIGN, true),
        Attr::bool(CKA_DECRYPT, true),
    ]
}

fn with(mut template: Vec<Attr>, attr: Attr) -> Vec<Attr> {
    template.retain(|a| a.kind != attr.kind);
    template.push(attr);
    template
}

#[test]
fn key_generation_templates_follow_the_contract() {
    let key = keygen::parse(Family::Rsa, &rsa_public(3072), &rsa_private()).expect("valid");
    assert_eq!(key.create.name, "app-rsa");
    assert_eq!(key.create.algorithm, Algorithm::Rsa3072);
    // pkcs11-tool asks for every capability: a key that can sign signs.
    assert_eq!(key.create.usage, Some(Usage::SignVerify));
    assert_eq!(
        key.create.labels.get(ID_LABEL).map(String::as_str),
        Some("ab01")
    );

    let decrypt_only = with(
        with(rsa_private(), Attr::bool(CKA_SIGN, false)),
        Attr::bool(CKA_DECRYPT, true),
    );
    let public = with(rsa_public(2048), Attr::bool(CKA_VERIFY, false));
    let key = keygen::parse(Family::Rsa, &public, &decrypt_only).expect("valid");
    assert_eq!(key.create.usage, Some(Usage::EncryptDecrypt));

    let unnamed = keygen::parse(
        Family::Aes,
        &[],
        &[
            Attr::ulong(CKA_VALUE_LEN, 32),
            Attr::bytes(CKA_LABEL, Vec::new()),
            Attr::bytes(CKA_ID, Vec::new()),
        ],
    )
    .expect("valid");
    assert!(unnamed.create.name.starts_with("pkcs11-"));
    assert!(unnamed.create.labels.is_empty());

    let rsa = |public: Vec<Attr>, private: Vec<Attr>| keygen::parse(Family::Rsa, &public, &private);
    // pkcs11-tool's public key template without `--private`: stricter than asked is fine;
    // a private key asked to be public is not.
    rsa(
        with(rsa_public(2048), Attr::bool(CKA_PRIVATE, false)),
        rsa_private(),
    )
    .expect("a public key asked to be public is generated private");
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::bool(CKA_PRIVATE, false)),
        ),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    let no_bits: Vec<Attr> = rsa_public(2048)
        .into_iter()
        .filter(|a| a.kind != CKA_MODULUS_BITS)
        .collect();
    refused_with(rsa(no_bits, rsa_private()), code::TEMPLATE_INCOMPLETE);
    refused_with(
        rsa(rsa_public(1024), rsa_private()),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        rsa(
            with(rsa_public(2048), Attr::bytes(CKA_PUBLIC_EXPONENT, vec![3])),
            rsa_private(),
        ),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::bool(CKA_SENSITIVE, false)),
        ),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::bool(CKA_EXTRACTABLE, true)),
        ),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    // CKA_TOKEN false, or absent as PKCS#11 defaults it, is a session key, named only
    // by its CKA_LABEL; the two templates must not disagree.
    let session = rsa(
        with(rsa_public(2048), Attr::bool(CKA_TOKEN, false)),
        with(rsa_private(), Attr::bool(CKA_TOKEN, false)),
    )
    .expect("a session key pair");
    assert!(!session.token);
    assert_eq!(session.label, b"app-rsa");
    assert_eq!(session.id, vec![0xab, 0x01]);
    assert!(session.create.name.starts_with("pkcs11-"));
    let untold: Vec<Attr> = rsa_private()
        .into_iter()
        .filter(|a| a.kind != CKA_TOKEN)
        .collect();
    let public_untold: Vec<Attr> = rsa_public(2048)
        .into_iter()
        .filter(|a| a.kind != CKA_TOKEN)
        .collect();
    assert!(!rsa(public_untold, untold).expect("valid").token);
    assert!(rsa(rsa_public(2048), rsa_private()).expect("valid").token);
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::bool(CKA_TOKEN, false)),
        ),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::bytes(CKA_MODULUS, vec![1])),
        ),
        code::ATTRIBUTE_TYPE_INVALID,
    );
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::ulong(CKA_CLASS, CKO_SECRET_KEY)),
        ),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        rsa(
            with(rsa_public(2048), Attr::bytes(CKA_LABEL, b"other".to_vec())),
            rsa_private(),
        ),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        rsa(
            rsa_public(2048),
            with(rsa_private(), Attr::ulong(CKA_KEY_TYPE, CKK_EC)),
        ),
        code::TEMPLATE_INCONSISTENT,
    );

    let ec = |params: &[u8], private: Vec<Attr>| {
        keygen::parse(
            Family::Ec,
            &[Attr::bytes(CKA_EC_PARAMS, params.to_vec())],
            &private,
        )
    };
    assert_eq!(
        ec(P256_OID, vec![Attr::bool(CKA_DERIVE, false)])
            .expect("valid")
            .create
            .algorithm,
        Algorithm::EcP256
    );
    refused_with(
        ec(&[0x06, 0x01, 0x00], Vec::new()),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        ec(P256_OID, vec![Attr::bool(CKA_SIGN, false)]),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        keygen::parse(Family::Ec, &[], &[]),
        code::TEMPLATE_INCOMPLETE,
    );
    refused_with(
        keygen::parse(Family::Aes, &[], &[Attr::ulong(CKA_VALUE_LEN, 16)]),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        keygen::parse(
            Family::MlDsa,
            &[Attr::ulong(CKA_PARAMETER_SET, CKP_ML_DSA_44)],
            &[],
        ),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    let kem = keygen::parse(
        Family::MlKem,
        &[Attr::ulong(CKA_PARAMETER_SET, CKP_ML_KEM_768)],
        &[Attr::bool(CKA_DECAPSULATE, true)],
    )
    .expect("valid");
    assert_eq!(kem.create.algorithm, Algorithm::MlKem768);
    refused_with(
        keygen::parse(
            Family::Aes,
            &[],
            &[
                Attr::ulong(CKA_VALUE_LEN, 32),
                Attr::bytes(CKA_ID, vec![0; 128]),
            ],
        ),
        code::ATTRIBUTE_VALUE_INVALID,
    );
}

/// A certificate for "subject", serial 0x0123, issued by "issuer".
fn certificate() -> Vec<u8> {
    let params = |cn: &str| {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p
    };
    let issuer = rcgen::Issuer::new(params("issuer"), rcgen::KeyPair::generate().expect("key"));
    let mut subject = params("subject");
    subject.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01, 0x23]));
    let key = rcgen::KeyPair::generate().expect("key");
    subject
        .signed_by(&key, &issuer)
        .expect("certificate")
        .der()
        .to_vec()
}

/// The object made from a template holding `value` as an X.509 certificate.
fn certificate_object(value: Vec<u8>) -> crate::error::Result<Object> {
    let new = objects::new_object(&[
        Attr::ulong(CKA_CLASS, CKO_CERTIFICATE),
        Attr::ulong(CKA_CERTIFICATE_TYPE, CKC_X_509),
        Attr::bytes(CKA_VALUE, value),
    ])?;
    Ok(Object {
        handle: Handle::Session(1),
        attributes: new.attributes,
        sensitive: Vec::new(),
    })
}

#[test]
fn a_certificate_gives_the_names_and_serial_it_encodes() {
    let value = certificate();
    let o = certificate_object(value.clone()).expect("certificate");
    let tbs = x509_cert::Certificate::from_der(&value)
        .expect("parses")
        .tbs_certificate;
    let subject = tbs.subject.to_der().expect("subject");
    let issuer = tbs.issuer.to_der().expect("issuer");
    let serial = tbs.serial_number.to_der().expect("serial");
    assert_eq!(o.get_bytes(CKA_SUBJECT), Some(&subject[..]));
    assert_eq!(o.get_bytes(CKA_ISSUER), Some(&issuer[..]));
    assert_eq!(o.get_bytes(CKA_SERIAL_NUMBER), Some(&serial[..]));
    // Re-encoding gives back the certificate's own bytes, so applications that search
    // by the names they read from the certificate find it.
    for field in [&subject, &issuer, &serial] {
        assert!(value.windows(field.len()).any(|w| w == &field[..]));
    }

    let truncated = value[..value.len() - 1].to_vec();
    refused_with(certificate_object(truncated), code::ATTRIBUTE_VALUE_INVALID);
    let mut trailing = value;
    trailing.push(0);
    refused_with(certificate_object(trailing), code::ATTRIBUTE_VALUE_INVALID);
}

#[test]
fn created_objects_are_read_from_their_templates() {
    let cert = certificate();
    let new = objects::new_object(&[
        Attr::ulong(CKA_CLASS, CKO_CERTIFICATE),
        Attr::ulong(CKA_CERTIFICATE_TYPE, CKC_X_509),
        Attr::bool(CKA_TOKEN, true),
        Attr::bool(CKA_PRIVATE, false),
        Attr::bytes(CKA_VALUE, cert.clone()),
        Attr::bytes(CKA_ID, vec![1]),
    ])
    .expect("certificate");
    assert!(new.token);
    let o = Object {
        handle: Handle::Session(1),
        attributes: new.attributes,
        sensitive: Vec::new(),
    };
    assert!(o.get_bool(CKA_PRIVATE));
    assert_eq!(
        o.get_bytes(CKA_SERIAL_NUMBER),
        Some(&[0x02, 0x02, 0x01, 0x23][..])
    );
    assert!(o
        .get_bytes(CKA_SUBJECT)
        .is_some_and(|s| s.ends_with(b"subject")));
    assert!(o
        .get_bytes(CKA_ISSUER)
        .is_some_and(|s| s.ends_with(b"issuer")));
    assert!(o.matches(&[
        Attr::ulong(CKA_CLASS, CKO_CERTIFICATE),
        Attr::bytes(CKA_ID, vec![1])
    ]));

    refused_with(
        objects::new_object(&[
            Attr::ulong(CKA_CLASS, CKO_CERTIFICATE),
            Attr::ulong(CKA_CERTIFICATE_TYPE, CKC_X_509),
            Attr::bytes(CKA_VALUE, b"not der".to_vec()),
        ]),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        objects::new_object(&[Attr::bytes(CKA_VALUE, cert)]),
        code::TEMPLATE_INCOMPLETE,
    );
    refused_with(
        objects::new_object(&[
            Attr::ulong(CKA_CLASS, CKO_DATA),
            Attr::bytes(CKA_MODULUS, vec![1]),
        ]),
        code::ATTRIBUTE_TYPE_INVALID,
    );
    refused_with(
        objects::new_object(&[
            Attr::ulong(CKA_CLASS, CKO_SECRET_KEY),
            Attr::bytes(CKA_VALUE, vec![0; 32]),
        ]),
        code::ATTRIBUTE_VALUE_INVALID,
    );

    // A public key given as a bare point is kept as PKCS#11's DER OCTET STRING.
    let point = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    };
    let new = objects::new_object(&[
        Attr::ulong(CKA_CLASS, CKO_PUBLIC_KEY),
        Attr::ulong(CKA_KEY_TYPE, CKK_EC),
        Attr::bytes(CKA_EC_PARAMS, P256_OID.to_vec()),
        Attr::bytes(CKA_EC_POINT, point.clone()),
    ])
    .expect("public key");
    assert!(!new.token);
    let o = Object {
        handle: Handle::Session(2),
        attributes: new.attributes,
        sensitive: Vec::new(),
    };
    assert_eq!(
        o.get_bytes(CKA_EC_POINT),
        OctetString::new(point)
            .and_then(|p| p.to_der())
            .ok()
            .as_deref()
    );
    let (algorithm, _spki) = objects::public_key(&o).expect("usable");
    assert_eq!(algorithm, Algorithm::EcP256);

    // A bare point whose first coordinate byte is 0x3f also parses as an OCTET STRING
    // (04 3f + 63 bytes): it is still read as the point it is, bare or wrapped.
    let ambiguous = loop {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = p256::SecretKey::random(&mut rand::rngs::OsRng)
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        if point[1] == 0x3f {
            break point;
        }
    };
    let wrapped = OctetString::new(ambiguous.clone())
        .and_then(|p| p.to_der())
        .expect("wrap");
    for given in [ambiguous, wrapped.clone()] {
        let new = objects::new_object(&[
            Attr::ulong(CKA_CLASS, CKO_PUBLIC_KEY),
            Attr::ulong(CKA_KEY_TYPE, CKK_EC),
            Attr::bytes(CKA_EC_PARAMS, P256_OID.to_vec()),
            Attr::bytes(CKA_EC_POINT, given),
        ])
        .expect("the point is read, bare or wrapped");
        assert!(new
            .attributes
            .contains(&Attr::bytes(CKA_EC_POINT, wrapped.clone())));
    }

    // Only the label, id and dates change; a read-only attribute says so.
    let changed = objects::set(&o, &[Attr::bytes(CKA_LABEL, b"peer".to_vec())]).expect("set");
    assert!(changed.contains(&Attr::bytes(CKA_LABEL, b"peer".to_vec())));
    refused_with(
        objects::set(&o, &[Attr::bool(CKA_VERIFY, false)]),
        code::ATTRIBUTE_READ_ONLY,
    );
}

#[test]
fn session_objects_are_bounded_per_instance_and_forgotten_with_it() {
    let sessions = SessionObjects::default();
    let (a, b) = ([1u8; 16], [2u8; 16]);
    let data = || vec![Attr::ulong(CKA_CLASS, CKO_DATA)];
    for _ in 0..MAX_PER_INSTANCE {
        sessions.insert(&a, data()).expect("room");
    }
    refused_with(sessions.insert(&a, data()), code::ACTION_PROHIBITED);
    let id = sessions
        .insert(&b, data())
        .expect("another instance has room");
    assert!(sessions.get(&b, id).is_ok());
    assert!(
        sessions.get(&a, id).is_err(),
        "no instance sees another's objects"
    );
    assert_eq!(sessions.list(&b).len(), 1);
    assert_eq!(sessions.remove(&b, &[id]).0, 1);
    let next = sessions.insert(&b, data()).expect("room");
    assert_ne!(next, id, "a released id is not handed out again");
    sessions.forget(&a);
    assert!(sessions.list(&a).is_empty());
    assert!(sessions.insert(&a, data()).is_ok());
}

#[tokio::test]
async fn imported_keys_are_neither_local_nor_always_sensitive() {
    let core = core().await;
    let generated = create(&core, "made-here", Algorithm::Aes256, None).await;
    let request = CreateKey {
        name: "brought-in".into(),
        algorithm: Algorithm::Aes256,
        usage: None,
        labels: BTreeMap::new(),
        exportable: false,
        allow_unwrapped_export: false,
    };
    let imported = core
        .keys
        .import(request.clone(), zeroize::Zeroizing::new(vec![7; 32]))
        .await
        .expect("import");
    assert_eq!(imported.versions[0].origin, Origin::Imported);
    assert_eq!(imported.versions[0].protection, Protection::Software);
    let local = |k: &ManagedKey| {
        let o = keys::key_object(k, 1, KeyClass::Secret).expect("object");
        (
            o.get_bool(CKA_LOCAL),
            o.get_bool(CKA_ALWAYS_SENSITIVE),
            o.get_bool(CKA_NEVER_EXTRACTABLE),
            o.get_ulong(CKA_KEY_GEN_MECHANISM),
        )
    };
    assert_eq!(local(&generated), (true, true, true, Some(CKM_AES_KEY_GEN)));
    assert_eq!(
        local(&imported),
        (false, false, false, Some(CK_UNAVAILABLE_INFORMATION))
    );
    let short = CreateKey {
        name: "too-short".into(),
        ..request.clone()
    };
    assert!(core
        .keys
        .import(short, zeroize::Zeroizing::new(vec![7; 16]))
        .await
        .is_err());
    let rsa = CreateKey {
        name: "not-aes".into(),
        algorithm: Algorithm::Rsa2048,
        ..request
    };
    assert!(matches!(
        core.keys
            .import(rsa, zeroize::Zeroizing::new(vec![7; 32]))
            .await,
        Err(KeyError::Unsupported(_))
    ));

    // Records stored before versions had an origin were all generated here.
    let mut stored = serde_json::to_value(&generated).expect("json");
    let version = stored["versions"][0].as_object_mut().expect("a version");
    assert_eq!(version.remove("origin"), Some("GENERATED".into()));
    let read: ManagedKey = serde_json::from_value(stored).expect("an older record");
    assert_eq!(read.versions[0].origin, Origin::Generated);
}

#[test]
fn received_secrets_are_read_as_aes_256_keys() {
    let base = || {
        vec![
            Attr::ulong(CKA_CLASS, CKO_SECRET_KEY),
            Attr::ulong(CKA_KEY_TYPE, CKK_AES),
        ]
    };
    let session = keygen::parse_secret(&base(), false).expect("session key");
    assert!(!session.token);
    assert!(session.label.is_empty());
    let token = keygen::parse_secret(
        &with(
            with(base(), Attr::bool(CKA_TOKEN, true)),
            Attr::bytes(CKA_LABEL, b"received".to_vec()),
        ),
        false,
    )
    .expect("token key");
    assert!(token.token);
    assert_eq!(token.key.create.name, "received");
    assert_eq!(token.key.create.algorithm, Algorithm::Aes256);
    assert!(keygen::parse_secret(
        &with(base(), Attr::bool(CKA_NEVER_EXTRACTABLE, false)),
        false
    )
    .is_ok());

    let generic = vec![
        Attr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        Attr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        Attr::ulong(CKA_VALUE_LEN, 32),
    ];
    assert!(keygen::parse_secret(&generic, true).is_ok());
    refused_with(
        keygen::parse_secret(&generic, false),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        keygen::parse_secret(&with(base(), Attr::ulong(CKA_VALUE_LEN, 16)), false),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        keygen::parse_secret(&[Attr::ulong(CKA_CLASS, CKO_PRIVATE_KEY)], false),
        code::TEMPLATE_INCONSISTENT,
    );
    refused_with(
        keygen::parse_secret(&with(base(), Attr::bool(CKA_LOCAL, true)), false),
        code::ATTRIBUTE_VALUE_INVALID,
    );
    refused_with(
        keygen::parse_secret(&with(base(), Attr::bool(CKA_EXTRACTABLE, true)), false),
        code::ATTRIBUTE_VALUE_INVALID,
    );

    let attributes = keygen::session_secret(&session);
    let object = Object {
        handle: Handle::Session(1),
        attributes,
        sensitive: vec![CKA_VALUE],
    };
    assert!(object.get_bool(CKA_ENCRYPT) && object.get_bool(CKA_SENSITIVE));
    assert!(!object.get_bool(CKA_TOKEN) && !object.get_bool(CKA_COPYABLE));
    assert_eq!(object.get(CKA_VALUE), None);
}
