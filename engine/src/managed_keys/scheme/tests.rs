//! Each scheme against an independent computation: the RustCrypto verifiers, published
//! vectors, and round trips through the other direction.

use ::rsa::signature::{SignatureEncoding, Verifier};
use hsm_bridge::{Capabilities, HashAlg, KeySpec, Mechanisms, ShamirRoot};
use ml_dsa::MlDsa65;
use sha2::{Digest, Sha256, Sha384};

use super::super::material::{generate, load};
use super::*;

struct Key {
    loaded: Loaded,
    public: Option<Vec<u8>>,
    root: ShamirRoot,
}

fn software(algorithm: Algorithm) -> Key {
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    let (stored, public, protection) = generate(algorithm, false, &root).unwrap();
    assert_eq!(protection, Protection::Software);
    let loaded = load(algorithm, &stored, public.as_deref()).unwrap();
    Key {
        loaded,
        public,
        root,
    }
}

impl Key {
    fn sign(
        &self,
        algorithm: Algorithm,
        scheme: SignScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let plan = sign::plan(algorithm, scheme)?;
        sign::sign(&self.loaded, algorithm, &self.root, &plan, message)
    }

    fn public(&self) -> &[u8] {
        self.public.as_deref().unwrap()
    }

    fn encrypt(
        &self,
        algorithm: Algorithm,
        scheme: &CipherScheme,
        plain: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        cipher::check(algorithm, scheme)?;
        cipher::encrypt(
            Some(&self.loaded),
            algorithm,
            Protection::Software,
            self.public.as_deref(),
            &self.root,
            scheme,
            plain,
        )
    }

    fn decrypt(
        &self,
        algorithm: Algorithm,
        scheme: &CipherScheme,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        cipher::check(algorithm, scheme)?;
        cipher::decrypt(
            &self.loaded,
            algorithm,
            Protection::Software,
            &self.root,
            scheme,
            ct,
        )
    }
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn code(e: KeyError) -> &'static str {
    e.code()
}

#[test]
fn default_rsa_signatures_are_blinded_pkcs1v15_sha256() {
    let key = software(Algorithm::Rsa2048);
    let sig = key
        .sign(Algorithm::Rsa2048, SignScheme::Default, b"message")
        .unwrap();
    let ok = |m: &[u8], s: &[u8]| {
        verify_public(Algorithm::Rsa2048, key.public(), &SignScheme::Default, m, s).unwrap()
    };
    assert!(ok(b"message", &sig));
    assert!(!ok(b"other", &sig));
    // PKCS#1 v1.5 is deterministic: blinding must not change the signature.
    let again = key
        .sign(Algorithm::Rsa2048, SignScheme::Default, b"message")
        .unwrap();
    assert_eq!(sig, again);
    let Loaded::Rsa(k) = &key.loaded else {
        panic!("not an RSA key")
    };
    let reference = ::rsa::pkcs1v15::SigningKey::<Sha256>::new(k.private.clone());
    let expected = ::rsa::signature::Signer::sign(&reference, b"message").to_vec();
    assert_eq!(sig, expected);
}

