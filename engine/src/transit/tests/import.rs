//! BYOK import in Vault's format: RSA-OAEP of an ephemeral AES-256 key under the mount's
//! wrapping key, then the target wrapped with it (RFC 5649).

use aes_gcm::aead::{Aead as _, KeyInit};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use super::*;
use crate::crypto::aes::key_wrap;
use crate::crypto::rsa::{encrypt as rsa_encrypt, RsaKey};
use crate::transit::import::WRAPPED_EPHEMERAL_LEN;

const SOFTWARE: ImportBoundary = ImportBoundary::Software;

/// What a Vault client sends: `ciphertext` for `target` under the engine's wrapping key.
async fn wrap_for(e: &TransitEngine, target: &[u8], hash: OaepHash) -> Vec<u8> {
    let wrapping = e.wrapping_key().await.unwrap();
    let ephemeral = [0x42u8; 32];
    let padding = match hash {
        OaepHash::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
        _ => rsa::Oaep::new::<sha2::Sha256>(),
    };
    let mut out = rsa_encrypt(&wrapping.public, padding, &ephemeral).unwrap();
    assert_eq!(out.len(), WRAPPED_EPHEMERAL_LEN);
    out.extend(key_wrap(&ephemeral, target, true).unwrap());
    out
}

fn spec(kind: KeyType) -> ImportKey {
    ImportKey {
        kind,
        derived: false,
        exportable: false,
        allow_plaintext_backup: false,
        allow_rotation: false,
        auto_rotate_period: 0,
    }
}

#[tokio::test]
async fn the_wrapping_key_is_made_once_per_mount() {
    let barrier = barrier().await;
    let (a, b) = (engine_on(&barrier), engine_on(&barrier));
    let ka = a.wrapping_key().await.unwrap();
    // Another node on the same storage uses the key the first one made.
    let kb = b.wrapping_key().await.unwrap();
    assert_eq!(ka.public, kb.public);
    assert_eq!(rsa::traits::PublicKeyParts::size(&ka.public), 512);
    a.clear_cache();
    assert_eq!(a.wrapping_key().await.unwrap().public, ka.public);
}

#[tokio::test]
async fn an_imported_aes_key_encrypts_what_its_owner_decrypts() {
    let e = engine().await;
    let original = [7u8; 32];
    let wrapped = wrap_for(&e, &original, OaepHash::Sha256).await;
    let key = e
        .import(
            "byok",
            spec(KeyType::Aes256Gcm96),
            wrapped,
            OaepHash::Sha256,
            &SOFTWARE,
        )
        .await
        .unwrap();
    assert!(key.config.imported);
    let c = encrypt_one(&e, "byok", b"for the owner").await;
    let raw = unb64(c.ciphertext.strip_prefix("vault:v1:").unwrap());
    let (nonce, ct) = raw.split_at(12);
    let owner = aes_gcm::Aes256Gcm::new_from_slice(&original).unwrap();
    let plain = owner.decrypt(nonce.into(), ct).unwrap();
    assert_eq!(plain, b"for the owner");
}

#[tokio::test]
async fn asymmetric_imports_keep_the_original_key_pair() {
    let e = engine().await;
    let rsa = RsaKey::generate(2048).unwrap();
    let wrapped = wrap_for(&e, &rsa.to_pkcs8_der().unwrap(), OaepHash::Sha1).await;
    let key = e
        .import(
            "rsa",
            spec(KeyType::Rsa2048),
            wrapped,
            OaepHash::Sha1,
            &SOFTWARE,
        )
        .await
        .unwrap();
    assert_eq!(
        key.latest().unwrap().public_key,
        crate::crypto::rsa::public_to_pem(&rsa.public).unwrap()
    );

    let ec = p384::SecretKey::random(&mut rand::rngs::OsRng);
    let der = ec.to_pkcs8_der().unwrap();
    let wrapped = wrap_for(&e, der.as_bytes(), OaepHash::Sha256).await;
    let key = e
        .import(
            "ec",
            spec(KeyType::EcdsaP384),
            wrapped,
            OaepHash::Sha256,
            &SOFTWARE,
        )
        .await
        .unwrap();
    let pem =
        p384::pkcs8::EncodePublicKey::to_public_key_pem(&ec.public_key(), LineEnding::LF).unwrap();
    assert_eq!(key.latest().unwrap().public_key, pem);

    let ed = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let der = ed.to_pkcs8_der().unwrap();
    let wrapped = wrap_for(&e, der.as_bytes(), OaepHash::Sha256).await;
    let key = e
        .import(
            "ed",
            spec(KeyType::Ed25519),
            wrapped,
            OaepHash::Sha256,
            &SOFTWARE,
        )
        .await
        .unwrap();
    assert_eq!(
        key.latest().unwrap().public_key,
        b64(ed.verifying_key().as_bytes())
    );

    let hmac = [3u8; 64];
    let wrapped = wrap_for(&e, &hmac, OaepHash::Sha256).await;
    let key = e
        .import(
            "mac",
            spec(KeyType::Hmac),
            wrapped,
            OaepHash::Sha256,
            &SOFTWARE,
        )
        .await
        .unwrap();
    assert_eq!(key.config.key_size, 64);
}

