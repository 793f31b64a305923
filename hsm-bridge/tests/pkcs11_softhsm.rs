//! The PKCS#11 backend against a real SoftHSM2 token in a temporary directory.
#![cfg(feature = "pkcs11")]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use hsm_bridge::pkcs11::{Pkcs11Config, Pkcs11Device};
use hsm_bridge::{
    BridgeError, DecryptMechanism, EncryptMechanism, HashAlg, KeySpec, Mechanisms, OpenMode,
    SealDevice, SealFault, SignMechanism,
};
use softhsm_tests::hardware::{write_private, SoftHsm, SOFTHSM_MODULE as MODULE, USER_PIN};

/// One SoftHSM2 token per process: `SOFTHSM2_CONF` is process-wide, so the tests in this
/// file share the token (each uses its own key label).
fn token() -> &'static SoftHsm {
    static TOKEN: std::sync::OnceLock<SoftHsm> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let hsm = SoftHsm::new("unit");
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
        hsm
    })
}

fn config(label: &str) -> Pkcs11Config {
    Pkcs11Config {
        lib: MODULE.into(),
        slot: None,
        token_label: Some("unit".into()),
        key_label: label.into(),
        generate_key: true,
        pin_file: Some(token().pin_file()),
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn wraps_and_unwraps_inside_the_token() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = Pkcs11Device::new(config("root-a"));
    assert!(matches!(
        dev.open(OpenMode::Existing),
        Err(BridgeError::Refused {
            fault: SealFault::DeviceMismatch,
            ..
        })
    ));
    let root = dev.open(OpenMode::CreateIfMissing).unwrap();
    let blob = root.wrap(b"core/keyring", b"the keyring").unwrap();
    assert_eq!(
        &*root.unwrap(b"core/keyring", &blob).unwrap(),
        b"the keyring"
    );
    assert!(root.unwrap(b"other", &blob).is_err());
    let mut r = [0u8; 16];
    root.random(&mut r).unwrap();
    assert_ne!(r, [0u8; 16]);
    drop(root);
    // Another key cannot open it, and says why.
    let other = Pkcs11Device::new(config("root-b"))
        .open(OpenMode::CreateIfMissing)
        .unwrap();
    let e = other.unwrap(b"core/keyring", &blob).unwrap_err();
    assert!(matches!(e, BridgeError::ForeignKeyring(_)), "{e}");
}

#[test]
fn wrong_pin_is_a_clear_error_without_the_pin() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pin");
    write_private(&bad, "987654\n");
    let mut c = config("root-a");
    c.pin_file = Some(bad);
    let e = Pkcs11Device::new(c)
        .open(OpenMode::CreateIfMissing)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("CKR_PIN_INCORRECT"), "{e}");
    assert!(!e.contains("987654"), "{e}");
    let mut c = config("root-a");
    c.lib = dir.path().join("nope.so");
    let e = Pkcs11Device::new(c)
        .open(OpenMode::CreateIfMissing)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    // And a good open works right after the failures.
    Pkcs11Device::new(config("root-a"))
        .open(OpenMode::CreateIfMissing)
        .unwrap();
}