#[test]
fn rsa_pkcs1_with_and_without_a_hash() {
    let key = software(Algorithm::Rsa2048);
    let Loaded::Rsa(k) = &key.loaded else {
        panic!("not an RSA key")
    };
    let vk384 = ::rsa::pkcs1v15::VerifyingKey::<Sha384>::new(k.public.clone());
    let sig = key
        .sign(
            Algorithm::Rsa2048,
            SignScheme::RsaPkcs1 {
                hash: Some(Hash::Sha384),
            },
            b"m",
        )
        .unwrap();
    let parsed = ::rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap();
    assert!(vk384.verify(b"m", &parsed).is_ok());
    let sig1 = key
        .sign(
            Algorithm::Rsa2048,
            SignScheme::RsaPkcs1 {
                hash: Some(Hash::Sha1),
            },
            b"m",
        )
        .unwrap();
    let vk1 = ::rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(k.public.clone());
    assert!(vk1
        .verify(
            b"m",
            &::rsa::pkcs1v15::Signature::try_from(&sig1[..]).unwrap()
        )
        .is_ok());

    // CKM_RSA_PKCS over a SHA-256 DigestInfo built by hand is CKM_SHA256_RSA_PKCS.
    let mut info = unhex("3031300d060960864801650304020105000420");
    info.extend_from_slice(&Sha256::digest(b"m"));
    let raw = SignScheme::RsaPkcs1 { hash: None };
    let sig = key.sign(Algorithm::Rsa2048, raw.clone(), &info).unwrap();
    let hashed = key
        .sign(
            Algorithm::Rsa2048,
            SignScheme::RsaPkcs1 {
                hash: Some(Hash::Sha256),
            },
            b"m",
        )
        .unwrap();
    assert_eq!(sig, hashed);
    assert!(verify_public(Algorithm::Rsa2048, key.public(), &raw, &info, &sig).unwrap());
    assert!(!verify_public(Algorithm::Rsa2048, key.public(), &raw, b"other", &sig).unwrap());
    // k - 11 bytes at most.
    assert!(key
        .sign(Algorithm::Rsa2048, raw.clone(), &[1u8; 245])
        .is_ok());
    let e = key.sign(Algorithm::Rsa2048, raw, &[1u8; 246]).unwrap_err();
    assert_eq!(code(e), "DATA_TOO_LONG");
}

#[test]
fn rsa_pss_over_a_digest_and_a_message() {
    let key = software(Algorithm::Rsa3072);
    let digest = Sha256::digest(b"message").to_vec();
    let raw = SignScheme::RsaPss {
        hash: None,
        digest: Hash::Sha256,
        mgf: Hash::Sha256,
        salt_len: 32,
    };
    let sig = key.sign(Algorithm::Rsa3072, raw.clone(), &digest).unwrap();
    let Loaded::Rsa(k) = &key.loaded else {
        panic!("not an RSA key")
    };
    // The rsa crate's own PSS verifier (salt length found from the encoding).
    let vk = ::rsa::pss::VerifyingKey::<Sha256>::new(k.public.clone());
    assert!(vk
        .verify(
            b"message",
            &::rsa::pss::Signature::try_from(&sig[..]).unwrap()
        )
        .is_ok());
    assert!(verify_public(Algorithm::Rsa3072, key.public(), &raw, &digest, &sig).unwrap());
    // Randomised: a second signature differs and verifies too.
    let hashed = SignScheme::RsaPss {
        hash: Some(Hash::Sha256),
        digest: Hash::Sha256,
        mgf: Hash::Sha256,
        salt_len: 32,
    };
    let sig2 = key
        .sign(Algorithm::Rsa3072, hashed.clone(), b"message")
        .unwrap();
    assert_ne!(sig, sig2);
    assert!(verify_public(Algorithm::Rsa3072, key.public(), &hashed, b"message", &sig2).unwrap());
    assert!(!verify_public(Algorithm::Rsa3072, key.public(), &hashed, b"other", &sig2).unwrap());

    let e = key
        .sign(Algorithm::Rsa3072, raw.clone(), &digest[..31])
        .unwrap_err();
    assert_eq!(code(e), "INVALID_DIGEST_LENGTH");
    let too_salty = SignScheme::RsaPss {
        hash: None,
        digest: Hash::Sha256,
        mgf: Hash::Sha256,
        salt_len: 384,
    };
    assert!(matches!(
        key.sign(Algorithm::Rsa3072, too_salty, &digest),
        Err(KeyError::Invalid { .. })
    ));
    let other_mgf = SignScheme::RsaPss {
        hash: None,
        digest: Hash::Sha256,
        mgf: Hash::Sha1,
        salt_len: 32,
    };
    assert!(matches!(
        key.sign(Algorithm::Rsa3072, other_mgf, &digest),
        Err(KeyError::Unsupported(_))
    ));
    // PSS on an EC key is no scheme at all.
    assert!(matches!(
        sign::plan(Algorithm::EcP256, raw),
        Err(KeyError::WrongKeyType(_))
    ));
}

