//! Batches: per-item errors beside processed items, whole-request errors, HMACs.

use super::*;

#[tokio::test]
async fn encrypt_batch_reports_bad_items_and_processes_the_rest() {
    let e = engine().await;
    let items = vec![
        pt_item(b"first"),
        CipherItem {
            plaintext: Some("not base64!".into()),
            reference: "bad".into(),
            ..Default::default()
        },
        CipherItem::default(),
        CipherItem {
            malformed: Some("'[3].plaintext' expected type 'string', got 'number'".into()),
            ..Default::default()
        },
        pt_item(b"last"),
    ];
    let (r, created) = e.encrypt("auto", &items, None, false).await.unwrap();
    assert!(created, "encrypt creates a missing key");
    assert_eq!(r.len(), 5);
    assert!(r[1].as_ref().unwrap_err().to_string().contains("base64"));
    assert_eq!(
        r[2].as_ref().unwrap_err().to_string(),
        "missing plaintext to encrypt"
    );
    assert!(r[3]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("expected type 'string'"));
    let first = r[0].as_ref().unwrap();
    let last = r[4].as_ref().unwrap();
    assert_eq!(
        decrypt_one(&e, "auto", &first.ciphertext).await.unwrap(),
        b"first"
    );
    assert_eq!(
        decrypt_one(&e, "auto", &last.ciphertext).await.unwrap(),
        b"last"
    );

    let d = e
        .decrypt(
            "auto",
            &[
                ct_item(&first.ciphertext),
                ct_item("vault:v1:????"),
                CipherItem::default(),
                ct_item(&last.ciphertext.replace("vault:v1:", "vault:v7:")),
                ct_item(&last.ciphertext),
            ],
        )
        .await
        .unwrap();
    assert_eq!(unb64(d[0].as_ref().unwrap()), b"first");
    assert!(d[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("could not decode base64"));
    assert_eq!(
        d[2].as_ref().unwrap_err().to_string(),
        "missing ciphertext to decrypt"
    );
    assert_eq!(
        d[3].as_ref().unwrap_err().to_string(),
        "Unable to decrypt the secret"
    );
    assert_eq!(unb64(d[4].as_ref().unwrap()), b"last");

    let err = e.decrypt("auto", &[]).await.unwrap_err();
    assert_eq!(err.to_string(), "missing batch input to process");
}

#[tokio::test]
async fn encrypt_creates_only_aead_keys() {
    let e = engine().await;
    let err = e
        .encrypt("x", &[pt_item(b"a")], Some("ecdsa-p256"), false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key type ecdsa-p256 not supported for this operation"
    );
    let err = e
        .encrypt("x", &[pt_item(b"a")], Some("des"), false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown key type des");
    assert!(e.get("x").unwrap().is_none());
    let (_, created) = e
        .encrypt("x", &[pt_item(b"a")], Some("aes128-gcm96"), false)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(e.get("x").unwrap().unwrap().kind(), KeyType::Aes128Gcm96);
}

fn input(data: &[u8]) -> InputItem {
    InputItem {
        input: Some(b64(data)),
        ..Default::default()
    }
}

#[tokio::test]
async fn hmac_with_any_key_and_hmac_keys() {
    use ::hmac::{Hmac, Mac};
    let e = engine().await;
    create(&e, "aes", KeyType::Aes256Gcm96).await;
    let (hk, _) = e
        .create(
            "h",
            CreateKey {
                kind: KeyType::Hmac,
                key_size: Some(64),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hk.latest().unwrap().secret.len(), 64);
    for name in ["aes", "h"] {
        let r = e
            .hmac(name, &[input(b"data"), InputItem::default()], 0, "sha2-512")
            .await
            .unwrap();
        let (tag, version) = r[0].as_ref().unwrap().clone();
        assert_eq!(version, 1);
        assert_eq!(
            r[1].as_ref().unwrap_err().to_string(),
            "missing input for HMAC"
        );
        // Recompute with the HMAC key the key carries.
        let key = e.get(name).unwrap().unwrap();
        let v = key.latest().unwrap();
        let mac_key = if name == "h" { &v.secret } else { &v.hmac_key };
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(mac_key.as_slice()).unwrap();
        mac.update(b"data");
        let want = format!("vault:v1:{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(tag, want);

        let check = |tag: &str, data: &[u8]| InputItem {
            hmac: Some(tag.to_string()),
            ..input(data)
        };
        let v = e
            .verify_hmacs(
                name,
                &[
                    check(&tag, b"data"),
                    check(&tag, b"other"),
                    check("junk", b"data"),
                ],
                "sha2-512",
            )
            .await
            .unwrap();
        assert!(v[0].as_ref().unwrap());
        assert!(!v[1].as_ref().unwrap());
        assert!(v[2].as_ref().unwrap_err().to_string().contains("no prefix"));
    }
    let err = e.hmac("aes", &[input(b"x")], 0, "md5").await.unwrap_err();
    assert!(err.to_string().contains("unsupported algorithm"));
    let err = e
        .hmac("aes", &[input(b"x")], 2, "sha2-256")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("latest key version is 1"));
    let err = e
        .hmac("missing", &[input(b"x")], 0, "sha2-256")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "encryption key not found");
}

#[test]
fn verify_mode_follows_vaults_rules() {
    let sig = InputItem {
        signature: Some("s".into()),
        ..Default::default()
    };
    let mac = InputItem {
        hmac: Some("h".into()),
        ..Default::default()
    };
    let both = InputItem {
        signature: Some("s".into()),
        hmac: Some("h".into()),
        ..Default::default()
    };
    let neither = InputItem::default();
    assert_eq!(
        verify_mode(std::slice::from_ref(&sig), false).unwrap(),
        VerifyMode::Signature
    );
    assert_eq!(
        verify_mode(std::slice::from_ref(&mac), false).unwrap(),
        VerifyMode::Hmac
    );
    let msg = |items: &[InputItem], batch| verify_mode(items, batch).unwrap_err().to_string();
    assert_eq!(msg(&[both], false), "provide one of 'signature' or 'hmac'");
    assert!(msg(std::slice::from_ref(&neither), false).contains("neither"));
    assert!(msg(&[sig.clone(), mac.clone()], true).contains("must all provide"));
    assert!(msg(&[sig, neither.clone()], true).contains("missing 'signature'"));
    assert!(msg(&[mac, neither], true).contains("missing 'hmac'"));
}

#[test]
fn hash_endpoint_algorithms() {
    let sum = hash::hash("sha2-256", b"abc").unwrap();
    assert_eq!(
        hex::encode(sum),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hash::hash("sha3-512", b"").unwrap().len(), 64);
    assert!(
        hash::hash("sha1", b"").is_err(),
        "Vault's hash endpoint has no SHA-1"
    );
    assert!(hash::hash("md5", b"").is_err());
}

#[tokio::test]
async fn batches_past_the_limit_are_refused_whole() {
    let barrier = barrier().await;
    let e = TransitEngine::new(
        barrier,
        PREFIX.into(),
        TransitSettings {
            max_batch_items: 3,
            ..Default::default()
        },
    );
    create(&e, "aes", KeyType::Aes256Gcm96).await;
    let items = |n: usize| vec![pt_item(b"x"); n];
    let (r, _) = e.encrypt("aes", &items(3), None, false).await.unwrap();
    assert_eq!(r.len(), 3);
    let err = e.encrypt("aes", &items(4), None, false).await.unwrap_err();
    assert!(err.to_string().contains("limit of 3"), "{err}");
    assert!(err.to_string().contains("max_batch_items"), "{err}");
    let ct = r[0].as_ref().unwrap().ciphertext.clone();
    let err = e.decrypt("aes", &vec![ct_item(&ct); 4]).await.unwrap_err();
    assert!(err.to_string().contains("limit of 3"), "{err}");
}

#[tokio::test]
async fn large_batches_run_on_the_pool_and_keep_their_order() {
    let e = engine().await;
    create(&e, "aes", KeyType::Aes256Gcm96).await;
    // Past the inline threshold: chunked on the compute pool, answered in item order.
    let items: Vec<_> = (0..600u32)
        .map(|i| pt_item(i.to_string().as_bytes()))
        .collect();
    let (r, _) = e.encrypt("aes", &items, None, false).await.unwrap();
    let back: Vec<_> = r
        .iter()
        .map(|x| ct_item(&x.as_ref().unwrap().ciphertext))
        .collect();
    let plain = e.decrypt("aes", &back).await.unwrap();
    for (i, p) in plain.iter().enumerate() {
        assert_eq!(unb64(p.as_ref().unwrap()), i.to_string().as_bytes());
    }
}
