//! Key lifecycle: create, rotate, config, min versions, trim, delete, persistence,
//! scheduled rotation.

use super::*;

fn config(min_dec: Option<i64>, min_enc: Option<i64>) -> ConfigUpdate {
    ConfigUpdate {
        min_decryption_version: min_dec,
        min_encryption_version: min_enc,
        ..Default::default()
    }
}

#[tokio::test]
async fn create_is_an_upsert_and_validates() {
    let e = engine().await;
    let (k, created) = e.create("k", CreateKey::default()).await.unwrap();
    assert!(created);
    assert_eq!(k.kind(), KeyType::Aes256Gcm96);
    assert_eq!(
        (k.config.latest_version, k.config.min_decryption_version),
        (1, 1)
    );
    let (again, created) = e
        .create(
            "k",
            CreateKey {
                kind: KeyType::Ed25519,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        again.kind(),
        KeyType::Aes256Gcm96,
        "an existing key is kept"
    );

    let er = &e;
    let bad = |c: CreateKey| async move { er.create("x", c).await.unwrap_err().to_string() };
    let convergent = CreateKey {
        convergent_encryption: true,
        ..Default::default()
    };
    assert!(bad(convergent).await.contains("requires derivation"));
    let derived_rsa = CreateKey {
        kind: KeyType::Rsa2048,
        derived: true,
        ..Default::default()
    };
    assert!(bad(derived_rsa)
        .await
        .contains("not supported for keys of type rsa-2048"));
    let sized_aes = CreateKey {
        key_size: Some(64),
        ..Default::default()
    };
    assert!(bad(sized_aes).await.contains("key_size is not valid"));
    let tiny_hmac = CreateKey {
        kind: KeyType::Hmac,
        key_size: Some(16),
        ..Default::default()
    };
    assert!(bad(tiny_hmac).await.contains("invalid key_size 16"));
    assert!(e.create("a/b", CreateKey::default()).await.is_err());
    assert!(e.create("-x", CreateKey::default()).await.is_err());
    assert_eq!(e.list().unwrap(), vec!["k".to_string()]);
}

#[tokio::test]
async fn every_type_creates_rotates_and_reloads() {
    let b = barrier().await;
    let e = engine_on(&b);
    for kind in KeyType::ALL {
        if matches!(kind, KeyType::Rsa3072 | KeyType::Rsa4096) {
            continue; // slow to generate; the end-to-end tests cover them
        }
        let k = create(&e, kind.as_str(), kind).await;
        assert_eq!(
            k.latest().unwrap().public_key.is_empty(),
            !kind.is_asymmetric()
        );
        let k2 = e.rotate(kind.as_str()).await.unwrap();
        assert_eq!(k2.config.latest_version, 2);
        assert_eq!(k2.versions().count(), 2);
    }
    // A second engine over the same storage finds the same keys and material.
    let again = engine_on(&b);
    let mut names = again.list().unwrap();
    names.sort();
    assert_eq!(names.len(), KeyType::ALL.len() - 2);
    for name in names {
        let before = e.get(&name).unwrap().unwrap();
        let after = again.get(&name).unwrap().unwrap();
        assert_eq!(before.config, after.config);
        for (x, y) in before.versions().zip(after.versions()) {
            assert_eq!(x.public_key, y.public_key, "{name}");
            assert_eq!(x.secret.as_slice(), y.secret.as_slice(), "{name}");
            assert_eq!(x.created.unix_timestamp(), y.created.unix_timestamp());
        }
    }
    // Stored values are ciphertext: no key material in the clear.
    let k = e.get("aes256-gcm96").unwrap().unwrap();
    let secret = k.version(1).unwrap().secret.as_slice().to_vec();
    let stored = b
        .storage()
        .get(&format!("{PREFIX}policy/aes256-gcm96"))
        .unwrap()
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    assert!(!stored
        .windows(8)
        .any(|w| w == &b64(&secret).as_bytes()[..8]));
}

#[tokio::test]
async fn min_versions_gate_use() {
    let e = engine().await;
    create(&e, "k", KeyType::Aes256Gcm96).await;
    let v1 = encrypt_one(&e, "k", b"one").await.ciphertext;
    e.rotate("k").await.unwrap();
    let v2 = encrypt_one(&e, "k", b"two").await.ciphertext;
    assert!(v2.starts_with("vault:v2:"));
    e.rotate("k").await.unwrap();

    // Encrypting with an explicit version.
    let item = |v| CipherItem {
        key_version: v,
        ..pt_item(b"x")
    };
    let (r, _) = e
        .encrypt("k", &[item(1), item(4), item(-1)], None, false)
        .await
        .unwrap();
    assert!(r[0].as_ref().unwrap().ciphertext.starts_with("vault:v1:"));
    assert!(r[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("higher than the latest"));
    assert!(r[2].as_ref().unwrap_err().to_string().contains("negative"));

    let (k, _) = e.configure("k", config(Some(2), Some(3))).await.unwrap();
    assert_eq!(
        (
            k.config.min_decryption_version,
            k.config.min_encryption_version
        ),
        (2, 3)
    );
    assert!(matches!(
        decrypt_one(&e, "k", &v1).await,
        Err(TransitError::DecryptFailed)
    ));
    assert_eq!(decrypt_one(&e, "k", &v2).await.unwrap(), b"two");
    let (r, _) = e.encrypt("k", &[item(2)], None, false).await.unwrap();
    assert!(r[0]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("minimum encryption"));
    // Lowering it again makes v1 readable: nothing was deleted.
    e.configure("k", config(Some(1), None)).await.unwrap();
    assert_eq!(decrypt_one(&e, "k", &v1).await.unwrap(), b"one");

    let er = &e;
    let bad = |u| async move { er.configure("k", u).await.unwrap_err().to_string() };
    assert!(bad(config(Some(9), None))
        .await
        .contains("latest key version is 3"));
    assert!(bad(config(Some(-1), None))
        .await
        .contains("cannot be negative"));
    assert!(bad(config(Some(3), Some(2)))
        .await
        .contains("must be greater than or equal"));
    assert!(e
        .configure("nope", config(Some(1), None))
        .await
        .unwrap_err()
        .to_string()
        .contains("no existing key named nope"));
}

#[tokio::test]
async fn trim_deletes_old_versions_for_good() {
    let b = barrier().await;
    let e = engine_on(&b);
    create(&e, "k", KeyType::Aes256Gcm96).await;
    let v1 = encrypt_one(&e, "k", b"one").await.ciphertext;
    e.rotate("k").await.unwrap();
    e.rotate("k").await.unwrap();
    let v3 = encrypt_one(&e, "k", b"three").await.ciphertext;

    let er = &e;
    let trim_err = |n| async move { er.trim("k", n).await.unwrap_err().to_string() };
    assert!(trim_err(2)
        .await
        .contains("minimum encryption version is not set"));
    e.configure("k", config(Some(2), Some(2))).await.unwrap();
    assert!(trim_err(3)
        .await
        .contains("cannot be greater than minmum encryption"));
    assert!(trim_err(0).await.contains("should be positive"));

    let k = e.trim("k", 2).await.unwrap();
    assert_eq!(k.config.min_available_version, 2);
    assert!(k.version(1).is_none());
    assert_eq!(
        k.versions().map(|v| v.number).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(trim_err(1).await.contains("cannot be decremented"));
    // Even with the minimum lowered, version 1 cannot come back.
    let err = e.configure("k", config(Some(1), None)).await.unwrap_err();
    assert!(err.to_string().contains("min available version"), "{err}");
    assert!(matches!(
        decrypt_one(&e, "k", &v1).await,
        Err(TransitError::DecryptFailed)
    ));
    assert_eq!(decrypt_one(&e, "k", &v3).await.unwrap(), b"three");
    // The trimmed version is gone from storage too.
    let reloaded = engine_on(&b).get("k").unwrap().unwrap();
    assert!(reloaded.version(1).is_none());
    assert_eq!(reloaded.config.min_available_version, 2);
}

#[tokio::test]
async fn delete_needs_deletion_allowed() {
    let b = barrier().await;
    let e = engine_on(&b);
    create(&e, "k", KeyType::Aes256Gcm96).await;
    let c = encrypt_one(&e, "k", b"x").await.ciphertext;
    let err = e.delete("k").await.unwrap_err().to_string();
    assert_eq!(
        err,
        "error deleting policy k: deletion is not allowed for this key"
    );
    let allow = ConfigUpdate {
        deletion_allowed: Some(true),
        ..Default::default()
    };
    e.configure("k", allow).await.unwrap();
    e.delete("k").await.unwrap();
    assert!(e.get("k").unwrap().is_none());
    assert!(e.list().unwrap().is_empty());
    assert!(matches!(
        decrypt_one(&e, "k", &c).await,
        Err(TransitError::DecryptFailed)
    ));
    assert!(engine_on(&b).get("k").unwrap().is_none());
    assert!(e
        .delete("k")
        .await
        .unwrap_err()
        .to_string()
        .contains("not found"));
}

#[tokio::test]
async fn scheduled_rotation_runs_when_due_and_survives_reload() {
    let b = barrier().await;
    let e = engine_on(&b);
    let spec = CreateKey {
        auto_rotate_period: 10,
        ..Default::default()
    };
    e.create("auto", spec).await.unwrap();
    create(&e, "manual", KeyType::Aes256Gcm96).await;
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(e.rotate_due_at(now).await.unwrap().len(), 0);
    let later = now + time::Duration::seconds(11);
    assert_eq!(e.rotate_due_at(later).await.unwrap().len(), 1);
    assert_eq!(e.get("auto").unwrap().unwrap().config.latest_version, 2);
    assert_eq!(e.get("manual").unwrap().unwrap().config.latest_version, 1);

    // After a restart the schedule and the new version are still there.
    let e2 = engine_on(&b);
    let k = e2.get("auto").unwrap().unwrap();
    assert_eq!(
        (k.config.latest_version, k.config.auto_rotate_period),
        (2, 10)
    );
    assert_eq!(
        e2.rotate_due_at(now + time::Duration::seconds(5))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        e2.rotate_due_at(later + time::Duration::seconds(11))
            .await
            .unwrap()
            .len(),
        1
    );

    // Turning the period off takes the key off the schedule.
    let off = ConfigUpdate {
        auto_rotate_period: Some(0),
        ..Default::default()
    };
    e2.configure("auto", off).await.unwrap();
    assert_eq!(
        e2.rotate_due_at(later + time::Duration::seconds(3600))
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(e2.store.auto_rotating().unwrap().is_empty());
}

#[tokio::test]
async fn vaults_floor_on_rotation_periods() {
    let e = TransitEngine::new(barrier().await, PREFIX.into(), TransitSettings::default());
    let spec = CreateKey {
        auto_rotate_period: 60,
        ..Default::default()
    };
    let err = e.create("k", spec).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "auto rotate period must be 0 to disable or at least an hour"
    );
    let spec = CreateKey {
        auto_rotate_period: 3600,
        ..Default::default()
    };
    e.create("k", spec).await.unwrap();
}

#[tokio::test]
async fn cache_clear_forgets_material_until_reloaded() {
    let e = engine().await;
    create(&e, "k", KeyType::Aes256Gcm96).await;
    let c = encrypt_one(&e, "k", b"x").await.ciphertext;
    let held = e.get("k").unwrap().unwrap();
    e.clear_cache();
    assert!(!e.cache.is_indexed());
    // A reference held across the clear stays valid until dropped; new lookups reload.
    let reloaded = e.get("k").unwrap().unwrap();
    assert!(!Arc::ptr_eq(&held, &reloaded));
    assert_eq!(decrypt_one(&e, "k", &c).await.unwrap(), b"x");
}

#[tokio::test]
async fn sealing_drops_the_mounts_cached_keys() {
    use crate::mounts::{Backend, MountConfig, Mounts};
    let b = barrier().await;
    let mounts = Mounts::new(b.clone(), TransitSettings::default());
    mounts
        .mount(
            "transit",
            "transit",
            String::new(),
            Default::default(),
            MountConfig::default(),
        )
        .await
        .unwrap();
    let mounted = mounts.get("transit/").unwrap();
    let Backend::Transit(engine) = &mounted.backend else {
        panic!("not a transit mount");
    };
    create(engine, "k", KeyType::Aes256Gcm96).await;
    assert!(engine.cache.is_indexed());
    // What Core::seal does to the mount table.
    mounts.clear();
    assert!(
        !engine.cache.is_indexed(),
        "key material must not outlive the seal"
    );
    assert!(mounts.get("transit/").is_none());
}