#[test]
fn raw_ecdsa_is_r_and_s_over_the_digest() {
    use p256::ecdsa::signature::Verifier as _;
    let key = software(Algorithm::EcP256);
    let digest = Sha256::digest(b"message");
    let raw = SignScheme::EcdsaRaw { hash: None };
    let sig = key.sign(Algorithm::EcP256, raw.clone(), &digest).unwrap();
    assert_eq!(sig.len(), 64);
    // As DER, the p256 crate verifies it over the message.
    let der = p256::ecdsa::Signature::from_slice(&sig).unwrap().to_der();
    let vk = <p256::ecdsa::VerifyingKey as ::rsa::pkcs8::DecodePublicKey>::from_public_key_der(
        key.public(),
    )
    .unwrap();
    assert!(vk
        .verify(
            b"message",
            &p256::ecdsa::Signature::from_der(der.as_bytes()).unwrap()
        )
        .is_ok());
    assert!(verify_public(Algorithm::EcP256, key.public(), &raw, &digest, &sig).unwrap());
    let hashed = SignScheme::EcdsaRaw {
        hash: Some(Hash::Sha256),
    };
    assert!(verify_public(Algorithm::EcP256, key.public(), &hashed, b"message", &sig).unwrap());
    assert!(!verify_public(Algorithm::EcP256, key.public(), &hashed, b"other", &sig).unwrap());
    // The default answers DER over SHA-256.
    let default = key
        .sign(Algorithm::EcP256, SignScheme::Default, b"message")
        .unwrap();
    assert!(p256::ecdsa::Signature::from_der(&default).is_ok());

    // P-384 over a SHA-1 digest (shorter than the field) and a SHA-512 one (longer).
    let key = software(Algorithm::EcP384);
    for digest in [
        sha1::Sha1::digest(b"m").to_vec(),
        sha2::Sha512::digest(b"m").to_vec(),
    ] {
        let sig = key.sign(Algorithm::EcP384, raw.clone(), &digest).unwrap();
        assert_eq!(sig.len(), 96);
        assert!(verify_public(Algorithm::EcP384, key.public(), &raw, &digest, &sig).unwrap());
    }
    let e = key.sign(Algorithm::EcP384, raw, &[]).unwrap_err();
    assert_eq!(code(e), "INVALID_DIGEST_LENGTH");
    assert!(matches!(
        sign::plan(Algorithm::Rsa2048, SignScheme::EcdsaRaw { hash: None }),
        Err(KeyError::WrongKeyType(_))
    ));
}

#[test]
fn ml_dsa_pure_with_context_hedged_or_deterministic() {
    let key = software(Algorithm::MlDsa65);
    let enc = ml_dsa::EncodedVerifyingKey::<MlDsa65>::try_from(key.public()).unwrap();
    let vk = ml_dsa::VerifyingKey::<MlDsa65>::decode(&enc);
    let parse = |s: &[u8]| {
        ml_dsa::Signature::<MlDsa65>::decode(
            &ml_dsa::EncodedSignature::<MlDsa65>::try_from(s).unwrap(),
        )
        .unwrap()
    };
    let scheme = |deterministic| SignScheme::MlDsa {
        context: b"ctx".to_vec(),
        deterministic,
    };
    let hedged = key
        .sign(Algorithm::MlDsa65, scheme(false), b"message")
        .unwrap();
    let hedged2 = key
        .sign(Algorithm::MlDsa65, scheme(false), b"message")
        .unwrap();
    assert_ne!(hedged, hedged2);
    let det = key
        .sign(Algorithm::MlDsa65, scheme(true), b"message")
        .unwrap();
    assert_eq!(
        det,
        key.sign(Algorithm::MlDsa65, scheme(true), b"message")
            .unwrap()
    );
    for sig in [&hedged, &hedged2, &det] {
        assert!(vk.verify_with_context(b"message", b"ctx", &parse(sig)));
        assert!(!vk.verify_with_context(b"message", b"", &parse(sig)));
        assert!(verify_public(
            Algorithm::MlDsa65,
            key.public(),
            &scheme(false),
            b"message",
            sig
        )
        .unwrap());
    }
    // The default is deterministic with an empty context.
    let default = key
        .sign(Algorithm::MlDsa65, SignScheme::Default, b"message")
        .unwrap();
    assert!(vk.verify_with_context(b"message", b"", &parse(&default)));
    let long = SignScheme::MlDsa {
        context: vec![0; 256],
        deterministic: true,
    };
    assert_eq!(
        code(key.sign(Algorithm::MlDsa65, long, b"m").unwrap_err()),
        "INVALID_CONTEXT"
    );
}

