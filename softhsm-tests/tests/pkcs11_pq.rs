//! ML-DSA-65 and ML-KEM-768 through the library with the PKCS#11 3.2 mechanisms
//! (cryptoki), checked against independent implementations (the `ml-dsa` and `ml-kem`
//! crates). SoftHSM2 has no post-quantum mechanisms: appliance only.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, MlKemParameterSetType, ObjectClass,
};
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, MlDsa65};
use ml_kem::kem::Encapsulate;
use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use softhsm_tests::pkcs11::{skip, Token};

type MlKemEk = <MlKem768 as KemCore>::EncapsulationKey;

fn value(s: &cryptoki::session::Session, h: cryptoki::object::ObjectHandle) -> Vec<u8> {
    match s
        .get_attributes(h, &[AttributeType::Value])
        .expect("C_GetAttributeValue(CKA_VALUE)")
        .as_slice()
    {
        [Attribute::Value(v)] => v.clone(),
        other => panic!("no CKA_VALUE on the public key: {other:?}"),
    }
}

#[test]
fn ml_dsa_65_signature_verifies_with_the_ml_dsa_crate() {
    if skip(true) {
        return;
    }
    let t = Token::start();
    let lib = t.load();
    let s = lib.user_session(&t.pin);
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_65.into()),
                Attribute::Label(b"pq-signer".to_vec()),
                Attribute::Id(vec![0x09]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Sign(true),
                Attribute::Label(b"pq-signer".to_vec()),
                Attribute::Id(vec![0x09]),
            ],
        )
        .expect("C_GenerateKeyPair(CKM_ML_DSA_KEY_PAIR_GEN)");
    match s
        .get_attributes(private, &[AttributeType::KeyType])
        .expect("C_GetAttributeValue(CKA_KEY_TYPE)")
        .as_slice()
    {
        [Attribute::KeyType(k)] => assert_eq!(*k, KeyType::ML_DSA),
        other => panic!("{other:?}"),
    }
    let message = b"signed inside the appliance, checked outside";
    let mechanism = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let signature = s
        .sign(&mechanism, private, message)
        .expect("C_Sign(CKM_ML_DSA)");
    s.verify(&mechanism, public, message, &signature)
        .expect("C_Verify(CKM_ML_DSA)");

    let encoded = EncodedVerifyingKey::<MlDsa65>::try_from(value(&s, public).as_slice())
        .expect("CKA_VALUE is an ML-DSA-65 public key (1952 bytes)");
    let vk = ml_dsa::VerifyingKey::<MlDsa65>::decode(&encoded);
    let sig = EncodedSignature::<MlDsa65>::try_from(signature.as_slice())
        .ok()
        .and_then(|e| ml_dsa::Signature::<MlDsa65>::decode(&e))
        .expect("an ML-DSA-65 signature (3309 bytes)");
    assert!(vk.verify_with_context(message, &[], &sig));
    assert!(!vk.verify_with_context(b"another message", &[], &sig));
}

#[test]
fn ml_kem_768_decapsulates_a_secret_encapsulated_outside() {
    if skip(true) {
        return;
    }
    let t = Token::start();
    let lib = t.load();
    let s = lib.user_session(&t.pin);
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Encapsulate(true),
                Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into()),
                Attribute::Label(b"pq-kem".to_vec()),
                Attribute::Id(vec![0x0a]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Decapsulate(true),
                Attribute::Label(b"pq-kem".to_vec()),
                Attribute::Id(vec![0x0a]),
            ],
        )
        .expect("C_GenerateKeyPair(CKM_ML_KEM_KEY_PAIR_GEN)");

    let encoded = ml_kem::Encoded::<MlKemEk>::try_from(value(&s, public).as_slice())
        .expect("CKA_VALUE is an ML-KEM-768 encapsulation key (1184 bytes)");
    let (ciphertext, shared) = MlKemEk::from_bytes(&encoded)
        .encapsulate(&mut rand::rngs::OsRng)
        .expect("encapsulate");

    let aes = s
        .decapsulate_key(
            &Mechanism::MlKem,
            private,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
            &ciphertext,
        )
        .expect("C_DecapsulateKey(CKM_ML_KEM)");

    let plaintext = b"only the holder of the shared secret reads this";
    let aad = b"pq";
    let mut iv = [7u8; 12];
    let sealed = s
        .encrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, aad, 128.into()).expect("GCM params")),
            aes,
            plaintext,
        )
        .expect("C_Encrypt(CKM_AES_GCM) with the decapsulated key");
    let opened = Aes256Gcm::new_from_slice(&shared)
        .expect("a 32-byte shared secret")
        .decrypt(Nonce::from_slice(&[7u8; 12]), Payload { msg: &sealed, aad })
        .expect("the library's key is the secret encapsulated outside");
    assert_eq!(opened, plaintext);
}
