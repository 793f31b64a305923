//! encrypt, decrypt, rewrap and datakey per key type; tamper detection; the uniform
//! answer for unknown keys.

use super::*;

const AEAD: [KeyType; 4] = [
    KeyType::Aes128Gcm96,
    KeyType::Aes256Gcm96,
    KeyType::ChaCha20Poly1305,
    KeyType::XChaCha20Poly1305,
];

#[tokio::test]
async fn aead_types_round_trip() {
    let e = engine().await;
    for kind in AEAD {
        let name = kind.as_str();
        create(&e, name, kind).await;
        let a = encrypt_one(&e, name, b"my secret data\n").await;
        let b = encrypt_one(&e, name, b"my secret data\n").await;
        assert!(a.ciphertext.starts_with("vault:v1:"), "{}", a.ciphertext);
        assert_eq!(a.key_version, 1);
        assert_ne!(a.ciphertext, b.ciphertext, "{kind}: nonces must differ");
        for ct in [&a.ciphertext, &b.ciphertext] {
            assert_eq!(
                decrypt_one(&e, name, ct).await.unwrap(),
                b"my secret data\n"
            );
        }
        // Empty plaintext and associated data.
        let empty = encrypt_one(&e, name, b"").await;
        assert_eq!(decrypt_one(&e, name, &empty.ciphertext).await.unwrap(), b"");
        let with_ad = CipherItem {
            associated_data: Some(b64(b"header")),
            ..pt_item(b"body")
        };
        let (r, _) = e.encrypt(name, &[with_ad], None, false).await.unwrap();
        let ct = r[0].as_ref().unwrap().ciphertext.clone();
        let ok = CipherItem {
            associated_data: Some(b64(b"header")),
            ..ct_item(&ct)
        };
        let wrong = CipherItem {
            associated_data: Some(b64(b"other")),
            ..ct_item(&ct)
        };
        let r = e.decrypt(name, &[ok, wrong, ct_item(&ct)]).await.unwrap();
        assert_eq!(unb64(r[0].as_ref().unwrap()), b"body");
        assert!(matches!(r[1], Err(TransitError::DecryptFailed)), "{kind}");
        assert!(matches!(r[2], Err(TransitError::DecryptFailed)), "{kind}");
    }
}

#[tokio::test]
async fn ciphertext_layout_is_vaults() {
    let e = engine().await;
    for (kind, nonce) in [(KeyType::Aes256Gcm96, 12), (KeyType::XChaCha20Poly1305, 24)] {
        create(&e, kind.as_str(), kind).await;
        let c = encrypt_one(&e, kind.as_str(), &[7u8; 10]).await;
        let raw = unb64(c.ciphertext.strip_prefix("vault:v1:").unwrap());
        assert_eq!(
            raw.len(),
            nonce + 10 + 16,
            "{kind}: nonce || ciphertext || tag"
        );
    }
}

#[tokio::test]
async fn url_safe_and_unpadded_ciphertexts_are_accepted() {
    let e = engine().await;
    create(&e, "k", KeyType::Aes256Gcm96).await;
    // Enough ciphertexts that some hold '+' and '/' in base64.
    for i in 0..40u8 {
        let c = encrypt_one(&e, "k", &[i; 17]).await;
        let url = c
            .ciphertext
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_string();
        assert_eq!(
            decrypt_one(&e, "k", &url).await.unwrap(),
            vec![i; 17],
            "{url}"
        );
    }
}