#[test]
fn rsa_oaep_with_labels_and_pkcs1_round_trip() {
    let key = software(Algorithm::Rsa2048);
    for (hash, label) in [
        (Hash::Sha1, &b""[..]),
        (Hash::Sha256, b"label"),
        (Hash::Sha384, b""),
        (Hash::Sha512, b"another label"),
    ] {
        let scheme = CipherScheme::RsaOaep {
            hash,
            mgf: hash,
            label: label.to_vec(),
        };
        let ct = encrypt_public(Algorithm::Rsa2048, key.public(), &scheme, b"secret").unwrap();
        let plain = key.decrypt(Algorithm::Rsa2048, &scheme, &ct).unwrap();
        assert_eq!(&plain[..], b"secret");
        let other = CipherScheme::RsaOaep {
            hash,
            mgf: hash,
            label: b"other".to_vec(),
        };
        assert_eq!(
            code(key.decrypt(Algorithm::Rsa2048, &other, &ct).unwrap_err()),
            "DECRYPTION_FAILED"
        );
        let max = 256 - 2 * hash.digest_len() - 2;
        assert!(key
            .encrypt(Algorithm::Rsa2048, &scheme, &vec![1; max])
            .is_ok());
        assert_eq!(
            code(
                key.encrypt(Algorithm::Rsa2048, &scheme, &vec![1; max + 1])
                    .unwrap_err()
            ),
            "DATA_TOO_LONG"
        );
    }
    // The rsa crate's own OAEP (SHA-256 and an MGF1-SHA-1, as some HSMs pair them).
    let Loaded::Rsa(k) = &key.loaded else {
        panic!("not an RSA key")
    };
    let mixed = CipherScheme::RsaOaep {
        hash: Hash::Sha256,
        mgf: Hash::Sha1,
        label: Vec::new(),
    };
    let ct = k
        .public
        .encrypt(
            &mut rand::rngs::OsRng,
            ::rsa::Oaep::new_with_mgf_hash::<Sha256, sha1::Sha1>(),
            b"secret",
        )
        .unwrap();
    assert_eq!(
        &key.decrypt(Algorithm::Rsa2048, &mixed, &ct).unwrap()[..],
        b"secret"
    );

    let binary_label = CipherScheme::RsaOaep {
        hash: Hash::Sha256,
        mgf: Hash::Sha256,
        label: vec![0xff, 0xfe],
    };
    assert!(matches!(
        key.encrypt(Algorithm::Rsa2048, &binary_label, b"x"),
        Err(KeyError::Unsupported(_))
    ));

    let ct = key
        .encrypt(Algorithm::Rsa2048, &CipherScheme::RsaPkcs1, b"secret")
        .unwrap();
    let plain = k.private.decrypt(::rsa::Pkcs1v15Encrypt, &ct).unwrap();
    assert_eq!(plain, b"secret");
    assert_eq!(
        &key.decrypt(Algorithm::Rsa2048, &CipherScheme::RsaPkcs1, &ct)
            .unwrap()[..],
        b"secret"
    );
    assert_eq!(
        code(
            key.encrypt(Algorithm::Rsa2048, &CipherScheme::RsaPkcs1, &[0; 246])
                .unwrap_err()
        ),
        "DATA_TOO_LONG"
    );
}