#[tokio::test]
async fn imports_refuse_what_vault_refuses() {
    let e = engine().await;
    let aes = wrap_for(&e, &[1u8; 32], OaepHash::Sha256).await;
    let err = |r: TransitResult<Arc<Key>>| r.unwrap_err().to_string();

    assert_eq!(
        err(e
            .import(
                "k",
                spec(KeyType::Aes128Gcm96),
                aes.clone(),
                OaepHash::Sha256,
                &SOFTWARE
            )
            .await),
        "invalid key size 32 bytes for key type aes128-gcm96"
    );
    assert!(err(e
        .import(
            "k",
            spec(KeyType::Aes256Gcm96),
            aes.clone(),
            OaepHash::Sha1,
            &SOFTWARE
        )
        .await)
    .contains("RSA-OAEP"),);
    assert_eq!(
        err(e
            .import(
                "k",
                spec(KeyType::Aes256Gcm96),
                aes[..512].to_vec(),
                OaepHash::Sha256,
                &SOFTWARE
            )
            .await),
        "provided ciphertext is too short"
    );
    let ec = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let ec = wrap_for(&e, ec.to_pkcs8_der().unwrap().as_bytes(), OaepHash::Sha256).await;
    assert_eq!(
        err(e
            .import(
                "k",
                spec(KeyType::Rsa2048),
                ec.clone(),
                OaepHash::Sha256,
                &SOFTWARE
            )
            .await),
        "invalid key type: expected rsa-2048, got a P-256 key"
    );
    assert_eq!(
        err(e
            .import(
                "k",
                spec(KeyType::EcdsaP384),
                ec,
                OaepHash::Sha256,
                &SOFTWARE
            )
            .await),
        "invalid key type: expected ecdsa-p384, got a P-256 key"
    );
    let rotating = ImportKey {
        auto_rotate_period: 3600,
        ..spec(KeyType::Aes256Gcm96)
    };
    assert_eq!(
        err(e
            .import("k", rotating, aes.clone(), OaepHash::Sha256, &SOFTWARE)
            .await),
        "allow_rotation must be set to true if auto-rotation is enabled"
    );
    assert!(!e.exists("k").unwrap());

    e.import(
        "k",
        spec(KeyType::Aes256Gcm96),
        aes.clone(),
        OaepHash::Sha256,
        &SOFTWARE,
    )
    .await
    .unwrap();
    assert!(err(e
        .import(
            "k",
            spec(KeyType::Aes256Gcm96),
            aes.clone(),
            OaepHash::Sha256,
            &SOFTWARE
        )
        .await)
    .starts_with("the import path cannot be used with an existing key"));
    assert_eq!(
        err(e.rotate("k").await),
        "imported key k does not allow rotation within Vault"
    );
}

#[tokio::test]
async fn import_version_adds_versions_to_imported_keys_only() {
    let e = engine().await;
    let first = wrap_for(&e, &[1u8; 32], OaepHash::Sha256).await;
    let second = wrap_for(&e, &[2u8; 32], OaepHash::Sha256).await;
    let allowed = ImportKey {
        allow_rotation: true,
        ..spec(KeyType::Aes256Gcm96)
    };
    e.import("k", allowed, first, OaepHash::Sha256, &SOFTWARE)
        .await
        .unwrap();
    let key = e
        .import_version("k", second.clone(), OaepHash::Sha256, None, &SOFTWARE)
        .await
        .unwrap();
    assert_eq!(key.config.latest_version, 2);
    assert!(key.config.imported);
    let c = encrypt_one(&e, "k", b"v2").await;
    assert!(c.ciphertext.starts_with("vault:v2:"));
    let raw = unb64(c.ciphertext.strip_prefix("vault:v2:").unwrap());
    let owner = aes_gcm::Aes256Gcm::new_from_slice(&[2u8; 32]).unwrap();
    assert_eq!(owner.decrypt(raw[..12].into(), &raw[12..]).unwrap(), b"v2");

    let err = |r: TransitResult<Arc<Key>>| r.unwrap_err().to_string();
    assert_eq!(
        err(e
            .import_version("k", second.clone(), OaepHash::Sha256, Some(1), &SOFTWARE)
            .await),
        "provided type does not support importing key versions"
    );
    assert_eq!(
        err(e
            .import_version("k", second.clone(), OaepHash::Sha256, Some(9), &SOFTWARE)
            .await),
        "no such key version"
    );
    // A rotation here makes a version the key's owner does not have: no longer imported.
    let rotated = e.rotate("k").await.unwrap();
    assert!(!rotated.config.imported);
    assert_eq!(
        err(e
            .import_version("k", second.clone(), OaepHash::Sha256, None, &SOFTWARE)
            .await),
        "the import_version endpoint can only be used with an imported key"
    );
    assert_eq!(
        err(e
            .import_version("nope", second, OaepHash::Sha256, None, &SOFTWARE)
            .await),
        "no key found with name nope; to import a new key, use the import/ endpoint"
    );
}