#[tokio::test]
async fn rsa_encrypts_with_oaep() {
    let e = engine().await;
    create(&e, "rsa", KeyType::Rsa2048).await;
    let c = encrypt_one(&e, "rsa", b"wrapped").await;
    let raw = unb64(c.ciphertext.strip_prefix("vault:v1:").unwrap());
    assert_eq!(raw.len(), 256);
    assert_eq!(
        decrypt_one(&e, "rsa", &c.ciphertext).await.unwrap(),
        b"wrapped"
    );
    // OAEP-SHA256 on 2048 bits holds at most 190 bytes.
    let (r, _) = e
        .encrypt("rsa", &[pt_item(&[0u8; 191])], None, false)
        .await
        .unwrap();
    let err = r[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("failed to RSA encrypt"), "{err}");
    // Associated data needs an AEAD.
    let item = CipherItem {
        associated_data: Some(b64(b"x")),
        ..pt_item(b"y")
    };
    let (r, _) = e.encrypt("rsa", &[item], None, false).await.unwrap();
    assert!(r[0].as_ref().unwrap_err().to_string().contains("non-AEAD"));
}

#[tokio::test]
async fn derived_keys_need_their_context() {
    let e = engine().await;
    let ctx = |c: &[u8]| CipherItem {
        context: Some(b64(c)),
        ..pt_item(b"per-tenant secret")
    };
    // An encrypt with a context creates a derived key.
    let (r, created) = e
        .encrypt("d", &[ctx(b"tenant-a")], None, false)
        .await
        .unwrap();
    assert!(created);
    assert!(e.get("d").unwrap().unwrap().config.derived);
    let ct = r[0].as_ref().unwrap().ciphertext.clone();
    let with = |c: &[u8]| CipherItem {
        context: Some(b64(c)),
        ..ct_item(&ct)
    };
    let r = e
        .decrypt("d", &[with(b"tenant-a"), with(b"tenant-b")])
        .await
        .unwrap();
    assert_eq!(unb64(r[0].as_ref().unwrap()), b"per-tenant secret");
    assert!(matches!(r[1], Err(TransitError::DecryptFailed)));
    assert!(matches!(
        decrypt_one(&e, "d", &ct).await,
        Err(TransitError::DecryptFailed)
    ));
    let (r, _) = e.encrypt("d", &[pt_item(b"x")], None, false).await.unwrap();
    assert!(r[0]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("missing 'context'"));
    // Contexts in some items only: the whole request is refused.
    let err = e
        .decrypt("d", &[with(b"tenant-a"), ct_item(&ct)])
        .await
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("either in all the request blocks or in none"));
}

#[tokio::test]
async fn convergent_encryption_is_deterministic_per_context() {
    let e = engine().await;
    let err = e
        .encrypt("c", &[pt_item(b"x")], None, true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("context is required"), "{err}");
    let item = |pt: &[u8], c: &[u8]| CipherItem {
        context: Some(b64(c)),
        ..pt_item(pt)
    };
    let (r, _) = e
        .encrypt(
            "c",
            &[
                item(b"same", b"ctx"),
                item(b"same", b"ctx"),
                item(b"same", b"other"),
                item(b"diff", b"ctx"),
            ],
            Some("chacha20-poly1305"),
            true,
        )
        .await
        .unwrap();
    let cts: Vec<String> = r.into_iter().map(|x| x.unwrap().ciphertext).collect();
    assert_eq!(cts[0], cts[1]);
    assert_ne!(cts[0], cts[2]);
    assert_ne!(cts[0], cts[3]);
    let key = e.get("c").unwrap().unwrap();
    assert!(key.config.convergent_encryption && key.config.derived);
    assert_eq!(key.kind(), KeyType::ChaCha20Poly1305);
    let back = CipherItem {
        context: Some(b64(b"ctx")),
        ..ct_item(&cts[3])
    };
    assert_eq!(
        unb64(e.decrypt("c", &[back]).await.unwrap()[0].as_ref().unwrap()),
        b"diff"
    );
    // A nonce is never taken from the caller.
    let with_nonce = CipherItem {
        nonce: Some(b64(&[0u8; 12])),
        ..item(b"x", b"ctx")
    };
    let (r, _) = e.encrypt("c", &[with_nonce], None, false).await.unwrap();
    assert!(r[0]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("nonce provided"));
}