#[test]
fn default_rsa_encryption_round_trips() {
    let key = software(Algorithm::Rsa2048);
    let ct = key
        .encrypt(Algorithm::Rsa2048, &CipherScheme::Default, b"secret")
        .unwrap();
    let plain = key
        .decrypt(Algorithm::Rsa2048, &CipherScheme::Default, &ct)
        .unwrap();
    assert_eq!(&plain[..], b"secret");
    // The default is OAEP SHA-256 for software keys.
    let sha256 = CipherScheme::RsaOaep {
        hash: Hash::Sha256,
        mgf: Hash::Sha256,
        label: Vec::new(),
    };
    assert_eq!(
        &key.decrypt(Algorithm::Rsa2048, &sha256, &ct).unwrap()[..],
        b"secret"
    );
    let mut tampered = ct.clone();
    tampered[10] ^= 1;
    assert!(key
        .decrypt(Algorithm::Rsa2048, &CipherScheme::Default, &tampered)
        .is_err());
    assert!(matches!(
        key.encrypt(Algorithm::Rsa2048, &CipherScheme::Default, &[0; 191]),
        Err(KeyError::TooLarge(_))
    ));
}

/// The GCM specification's test case 16 (AES-256, 60 bytes, AAD), set as the key.
#[test]
fn aes_gcm_with_caller_iv_and_aad() {
    let mut key = software(Algorithm::Aes256);
    key.loaded = Loaded::Aes(Zeroizing::new(unhex(
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
    )));
    let scheme = CipherScheme::AesGcm {
        iv: unhex("cafebabefacedbaddecaf888"),
        aad: unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
        tag_len: 16,
    };
    let plain = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    let expected = unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b");
    let ct = key.encrypt(Algorithm::Aes256, &scheme, &plain).unwrap();
    assert_eq!(ct, expected);
    assert_eq!(
        &key.decrypt(Algorithm::Aes256, &scheme, &ct).unwrap()[..],
        &plain[..]
    );
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert_eq!(
        code(key.decrypt(Algorithm::Aes256, &scheme, &bad).unwrap_err()),
        "DECRYPTION_FAILED"
    );
    let other_aad = CipherScheme::AesGcm {
        iv: unhex("cafebabefacedbaddecaf888"),
        aad: Vec::new(),
        tag_len: 16,
    };
    assert!(key.decrypt(Algorithm::Aes256, &other_aad, &ct).is_err());
    let short_iv = CipherScheme::AesGcm {
        iv: vec![0; 8],
        aad: Vec::new(),
        tag_len: 16,
    };
    assert_eq!(
        code(key.encrypt(Algorithm::Aes256, &short_iv, b"x").unwrap_err()),
        "INVALID_IV"
    );
    let short_tag = CipherScheme::AesGcm {
        iv: vec![0; 12],
        aad: Vec::new(),
        tag_len: 12,
    };
    assert!(matches!(
        key.encrypt(Algorithm::Aes256, &short_tag, b"x"),
        Err(KeyError::Unsupported(_))
    ));
    // The default prepends a fresh IV and opens as GCM under it.
    let framed = key
        .encrypt(Algorithm::Aes256, &CipherScheme::Default, b"secret")
        .unwrap();
    let under_its_iv = CipherScheme::AesGcm {
        iv: framed[..12].to_vec(),
        aad: Vec::new(),
        tag_len: 16,
    };
    assert_eq!(
        &key.decrypt(Algorithm::Aes256, &under_its_iv, &framed[12..])
            .unwrap()[..],
        b"secret"
    );
    assert_eq!(
        &key.decrypt(Algorithm::Aes256, &CipherScheme::Default, &framed)
            .unwrap()[..],
        b"secret"
    );
}

