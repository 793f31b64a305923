//! sign and verify for every asymmetric type, hash and encoding; the signatures are
//! also checked from the public key a read shows, outside the engine's code paths.

use rsa::pkcs8::DecodePublicKey;

use super::*;

const HASHES: [HashAlgorithm; 9] = [
    HashAlgorithm::Sha1,
    HashAlgorithm::Sha2_224,
    HashAlgorithm::Sha2_256,
    HashAlgorithm::Sha2_384,
    HashAlgorithm::Sha2_512,
    HashAlgorithm::Sha3_224,
    HashAlgorithm::Sha3_256,
    HashAlgorithm::Sha3_384,
    HashAlgorithm::Sha3_512,
];

fn input(data: &[u8]) -> InputItem {
    InputItem {
        input: Some(b64(data)),
        ..Default::default()
    }
}

async fn sign(e: &TransitEngine, name: &str, data: &[u8], opts: &SignOptions) -> Signed {
    e.sign(name, &[input(data)], 0, opts)
        .await
        .unwrap()
        .remove(0)
        .unwrap()
}

async fn verify(e: &TransitEngine, name: &str, data: &[u8], sig: &str, opts: &SignOptions) -> bool {
    let item = InputItem {
        signature: Some(sig.to_string()),
        ..input(data)
    };
    e.verify_signatures(name, &[item], opts)
        .await
        .unwrap()
        .remove(0)
        .unwrap()
}

fn raw_sig(s: &Signed) -> Vec<u8> {
    let body = s.signature.split(':').nth(2).unwrap();
    decode_base64(body).unwrap()
}

#[tokio::test]
async fn ecdsa_signs_with_every_hash_and_marshaling() {
    let e = engine().await;
    for kind in [KeyType::EcdsaP256, KeyType::EcdsaP384] {
        let key = create(&e, kind.as_str(), kind).await;
        let pem = key.latest().unwrap().public_key.clone();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----\n"));
        for hash in HASHES {
            for marshaling in [Marshaling::Asn1, Marshaling::Jws] {
                let opts = SignOptions {
                    hash,
                    marshaling,
                    ..Default::default()
                };
                let s = sign(&e, kind.as_str(), b"hello", &opts).await;
                assert!(s.signature.starts_with("vault:v1:"));
                assert!(verify(&e, kind.as_str(), b"hello", &s.signature, &opts).await);
                assert!(!verify(&e, kind.as_str(), b"hellO", &s.signature, &opts).await);
                // Independently: the curve crate's verifier, from the PEM.
                let digest = hash.digest(b"hello").unwrap();
                let sig = raw_sig(&s);
                use ecdsa::signature::hazmat::PrehashVerifier;
                let ok = match kind {
                    KeyType::EcdsaP256 => {
                        let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
                        let sig = match marshaling {
                            Marshaling::Asn1 => p256::ecdsa::Signature::from_der(&sig).unwrap(),
                            Marshaling::Jws => p256::ecdsa::Signature::from_slice(&sig).unwrap(),
                        };
                        let mut d = digest.clone();
                        while d.len() < 32 {
                            d.insert(0, 0);
                        }
                        vk.verify_prehash(&d, &sig).is_ok()
                    }
                    _ => {
                        let vk = p384::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
                        let sig = match marshaling {
                            Marshaling::Asn1 => p384::ecdsa::Signature::from_der(&sig).unwrap(),
                            Marshaling::Jws => p384::ecdsa::Signature::from_slice(&sig).unwrap(),
                        };
                        let mut d = digest.clone();
                        while d.len() < 48 {
                            d.insert(0, 0);
                        }
                        vk.verify_prehash(&d, &sig).is_ok()
                    }
                };
                assert!(ok, "{kind} {hash:?} {marshaling:?}");
                if marshaling == Marshaling::Jws {
                    assert!(!s.signature.contains('+') && !s.signature.contains('/'));
                }
            }
        }
        // Prehashed input is signed as given.
        let digest = HashAlgorithm::Sha2_256.digest(b"msg").unwrap();
        let pre = SignOptions {
            prehashed: true,
            ..Default::default()
        };
        let s = sign(&e, kind.as_str(), &digest, &pre).await;
        assert!(
            verify(
                &e,
                kind.as_str(),
                b"msg",
                &s.signature,
                &SignOptions::default()
            )
            .await
        );
        // A signature that is not DER is refused, not just invalid.
        let err = e
            .verify_signatures(
                kind.as_str(),
                &[InputItem {
                    signature: Some(format!("vault:v1:{}", b64(b"junk"))),
                    ..input(b"x")
                }],
                &SignOptions::default(),
            )
            .await
            .unwrap()
            .remove(0)
            .unwrap_err();
        assert_eq!(err.to_string(), "supplied signature is invalid");
    }
}