#[test]
fn managed_keys_are_generated_wrapped_and_used_inside_the_token() {
    use hsm_bridge::KeySpec;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Pkcs11Device::new(config("root-keys"))
        .open(OpenMode::CreateIfMissing)
        .unwrap();
    assert!(root.capabilities().in_boundary_keys);
    for spec in [KeySpec::Rsa(2048), KeySpec::EcP256, KeySpec::EcP384] {
        let k = root.generate_key(spec).unwrap();
        assert!(k.public.as_ref().is_some_and(|p| p[0] == 0x30), "{spec:?}");
        let (mech, data): (SignMechanism, &[u8]) = match spec {
            KeySpec::Rsa(_) => (
                SignMechanism::RsaPkcs1 {
                    hash: Some(HashAlg::Sha256),
                },
                b"hello",
            ),
            _ => (SignMechanism::EcdsaPrehashed, &[7u8; 32]),
        };
        let sig = root.sign(&k, mech, data).unwrap();
        assert!(!sig.is_empty(), "{spec:?}");
        // Cached: a second use reuses the unwrapped object.
        root.sign(&k, mech, data).unwrap();
        root.forget_key(&k);
        root.sign(&k, mech, data).unwrap();
    }
    let aes = root.generate_key(KeySpec::Aes256).unwrap();
    let ct = root
        .encrypt(&aes, gcm_encrypt(&[3; 12]), b"secret")
        .unwrap();
    assert_eq!(
        &*root.decrypt(&aes, gcm_decrypt(&[3; 12], b""), &ct).unwrap(),
        b"secret"
    );
    let mut bad = ct.clone();
    bad[2] ^= 1;
    assert!(root
        .decrypt(&aes, gcm_decrypt(&[3; 12], b""), &bad)
        .is_err());
}

fn gcm_encrypt(iv: &[u8]) -> EncryptMechanism<'_> {
    EncryptMechanism::AesGcm {
        iv,
        aad: b"",
        tag_len: 16,
    }
}

fn gcm_decrypt<'a>(iv: &'a [u8], aad: &'a [u8]) -> DecryptMechanism<'a> {
    DecryptMechanism::AesGcm {
        iv,
        aad,
        tag_len: 16,
    }
}