#[test]
fn aes_cbc_pad_round_trip_and_bad_padding() {
    let key = software(Algorithm::Aes256);
    let scheme = CipherScheme::AesCbcPad { iv: [9; 16] };
    for len in [0usize, 1, 16, 33] {
        let plain = vec![0x5a; len];
        let ct = key.encrypt(Algorithm::Aes256, &scheme, &plain).unwrap();
        assert_eq!(ct.len(), (len / 16 + 1) * 16);
        let Loaded::Aes(k) = &key.loaded else {
            panic!("not an AES key")
        };
        assert_eq!(
            &*crate::crypto::aes::cbc_pad_decrypt(k, &[9; 16], &ct).unwrap(),
            &plain[..]
        );
        assert_eq!(
            &key.decrypt(Algorithm::Aes256, &scheme, &ct).unwrap()[..],
            &plain[..]
        );
    }
    let mut ct = key
        .encrypt(Algorithm::Aes256, &scheme, b"0123456789abcdef")
        .unwrap();
    ct[15] ^= 1;
    assert_eq!(
        code(key.decrypt(Algorithm::Aes256, &scheme, &ct).unwrap_err()),
        "DECRYPTION_FAILED"
    );
    assert_eq!(
        code(
            key.decrypt(Algorithm::Aes256, &scheme, &ct[..20])
                .unwrap_err()
        ),
        "INVALID_CIPHERTEXT"
    );
    assert!(matches!(
        cipher::check(Algorithm::Rsa2048, &scheme),
        Err(KeyError::WrongKeyType(_))
    ));
}

/// RFC 3394 section 4.6 through the managed-key path.
#[test]
fn aes_key_unwrap_vectors() {
    let loaded = Loaded::Aes(Zeroizing::new(unhex(
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
    )));
    let wrapped =
        unhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21");
    let data = unhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
    assert_eq!(
        &*cipher::aes_unwrap(&loaded, &wrapped, false).unwrap(),
        &data[..]
    );
    assert_eq!(cipher::aes_wrap(&loaded, &data, false).unwrap(), wrapped);
    let padded = cipher::aes_wrap(&loaded, b"seven b", true).unwrap();
    assert_eq!(
        &*cipher::aes_unwrap(&loaded, &padded, true).unwrap(),
        b"seven b"
    );
    let mut bad = wrapped.clone();
    bad[5] ^= 1;
    assert_eq!(
        code(cipher::aes_unwrap(&loaded, &bad, false).unwrap_err()),
        "DECRYPTION_FAILED"
    );
    assert_eq!(
        code(cipher::aes_unwrap(&loaded, &wrapped[..17], false).unwrap_err()),
        "INVALID_CIPHERTEXT"
    );
    let hsm = Loaded::Hsm(hsm_bridge::WrappedKey {
        spec: KeySpec::Aes256,
        blob: vec![1],
        public: None,
    });
    assert!(matches!(
        cipher::aes_unwrap(&hsm, &wrapped, false),
        Err(KeyError::Unsupported(_))
    ));
}

#[test]
fn ml_kem_encapsulates_to_a_public_key_and_decapsulates() {
    let key = software(Algorithm::MlKem768);
    let (ct, shared) = encapsulate_public(key.public()).unwrap();
    assert_eq!((ct.len(), shared.len()), (1088, 32));
    assert_eq!(cipher::decapsulate(&key.loaded, &ct).unwrap(), shared);
    assert_eq!(
        code(cipher::decapsulate(&key.loaded, &ct[1..]).unwrap_err()),
        "INVALID_CIPHERTEXT"
    );
    assert_eq!(
        code(encapsulate_public(&[0; 10]).unwrap_err()),
        "INVALID_PUBLIC_KEY"
    );
    let sealed = key
        .encrypt(Algorithm::MlKem768, &CipherScheme::Default, b"secret")
        .unwrap();
    assert_eq!(
        &key.decrypt(Algorithm::MlKem768, &CipherScheme::Default, &sealed)
            .unwrap()[..],
        b"secret"
    );
    assert!(matches!(
        cipher::check(Algorithm::MlKem768, &CipherScheme::RsaPkcs1),
        Err(KeyError::WrongKeyType(_))
    ));
}