#[tokio::test]
async fn tampering_truncation_and_wrong_keys_fail_alike() {
    let e = engine().await;
    create(&e, "my-key", KeyType::Aes256Gcm96).await;
    create(&e, "my-key2", KeyType::Aes256Gcm96).await;
    create(&e, "signer", KeyType::EcdsaP256).await;
    let c = encrypt_one(&e, "my-key", b"my secret data\n")
        .await
        .ciphertext;
    let raw = unb64(c.strip_prefix("vault:v1:").unwrap());

    let mut flipped = raw.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut body = raw.clone();
    body[14] ^= 0x80;
    let cut = &raw[..raw.len() - 1];
    let failing = [
        format!("vault:v1:{}", b64(&flipped)),
        format!("vault:v1:{}", b64(&body)),
        format!("vault:v1:{}", b64(cut)),
        // A version the key does not have.
        format!("vault:v2:{}", b64(&raw)),
    ];
    for ct in &failing {
        let err = decrypt_one(&e, "my-key", ct).await.unwrap_err();
        assert!(matches!(err, TransitError::DecryptFailed), "{ct}: {err}");
    }
    // Another key, no key at all, a key of a type that cannot decrypt: the same answer.
    for name in ["my-key2", "not-existing", "signer"] {
        let err = decrypt_one(&e, name, &c).await.unwrap_err();
        assert_eq!(err.to_string(), "Unable to decrypt the secret", "{name}");
    }
    // Malformed input says what is wrong, whatever the key.
    for name in ["my-key", "not-existing"] {
        let cases = [
            ("AAAA", "invalid ciphertext: no prefix"),
            ("vault:v1", "invalid ciphertext: wrong number of fields"),
            ("vault:vX:AAAA", "version number could not be decoded"),
            ("vault:v1:***", "could not decode base64"),
            ("vault:v1:AAAA", "invalid ciphertext length"),
        ];
        for (ct, msg) in cases {
            let err = decrypt_one(&e, name, ct).await.unwrap_err().to_string();
            assert!(err.contains(msg), "{name} {ct}: {err}");
        }
    }
    assert!(
        e.get("not-existing").unwrap().is_none(),
        "decrypt never creates keys"
    );
}

#[tokio::test]
async fn rewrap_moves_to_the_latest_version() {
    let e = engine().await;
    create(&e, "k", KeyType::Aes256Gcm96).await;
    let v1 = encrypt_one(&e, "k", b"data").await.ciphertext;
    e.rotate("k").await.unwrap();
    let r = e
        .rewrap("k", &[ct_item(&v1), ct_item("bogus")])
        .await
        .unwrap();
    let v2 = r[0].as_ref().unwrap();
    assert!(v2.ciphertext.starts_with("vault:v2:"));
    assert_eq!(v2.key_version, 2);
    assert!(r[1].is_err());
    assert_eq!(decrypt_one(&e, "k", &v2.ciphertext).await.unwrap(), b"data");
    // Rewrapping to an explicit older version, and under an unknown key.
    let back = CipherItem {
        key_version: 1,
        ..ct_item(&v2.ciphertext)
    };
    let r = e.rewrap("k", &[back]).await.unwrap();
    assert!(r[0].as_ref().unwrap().ciphertext.starts_with("vault:v1:"));
    let r = e.rewrap("nope", &[ct_item(&v1)]).await.unwrap();
    assert!(matches!(r[0], Err(TransitError::DecryptFailed)));
}

#[tokio::test]
async fn datakeys_decrypt_to_the_returned_key() {
    let e = engine().await;
    create(&e, "k", KeyType::Aes128Gcm96).await;
    for bits in [128u64, 256, 512] {
        let (plain, enc) = e.datakey("k", bits, 0, &None, &None).await.unwrap();
        assert_eq!(plain.len() as u64 * 8, bits);
        assert_eq!(
            decrypt_one(&e, "k", &enc.ciphertext).await.unwrap(),
            plain.as_slice()
        );
    }
    let err = e.datakey("k", 100, 0, &None, &None).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid bit length");
    let err = e
        .datakey("missing", 256, 0, &None, &None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "encryption key not found");
}
