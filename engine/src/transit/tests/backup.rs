//! backup and restore: Vault's format both ways (backups taken by OpenBao 2.7 restore
//! here), refusals without `exportable`/`allow_plaintext_backup`, `force`.

use super::*;

/// Backups taken with OpenBao 2.7.2 of keys made there `exportable` with
/// `allow_plaintext_backup`; the AES key has four versions, `min_decryption_version` 2
/// (version 1 is only in the archive).
const OPENBAO_AES: &str = include_str!("openbao/aes256-gcm96.b64");
const OPENBAO_ECDSA: &str = include_str!("openbao/ecdsa-p256.b64");
const OPENBAO_ED25519: &str = include_str!("openbao/ed25519.b64");
const OPENBAO_RSA: &str = include_str!("openbao/rsa-2048.b64");

/// Made by OpenBao with that AES key's versions 1 and 4, plaintext "from openbao".
const OPENBAO_V1: &str = "vault:v1:bpVM2VW093u3FN6WCNAIi7ZSpVsWLEvzJI1YFOrfZ177OABcjHU+aA==";
const OPENBAO_V4: &str = "vault:v4:taEoVpg8wzRWHF9UCAj1jfp584CjV8qMJ5stxsjOgtZBEH8KVuRM6w==";

fn backupable(kind: KeyType) -> CreateKey {
    CreateKey {
        kind,
        exportable: true,
        allow_plaintext_backup: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn openbao_backups_restore_with_their_versions_and_keys() {
    let e = engine().await;
    let aes = e.restore(None, OPENBAO_AES, false).await.unwrap();
    assert_eq!(aes.name(), "k-aes256-gcm96");
    assert_eq!(aes.kind(), KeyType::Aes256Gcm96);
    assert_eq!(
        aes.versions().map(|v| v.number).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(aes.config.min_decryption_version, 2);
    assert!(aes.config.exportable && aes.config.allow_plaintext_backup);
    assert_eq!(
        decrypt_one(&e, "k-aes256-gcm96", OPENBAO_V4).await.unwrap(),
        b"from openbao"
    );
    assert!(decrypt_one(&e, "k-aes256-gcm96", OPENBAO_V1).await.is_err());
    // Version 1 came back from the archive.
    e.configure(
        "k-aes256-gcm96",
        ConfigUpdate {
            min_decryption_version: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        decrypt_one(&e, "k-aes256-gcm96", OPENBAO_V1).await.unwrap(),
        b"from openbao"
    );

    let ed = e.restore(None, OPENBAO_ED25519, false).await.unwrap();
    assert_eq!(
        ed.latest().unwrap().public_key,
        "D85HHB2RmiuWBcDhmT3PXc7WzRU3St5PxRF4GHBU1tA="
    );
    let ec = e.restore(None, OPENBAO_ECDSA, false).await.unwrap();
    assert_eq!(
        ec.latest().unwrap().public_key,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8t/QFM1PIW522V181AVDUh6u2C3r\nT8MBtXm301x5md7PQQF/mKc+klYk6GHsXAdrBwyzQ1XiHRlLd5CaEXEv/w==\n-----END PUBLIC KEY-----\n"
    );
    let rsa = e.restore(None, OPENBAO_RSA, false).await.unwrap();
    assert_eq!(
        rsa.latest().unwrap().public_key,
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoqSVWiFjahR9BmfhwPps\nUaMLle0NloonlpgzW48uqFrAQ5uToZA6k178dFTlD2mAEgX0Ww2LBXNqyO98l4qK\nW/I+mvGAFHE6Bu5ewHdLg4g3Z2IV4uEOYDkoQDNXoD6TM0bek/sluxtAsmBoc97U\nnuXCiV/3PJBdPkeciWLNGCsEVvNnW/Il0rVADqIiix+CToaugFUOhbF6q3ZafR4n\nmbufaS/TACdF7Kslrd8Bu95C/z4A/Lw0bgGTQqYmDY/YNa/xPAI+6SBnct3ovIvr\nCFsKuYMYDTdPPY6+M0lPS2e18xJxO09cEP0yMD6erellO+QRC4Z4UPRLTSh/WLnq\n6QIDAQAB\n-----END PUBLIC KEY-----\n"
    );
}

/// Every version's private and HMAC material, as export shows it.
fn material(key: &Key) -> Vec<(ExportType, BTreeMap<u32, String>)> {
    let mut out = Vec::new();
    for what in [
        ExportType::EncryptionKey,
        ExportType::SigningKey,
        ExportType::HmacKey,
    ] {
        if let Ok(m) = key.export(what, ExportFormat::Default, None) {
            out.push((
                what,
                m.into_iter().map(|(n, s)| (n, s.to_string())).collect(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn a_backup_restores_on_another_appliance_with_every_version() {
    let (a, b) = (engine().await, engine().await);
    // RSA-3072 and -4096 take the RSA-2048 path, at many times its key generation cost.
    let kinds = KeyType::ALL
        .into_iter()
        .filter(|k| !matches!(k, KeyType::Rsa3072 | KeyType::Rsa4096));
    for kind in kinds {
        let name = kind.as_str();
        a.create(name, backupable(kind)).await.unwrap();
        a.rotate(name).await.unwrap();
        let key = a.rotate(name).await.unwrap();
        let (key, _) = a
            .configure(
                name,
                ConfigUpdate {
                    min_decryption_version: Some(2),
                    min_encryption_version: Some(3),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or((key, None));
        let backup = a.backup(name).unwrap();
        let restored = b.restore(None, &backup, false).await.unwrap();
        assert_eq!(restored.config, key.config, "{kind}");
        assert_eq!(material(&restored), material(&key), "{kind}");
        assert!(!material(&key).is_empty(), "{kind}");
        // And back again, under another name.
        let again = b.backup(name).unwrap();
        let copy = a.restore(Some("copy"), &again, true).await.unwrap();
        assert_eq!(copy.name(), "copy");
        assert_eq!(material(&copy), material(&key), "{kind}");
    }
}

#[tokio::test]
async fn trimmed_and_derived_keys_keep_their_settings() {
    let (a, b) = (engine().await, engine().await);
    let spec = CreateKey {
        derived: true,
        convergent_encryption: true,
        ..backupable(KeyType::Aes256Gcm96)
    };
    a.create("conv", spec).await.unwrap();
    a.rotate("conv").await.unwrap();
    a.rotate("conv").await.unwrap();
    a.configure(
        "conv",
        ConfigUpdate {
            min_decryption_version: Some(2),
            min_encryption_version: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let key = a.trim("conv", 2).await.unwrap();
    let restored = b
        .restore(None, &a.backup("conv").unwrap(), false)
        .await
        .unwrap();
    assert_eq!(restored.config, key.config);
    assert_eq!(
        restored.versions().map(|v| v.number).collect::<Vec<_>>(),
        [2, 3]
    );
    let item = CipherItem {
        context: Some(b64(b"ctx")),
        ..pt_item(b"same")
    };
    let (x, _) = a
        .encrypt("conv", std::slice::from_ref(&item), None, false)
        .await
        .unwrap();
    let (y, _) = b.encrypt("conv", &[item], None, false).await.unwrap();
    assert_eq!(
        x[0].as_ref().unwrap().ciphertext,
        y[0].as_ref().unwrap().ciphertext,
        "convergent encryption gives the same ciphertext on both"
    );
}

#[tokio::test]
async fn backup_and_restore_refusals() {
    let e = engine().await;
    create(&e, "plain", KeyType::Aes256Gcm96).await;
    let err = e.backup("plain").unwrap_err();
    assert_eq!(err.to_string(), "exporting is disallowed on the policy");
    e.create(
        "exportable",
        CreateKey {
            exportable: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = e.backup("exportable").unwrap_err();
    assert_eq!(
        err.to_string(),
        "plaintext backup is disallowed on the policy"
    );
    assert_eq!(
        e.backup("missing").unwrap_err().to_string(),
        "key \"missing\" not found"
    );

    e.create("k", backupable(KeyType::Aes256Gcm96))
        .await
        .unwrap();
    let backup = e.backup("k").unwrap();
    let err = e.restore(None, &backup, false).await.unwrap_err();
    assert_eq!(err.to_string(), "key \"k\" already exists");
    e.rotate("k").await.unwrap();
    let restored = e.restore(None, &backup, true).await.unwrap();
    assert_eq!(restored.config.latest_version, 1);

    // A hand-made backup of a key whose plaintext backup was not allowed.
    let json = String::from_utf8(unb64(&backup)).unwrap();
    let tampered = json.replace(
        "\"allow_plaintext_backup\":true",
        "\"allow_plaintext_backup\":false",
    );
    assert_ne!(json, tampered);
    let err = e
        .restore(Some("other"), &b64(tampered.as_bytes()), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allow_plaintext_backup"), "{err}");
    assert!(!e.exists("other").unwrap());

    for (bad, words) in [
        ("%%%", "illegal base64"),
        (&b64(b"{}") as &str, "invalid backup"),
        (&b64(b"not json"), "invalid backup"),
    ] {
        let err = e.restore(Some("x"), bad, false).await.unwrap_err();
        assert!(err.to_string().contains(words), "{bad}: {err}");
    }
    let p521 = json.replace("\"type\":0", "\"type\":7");
    let err = e
        .restore(Some("x"), &b64(p521.as_bytes()), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("P-521"), "{err}");
}