/// Each in-boundary mechanism against an independent computation: signatures verified
/// by RustCrypto with the token's public key, ciphertexts made by RustCrypto decrypted
/// by the token, and the capabilities the backend measured (SoftHSM2 2.6: OAEP with
/// SHA-1 only).
#[test]
fn in_boundary_mechanisms_agree_with_software() {
    use p256::ecdsa::signature::Verifier as _;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPublicKey};
    use sha2::{Digest, Sha256, Sha384, Sha512};

    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Pkcs11Device::new(config("root-mechanisms"))
        .open(OpenMode::CreateIfMissing)
        .unwrap();
    let found = root.capabilities().mechanisms;
    for (m, what) in [
        (Mechanisms::RSA_PKCS_SIGN, "CKM_RSA_PKCS sign"),
        (
            Mechanisms::rsa_pkcs_hash_sign(HashAlg::Sha256),
            "SHA256_RSA_PKCS",
        ),
        (
            Mechanisms::rsa_pkcs_hash_sign(HashAlg::Sha512),
            "SHA512_RSA_PKCS",
        ),
        (Mechanisms::RSA_PSS_SIGN, "RSA_PKCS_PSS"),
        (Mechanisms::ECDSA_SIGN, "ECDSA"),
        (Mechanisms::RSA_PKCS_DECRYPT, "CKM_RSA_PKCS decrypt"),
        (Mechanisms::rsa_oaep_decrypt(HashAlg::Sha1), "OAEP SHA-1"),
        (Mechanisms::AES_GCM, "AES_GCM"),
        (Mechanisms::AES_CBC_PAD, "AES_CBC_PAD"),
    ] {
        assert!(found.contains(m), "{what} missing from {found:?}");
    }
    for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        assert!(
            !found.contains(Mechanisms::rsa_oaep_decrypt(hash)),
            "SoftHSM2 answered OAEP {hash:?}: update DESIGN.md"
        );
    }

    let rsa = root.generate_key(KeySpec::Rsa(2048)).unwrap();
    let pk = RsaPublicKey::from_public_key_der(rsa.public.as_deref().unwrap()).unwrap();
    let digest = Sha256::digest(b"message");
    // CKM_RSA_PKCS over a DigestInfo built here.
    let mut info = hex::decode("3031300d060960864801650304020105000420").unwrap();
    info.extend_from_slice(&digest);
    let sig = root
        .sign(&rsa, SignMechanism::RsaPkcs1 { hash: None }, &info)
        .unwrap();
    pk.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap();
    let sig = root
        .sign(
            &rsa,
            SignMechanism::RsaPkcs1 {
                hash: Some(HashAlg::Sha384),
            },
            b"message",
        )
        .unwrap();
    pk.verify(
        Pkcs1v15Sign::new::<Sha384>(),
        &Sha384::digest(b"message"),
        &sig,
    )
    .unwrap();
    let sig = root
        .sign(
            &rsa,
            SignMechanism::RsaPkcs1 {
                hash: Some(HashAlg::Sha512),
            },
            b"message",
        )
        .unwrap();
    pk.verify(
        Pkcs1v15Sign::new::<Sha512>(),
        &Sha512::digest(b"message"),
        &sig,
    )
    .unwrap();
    let pss = SignMechanism::RsaPss {
        digest: HashAlg::Sha256,
        mgf: HashAlg::Sha256,
        salt_len: 32,
    };
    let sig = root.sign(&rsa, pss, &digest).unwrap();
    pk.verify(Pss::new_with_salt::<Sha256>(32), &digest, &sig)
        .unwrap();
    // Too long for CKM_RSA_PKCS (k - 11 bytes at most): SoftHSM2 answers
    // CKR_GENERAL_ERROR, not CKR_DATA_LEN_RANGE, so the engine checks lengths first.
    assert!(root
        .sign(&rsa, SignMechanism::RsaPkcs1 { hash: None }, &[1; 250])
        .is_err());

    let mut rng = rand::rngs::OsRng;
    let ct = pk.encrypt(&mut rng, Pkcs1v15Encrypt, b"secret").unwrap();
    assert_eq!(
        &*root.decrypt(&rsa, DecryptMechanism::RsaPkcs1, &ct).unwrap(),
        b"secret"
    );
    let ct = pk
        .encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), b"secret")
        .unwrap();
    let oaep = DecryptMechanism::RsaOaep {
        hash: HashAlg::Sha1,
        mgf: HashAlg::Sha1,
        label: b"",
    };
    assert_eq!(&*root.decrypt(&rsa, oaep, &ct).unwrap(), b"secret");
    assert!(matches!(
        root.decrypt(&rsa, oaep, &ct[1..]),
        Err(BridgeError::BadInput(_))
    ));

    let ec = root.generate_key(KeySpec::EcP256).unwrap();
    let raw = root
        .sign(&ec, SignMechanism::EcdsaPrehashed, &digest)
        .unwrap();
    assert_eq!(raw.len(), 64);
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(ec.public.as_deref().unwrap()).unwrap();
    vk.verify(
        b"message",
        &p256::ecdsa::Signature::from_slice(&raw).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        root.sign(&ec, SignMechanism::RsaPkcs1 { hash: None }, &digest),
        Err(BridgeError::Unsupported { .. })
    ));

    let aes = root.generate_key(KeySpec::Aes256).unwrap();
    let iv = [5u8; 12];
    let gcm = EncryptMechanism::AesGcm {
        iv: &iv,
        aad: b"header",
        tag_len: 16,
    };
    let ct = root.encrypt(&aes, gcm, b"secret").unwrap();
    assert_eq!(ct.len(), 6 + 16);
    assert_eq!(
        &*root
            .decrypt(&aes, gcm_decrypt(&iv, b"header"), &ct)
            .unwrap(),
        b"secret"
    );
    assert!(matches!(
        root.decrypt(&aes, gcm_decrypt(&iv, b"other"), &ct),
        Err(BridgeError::BadInput(_))
    ));
    for len in [0usize, 5, 16, 40] {
        let plain = vec![0x42u8; len];
        let ct = root
            .encrypt(&aes, EncryptMechanism::AesCbcPad { iv: [1; 16] }, &plain)
            .unwrap();
        assert_eq!(ct.len(), (len / 16 + 1) * 16);
        assert_eq!(
            &*root
                .decrypt(&aes, DecryptMechanism::AesCbcPad { iv: [1; 16] }, &ct)
                .unwrap(),
            &plain[..]
        );
        // Another IV changes the first block only; a changed last-but-one block
        // spoils the padding.
        if len >= 16 {
            let mut bad = ct.clone();
            let at = ct.len() - 17;
            bad[at] ^= 0x01;
            assert!(root
                .decrypt(&aes, DecryptMechanism::AesCbcPad { iv: [1; 16] }, &bad)
                .is_err());
        }
    }
}

