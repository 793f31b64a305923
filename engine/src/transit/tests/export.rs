//! export: refused unless exportable, Vault's encodings otherwise.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};

use super::*;

async fn exportable(e: &TransitEngine, name: &str, kind: KeyType) -> Arc<Key> {
    e.create(
        name,
        CreateKey {
            kind,
            exportable: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .0
}

#[tokio::test]
async fn private_material_needs_exportable() {
    let e = engine().await;
    let key = create(&e, "locked", KeyType::EcdsaP256).await;
    for what in [ExportType::SigningKey, ExportType::HmacKey] {
        let err = key.export(what, ExportFormat::Default, None).unwrap_err();
        assert_eq!(err.to_string(), "private key material is not exportable");
    }
    let public = key
        .export(ExportType::PublicKey, ExportFormat::Default, None)
        .unwrap();
    assert_eq!(
        public[&1].as_str(),
        key.latest().unwrap().public_key.trim_end()
    );
    // Turning exportable on later works, and cannot be undone.
    let (k, _) = e
        .configure(
            "locked",
            ConfigUpdate {
                exportable: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(k
        .export(ExportType::SigningKey, ExportFormat::Default, None)
        .is_ok());
    let (k, _) = e
        .configure(
            "locked",
            ConfigUpdate {
                exportable: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(k.config.exportable);
}

#[tokio::test]
async fn exported_keys_match_the_key() {
    let e = engine().await;
    // Symmetric: the raw key, which decrypts what transit encrypted.
    let aes = exportable(&e, "aes", KeyType::Aes256Gcm96).await;
    let c = encrypt_one(&e, "aes", b"plain").await.ciphertext;
    let raw = unb64(
        &aes.export(ExportType::EncryptionKey, ExportFormat::Default, Some("1"))
            .unwrap()[&1],
    );
    use aes_gcm::aead::{Aead as _, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&raw).unwrap();
    let blob = unb64(c.strip_prefix("vault:v1:").unwrap());
    let plain = cipher
        .decrypt(aes_gcm::Nonce::from_slice(&blob[..12]), &blob[12..])
        .unwrap();
    assert_eq!(plain, b"plain");
    assert!(aes
        .export(ExportType::SigningKey, ExportFormat::Default, None)
        .is_err());
    assert!(aes
        .export(ExportType::EncryptionKey, ExportFormat::Pem, None)
        .is_err());
    assert_eq!(
        unb64(
            &aes.export(ExportType::HmacKey, ExportFormat::Raw, None)
                .unwrap()[&1]
        )
        .len(),
        32
    );

    // EC: SEC 1 by default, PKCS#8 on request; both the key whose public half is shown.
    let ec = exportable(&e, "ec", KeyType::EcdsaP384).await;
    let sec1 = ec
        .export(ExportType::SigningKey, ExportFormat::Default, None)
        .unwrap();
    assert!(sec1[&1].starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let sk = p384::SecretKey::from_sec1_pem(&sec1[&1]).unwrap();
    let pk = p384::PublicKey::from_public_key_pem(&ec.latest().unwrap().public_key).unwrap();
    assert_eq!(sk.public_key(), pk);
    let pkcs8 = ec
        .export(ExportType::SigningKey, ExportFormat::Pem, Some("latest"))
        .unwrap();
    assert_eq!(
        p384::SecretKey::from_pkcs8_pem(&pkcs8[&1])
            .unwrap()
            .public_key(),
        pk
    );

    // RSA: PKCS#1 by default, PKCS#8 DER in base64 on request.
    let rsa_key = exportable(&e, "rsa", KeyType::Rsa2048).await;
    let pkcs1 = rsa_key
        .export(ExportType::EncryptionKey, ExportFormat::Default, None)
        .unwrap();
    assert!(pkcs1[&1].starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pkcs1[&1]).unwrap();
    let der = rsa_key
        .export(ExportType::SigningKey, ExportFormat::Der, Some("v1"))
        .unwrap();
    assert_eq!(
        rsa::RsaPrivateKey::from_pkcs8_der(&unb64(&der[&1])).unwrap(),
        private
    );
    let public =
        rsa::RsaPublicKey::from_public_key_pem(&rsa_key.latest().unwrap().public_key).unwrap();
    assert_eq!(rsa::RsaPublicKey::from(&private), public);

    // Ed25519: Go's 64-byte private key, seed then public key.
    let ed = exportable(&e, "ed", KeyType::Ed25519).await;
    let raw = unb64(
        &ed.export(ExportType::SigningKey, ExportFormat::Raw, None)
            .unwrap()[&1],
    );
    assert_eq!(raw.len(), 64);
    assert_eq!(b64(&raw[32..]), ed.latest().unwrap().public_key);

    // Versions.
    e.rotate("aes").await.unwrap();
    let aes = e.get("aes").unwrap().unwrap();
    let all = aes
        .export(ExportType::EncryptionKey, ExportFormat::Default, None)
        .unwrap();
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    let err = aes
        .export(ExportType::EncryptionKey, ExportFormat::Default, Some("7"))
        .unwrap_err();
    assert_eq!(err.to_string(), "version does not exist or cannot be found");
    let err = aes
        .export(ExportType::EncryptionKey, ExportFormat::Default, Some("x"))
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid key version");
}