#[tokio::test]
async fn rsa_signs_with_pss_and_pkcs1v15() {
    let e = engine().await;
    let key = create(&e, "rsa", KeyType::Rsa2048).await;
    let public = rsa::RsaPublicKey::from_public_key_pem(&key.latest().unwrap().public_key).unwrap();
    for hash in HASHES {
        for scheme in [RsaScheme::Pss, RsaScheme::Pkcs1v15] {
            let opts = SignOptions {
                hash,
                rsa_scheme: scheme,
                ..Default::default()
            };
            let s = sign(&e, "rsa", b"payload", &opts).await;
            assert!(
                verify(&e, "rsa", b"payload", &s.signature, &opts).await,
                "{hash:?} {scheme:?}"
            );
            assert!(!verify(&e, "rsa", b"payload!", &s.signature, &opts).await);
            let sig = raw_sig(&s);
            assert_eq!(sig.len(), 256);
            let digest = hash.digest(b"payload").unwrap();
            if scheme == RsaScheme::Pkcs1v15 {
                // PKCS#1 v1.5 is deterministic: recompute it with the scheme directly.
                let d = hash_digest_info(hash, &digest);
                let unprefixed = rsa::Pkcs1v15Sign::new_unprefixed();
                assert!(public.verify(unprefixed, &d, &sig).is_ok(), "{hash:?}");
            }
        }
    }
    // Salt lengths: auto signs with the longest salt, hash with the digest's length.
    for salt in [
        SaltLength::Auto,
        SaltLength::Hash,
        SaltLength::Bytes(0),
        SaltLength::Bytes(20),
    ] {
        let opts = SignOptions {
            salt_length: salt,
            ..Default::default()
        };
        let s = sign(&e, "rsa", b"salty", &opts).await;
        assert!(
            verify(&e, "rsa", b"salty", &s.signature, &opts).await,
            "{salt:?}"
        );
    }
    let hash_salt = SignOptions {
        salt_length: SaltLength::Hash,
        ..Default::default()
    };
    let s = sign(&e, "rsa", b"salty", &hash_salt).await;
    assert!(verify(&e, "rsa", b"salty", &s.signature, &SignOptions::default()).await);
    let too_long = SignOptions {
        salt_length: SaltLength::Bytes(1000),
        ..Default::default()
    };
    let err = e
        .sign("rsa", &[input(b"x")], 0, &too_long)
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(err.to_string().contains("salt length 1000 is invalid"));

    // hash_algorithm=none: prehashed PKCS#1 v1.5 without a DigestInfo.
    let none = SignOptions {
        hash: HashAlgorithm::None,
        prehashed: true,
        rsa_scheme: RsaScheme::Pkcs1v15,
        ..Default::default()
    };
    let s = sign(&e, "rsa", b"already-a-digest", &none).await;
    assert!(verify(&e, "rsa", b"already-a-digest", &s.signature, &none).await);
    let bad_none = SignOptions {
        hash: HashAlgorithm::None,
        ..Default::default()
    };
    let err = e
        .sign("rsa", &[input(b"x")], 0, &bad_none)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hash_algorithm=none requires"));
    // Prehashed input of the wrong length.
    let pre = SignOptions {
        prehashed: true,
        ..Default::default()
    };
    let err = e
        .sign("rsa", &[input(b"short")], 0, &pre)
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(err.to_string().contains("32-byte sha2-256 digest"), "{err}");
}