/// A session of the test's own on the shared token, logged in as the user: what someone
/// holding the user PIN can do. The module is initialised once per process; whichever of
/// the test and the device comes second gets CKR_CRYPTOKI_ALREADY_INITIALIZED.
fn user_session() -> Session {
    token();
    let ctx = Pkcs11::new(MODULE).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == "unit")
        .expect("the test token");
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(USER_PIN.to_string()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    session
}

fn bool_attr(s: &Session, h: ObjectHandle, kind: AttributeType) -> bool {
    match s.get_attributes(h, &[kind]).unwrap().as_slice() {
        [Attribute::Sensitive(b)]
        | [Attribute::Extractable(b)]
        | [Attribute::AlwaysSensitive(b)]
        | [Attribute::NeverExtractable(b)] => *b,
        other => panic!("{kind:?}: {other:?}"),
    }
}

fn objects_labelled(s: &Session, label: &str) -> Vec<ObjectHandle> {
    s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .unwrap()
}

/// A 256-bit AES session object with the attributes `extra` on top.
fn session_aes_key(s: &Session, extra: &[Attribute]) -> ObjectHandle {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(false),
    ];
    template.extend_from_slice(extra);
    s.generate_key(&Mechanism::AesKeyGen, &template).unwrap()
}

fn plant_aes_key(s: &Session, label: &str, extractable: bool, bytes: u64) -> ObjectHandle {
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(bytes.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(extractable),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
    )
    .unwrap()
}