/// Software versions can do every scheme of their type; HSM versions what the boundary
/// reports, here a SoftHSM2-like one (OAEP with SHA-1 only).
#[test]
fn capabilities_answer_per_protection_and_scheme() {
    let none = Capabilities::default();
    let softhsm = Capabilities {
        hardware: true,
        in_boundary_keys: true,
        hardware_rng: true,
        mechanisms: Mechanisms::RSA_PKCS_SIGN
            .with(Mechanisms::rsa_pkcs_hash_sign(HashAlg::Sha256))
            .with(Mechanisms::RSA_PSS_SIGN)
            .with(Mechanisms::ECDSA_SIGN)
            .with(Mechanisms::RSA_PKCS_DECRYPT)
            .with(Mechanisms::rsa_oaep_decrypt(HashAlg::Sha1))
            .with(Mechanisms::AES_GCM),
    };
    let oaep = |hash| CipherScheme::RsaOaep {
        hash,
        mgf: hash,
        label: Vec::new(),
    };
    let pss = SignScheme::RsaPss {
        hash: None,
        digest: Hash::Sha256,
        mgf: Hash::Sha256,
        salt_len: 32,
    };
    let sw = Protection::Software;
    let hsm = Protection::Hsm;
    for caps in [&none, &softhsm] {
        assert!(can_sign(Algorithm::Rsa2048, sw, caps, &pss));
        assert!(can_sign(Algorithm::MlDsa65, sw, caps, &SignScheme::Default));
        assert!(can_cipher(
            Algorithm::Rsa2048,
            sw,
            caps,
            &oaep(Hash::Sha256)
        ));
        assert!(can_cipher(
            Algorithm::Aes256,
            sw,
            caps,
            &CipherScheme::AesCbcPad { iv: [0; 16] }
        ));
        assert!(!can_sign(Algorithm::EcP256, sw, caps, &pss));
        assert!(!can_cipher(
            Algorithm::EcP256,
            sw,
            caps,
            &CipherScheme::Default
        ));
    }
    assert!(!can_sign(
        Algorithm::Rsa2048,
        hsm,
        &none,
        &SignScheme::Default
    ));
    assert!(can_sign(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        &SignScheme::Default
    ));
    assert!(can_sign(Algorithm::Rsa2048, hsm, &softhsm, &pss));
    assert!(can_sign(
        Algorithm::EcP384,
        hsm,
        &softhsm,
        &SignScheme::EcdsaRaw { hash: None }
    ));
    assert!(!can_sign(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        &SignScheme::RsaPkcs1 {
            hash: Some(Hash::Sha512)
        }
    ));
    assert!(can_cipher(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        &CipherScheme::Default
    ));
    assert!(can_cipher(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        &oaep(Hash::Sha1)
    ));
    assert!(!can_cipher(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        &oaep(Hash::Sha256)
    ));
    assert!(can_cipher(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        &CipherScheme::RsaPkcs1
    ));
    let gcm = CipherScheme::AesGcm {
        iv: vec![0; 12],
        aad: b"aad".to_vec(),
        tag_len: 16,
    };
    assert!(can_cipher(Algorithm::Aes256, hsm, &softhsm, &gcm));
    assert!(!can_cipher(
        Algorithm::Aes256,
        hsm,
        &softhsm,
        &CipherScheme::AesCbcPad { iv: [0; 16] }
    ));
    assert!(!can_wrap(
        Algorithm::Aes256,
        hsm,
        &softhsm,
        WrapScheme::AesKeyWrapPad
    ));
    assert!(can_wrap(
        Algorithm::Aes256,
        sw,
        &none,
        WrapScheme::AesKeyWrapPad
    ));
    assert!(can_wrap(
        Algorithm::Rsa2048,
        hsm,
        &softhsm,
        WrapScheme::RsaOaep {
            hash: Hash::Sha1,
            mgf: Hash::Sha1
        }
    ));
}