/// DER DigestInfo prefixes (RFC 8017 §9.2 note 1) for the PKCS#1 v1.5 cross-check.
fn hash_digest_info(hash: HashAlgorithm, digest: &[u8]) -> Vec<u8> {
    let prefix: &[u8] = match hash {
        HashAlgorithm::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlgorithm::Sha2_224 => &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1c,
        ],
        HashAlgorithm::Sha2_256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlgorithm::Sha2_384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlgorithm::Sha2_512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        HashAlgorithm::Sha3_224 => &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x07, 0x05, 0x00, 0x04, 0x1c,
        ],
        HashAlgorithm::Sha3_256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x08, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlgorithm::Sha3_384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x09, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlgorithm::Sha3_512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x0a, 0x05, 0x00, 0x04, 0x40,
        ],
        HashAlgorithm::None => &[],
    };
    [prefix, digest].concat()
}

#[tokio::test]
async fn ed25519_signs_the_message_itself() {
    let e = engine().await;
    let key = create(&e, "ed", KeyType::Ed25519).await;
    let public = unb64(&key.latest().unwrap().public_key);
    assert_eq!(public.len(), 32);
    let s = sign(&e, "ed", b"message", &SignOptions::default()).await;
    assert!(verify(&e, "ed", b"message", &s.signature, &SignOptions::default()).await);
    assert!(!verify(&e, "ed", b"messagE", &s.signature, &SignOptions::default()).await);
    assert!(
        !verify(
            &e,
            "ed",
            b"message",
            "vault:v1:AAAA",
            &SignOptions::default()
        )
        .await
    );
    use ed25519_dalek::Verifier;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&raw_sig(&s)).unwrap();
    assert!(vk.verify(b"message", &sig).is_ok());
}

#[tokio::test]
async fn derived_ed25519_has_a_key_per_context() {
    let e = engine().await;
    let spec = CreateKey {
        kind: KeyType::Ed25519,
        derived: true,
        ..Default::default()
    };
    let (key, _) = e.create("ed", spec).await.unwrap();
    let v = key.latest().unwrap();
    assert_eq!(key.shown_public_key(v, b"").unwrap(), "");
    let item = |c: &[u8]| InputItem {
        context: Some(b64(c)),
        ..input(b"m")
    };
    let s = e
        .sign("ed", &[item(b"a")], 0, &SignOptions::default())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let public = s.public_key.clone().unwrap();
    assert_eq!(b64(&public), key.shown_public_key(v, b"a").unwrap());
    assert_ne!(
        key.shown_public_key(v, b"a").unwrap(),
        key.shown_public_key(v, b"b").unwrap()
    );
    let signed = |c: &[u8]| InputItem {
        signature: Some(s.signature.clone()),
        ..item(c)
    };
    let opts = SignOptions::default();
    let verified = e
        .verify_signatures("ed", &[signed(b"a"), signed(b"b")], &opts)
        .await
        .unwrap();
    assert!(verified[0].as_ref().unwrap());
    assert!(!verified[1].as_ref().unwrap());
    let err = e
        .sign("ed", &[input(b"m")], 0, &SignOptions::default())
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(err.to_string().contains("missing 'context'"));
}

#[tokio::test]
async fn signing_versions_and_wrong_types() {
    let e = engine().await;
    create(&e, "ec", KeyType::EcdsaP256).await;
    create(&e, "aes", KeyType::Aes256Gcm96).await;
    let v1 = sign(&e, "ec", b"m", &SignOptions::default()).await;
    e.rotate("ec").await.unwrap();
    let v2 = sign(&e, "ec", b"m", &SignOptions::default()).await;
    assert_eq!((v1.key_version, v2.key_version), (1, 2));
    assert!(v2.signature.starts_with("vault:v2:"));
    assert!(verify(&e, "ec", b"m", &v1.signature, &SignOptions::default()).await);
    e.configure(
        "ec",
        ConfigUpdate {
            min_decryption_version: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let it = InputItem {
        signature: Some(v1.signature.clone()),
        ..input(b"m")
    };
    let err = e
        .verify_signatures("ec", &[it], &SignOptions::default())
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(err.to_string().contains("too old"));
    let err = e
        .sign("ec", &[input(b"m")], 9, &SignOptions::default())
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(err.to_string().contains("higher than the latest"));

    let err = e
        .sign("aes", &[input(b"m")], 0, &SignOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key type aes256-gcm96 does not support signing"
    );
    let err = e
        .sign("none", &[input(b"m")], 0, &SignOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "signing key not found");
    let (r, _) = e
        .encrypt("ec", &[pt_item(b"x")], None, false)
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().to_string(),
        "message encryption not supported for key type ecdsa-p256"
    );
}