#[test]
fn unwrapped_managed_keys_are_sensitive_and_not_extractable() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Pkcs11Device::new(config("root-unwrap"))
        .open(OpenMode::CreateIfMissing)
        .unwrap();
    let rsa = root.generate_key(KeySpec::Rsa(2048)).unwrap();
    root.sign(
        &rsa,
        SignMechanism::RsaPkcs1 {
            hash: Some(HashAlg::Sha256),
        },
        b"hello",
    )
    .unwrap();
    let aes = root.generate_key(KeySpec::Aes256).unwrap();
    root.encrypt(&aes, gcm_encrypt(&[3; 12]), b"secret")
        .unwrap();

    // The objects the appliance unwrapped for use: session objects of this process.
    let s = user_session();
    let mut seen = 0;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
        for h in s
            .find_objects(&[Attribute::Token(false), Attribute::Class(class)])
            .unwrap()
        {
            seen += 1;
            assert!(bool_attr(&s, h, AttributeType::Sensitive), "{class:?}");
            assert!(!bool_attr(&s, h, AttributeType::Extractable), "{class:?}");
        }
    }
    assert_eq!(
        seen, 2,
        "the unwrapped RSA and AES keys, and no generation leftovers"
    );

    // The root key forces the same on anything unwrapped with it, even for a caller who
    // holds the PIN and asks for an extractable copy of a stored blob.
    let root_key = objects_labelled(&s, "root-unwrap");
    assert_eq!(root_key.len(), 1);
    let asked = s.unwrap_key(
        &Mechanism::AesKeyWrapPad,
        root_key[0],
        &aes.blob,
        &[
            Attribute::Token(false),
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ],
    );
    match asked {
        Err(CkError::Pkcs11(RvError::TemplateInconsistent, _)) => {}
        Ok(h) => {
            let (sensitive, extractable) = (
                bool_attr(&s, h, AttributeType::Sensitive),
                bool_attr(&s, h, AttributeType::Extractable),
            );
            let _ = s.destroy_object(h);
            panic!("the root key unwrapped a key with CKA_SENSITIVE={sensitive}, CKA_EXTRACTABLE={extractable}");
        }
        Err(e) => panic!("unexpected answer to an unwrap against the template: {e}"),
    }

    // Control: the same request against a wrapping key without CKA_UNWRAP_TEMPLATE is
    // granted, so the refusal above is the template's doing (measured on SoftHSM2 2.6).
    let plain_root = session_aes_key(&s, &[Attribute::Wrap(true), Attribute::Unwrap(true)]);
    let target = session_aes_key(
        &s,
        &[Attribute::Sensitive(true), Attribute::Extractable(true)],
    );
    let blob = s
        .wrap_key(&Mechanism::AesKeyWrapPad, plain_root, target)
        .unwrap();
    let copy = s
        .unwrap_key(
            &Mechanism::AesKeyWrapPad,
            plain_root,
            &blob,
            &[
                Attribute::Token(false),
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .expect("without a template the token grants the caller's attributes");
    assert!(bool_attr(&s, copy, AttributeType::Extractable));
}

#[test]
fn a_root_key_someone_made_extractable_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = user_session();
    plant_aes_key(&s, "root-planted", true, 32);
    let e = Pkcs11Device::new(config("root-planted"))
        .open(OpenMode::CreateIfMissing)
        .err()
        .expect("an extractable root key must be refused");
    assert!(
        matches!(
            e,
            BridgeError::Refused {
                fault: SealFault::RootKeyUnsafe,
                ..
            }
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("CKA_EXTRACTABLE is not false"), "{text}");
    assert!(text.contains("CKA_NEVER_EXTRACTABLE is not true"), "{text}");
    assert_eq!(e.category(), "root_key_unsafe");
    // A failed open finalises the module (so the next attempt starts clean): log in again.
    let s = user_session();
    // Refused, not shadowed: no second key appeared under the label.
    assert_eq!(objects_labelled(&s, "root-planted").len(), 1);

    // An AES-128 key under the label is refused for its length.
    plant_aes_key(&s, "root-short", false, 16);
    let e = Pkcs11Device::new(config("root-short"))
        .open(OpenMode::CreateIfMissing)
        .err()
        .expect("AES-128 root key");
    assert!(e.to_string().contains("AES-128 rather than AES-256"), "{e}");
}

#[test]
fn two_objects_under_the_root_key_label_are_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = user_session();
    plant_aes_key(&s, "root-twice", false, 32);
    plant_aes_key(&s, "root-twice", false, 32);
    let e = Pkcs11Device::new(config("root-twice"))
        .open(OpenMode::CreateIfMissing)
        .err()
        .expect("two keys under one label");
    assert!(
        matches!(
            e,
            BridgeError::Refused {
                fault: SealFault::RootKeyAmbiguous,
                ..
            }
        ),
        "{e}"
    );
    let s = user_session();
    assert_eq!(objects_labelled(&s, "root-twice").len(), 2);
}

#[test]
fn an_init_run_again_reuses_the_root_key_it_made() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let blob = {
        let first = Pkcs11Device::new(config("root-again"))
            .open(OpenMode::CreateIfMissing)
            .unwrap();
        first.wrap(b"core/keyring", b"k").unwrap()
    };
    // A new device, as after a restart: finds the key instead of making another.
    let again = Pkcs11Device::new(config("root-again"))
        .open(OpenMode::CreateIfMissing)
        .unwrap();
    assert_eq!(&*again.unwrap(b"core/keyring", &blob).unwrap(), b"k");
    let s = user_session();
    let keys = objects_labelled(&s, "root-again");
    assert_eq!(keys.len(), 1);
    // The key the appliance made is sensitive and was never extractable.
    assert!(bool_attr(&s, keys[0], AttributeType::Sensitive));
    assert!(!bool_attr(&s, keys[0], AttributeType::Extractable));
    assert!(bool_attr(&s, keys[0], AttributeType::AlwaysSensitive));
    assert!(bool_attr(&s, keys[0], AttributeType::NeverExtractable));
}
