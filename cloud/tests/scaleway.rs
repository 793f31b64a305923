//! The Scaleway Key Manager client against the emulator in
//! softhsm-tests/emulators/scaleway_kms.py, through `cloud::Providers` as the engine
//! drives it. The emulator checks `X-Auth-Token` and records the SHA-256 of the material
//! it received; the tests compare it with the appliance's AES key.

mod material;

use engine::cloud_exports::{
    CloudProviders, ExportedKey, Provider, ProviderRef, SyncError, SyncRequest,
};
use engine::managed_keys::{Algorithm, Usage};
use material::SoftwareMaterial;
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use softhsm_tests::emulators::Emulator;
use uuid::Uuid;
use zeroize::Zeroizing;

const SECRET_KEY: &str = "6f1c2a4e-0b9d-4e57-9a43-2d8e7f6b1c05";
const PROJECT: &str = "a1b2c3d4-e5f6-4789-9abc-def012345678";

struct Scaleway {
    emulator: Emulator,
    http: reqwest::Client,
}

impl Scaleway {
    async fn start() -> Self {
        let scaleway = Scaleway {
            emulator: Emulator::start("scaleway_kms.py", &[]),
            http: reqwest::Client::new(),
        };
        scaleway
            .admin("setup", json!({"secretKeys": [SECRET_KEY]}))
            .await;
        scaleway
    }

    async fn admin(&self, what: &str, body: Value) {
        let status = self
            .http
            .post(format!("{}/_emulator/{what}", self.emulator.url()))
            .json(&body)
            .send()
            .await
            .expect("emulator admin")
            .status();
        assert!(status.is_success(), "{what}: {status}");
    }

    async fn fault(&self, mode: &str) {
        self.admin("fault", json!({ "mode": mode })).await;
    }

    async fn keys(&self) -> Vec<Value> {
        let state: Value = self
            .http
            .get(format!("{}/_emulator/state", self.emulator.url()))
            .send()
            .await
            .expect("emulator state")
            .json()
            .await
            .expect("state JSON");
        state["keys"].as_array().cloned().unwrap_or_default()
    }

    fn metadata(&self) -> Map<String, Value> {
        object(json!({
            "projectId": PROJECT,
            "region": "fr-par",
            "endpoint": self.emulator.url(),
        }))
    }

    async fn sync(&self, version: &Version) -> Result<ProviderRef, SyncError> {
        let providers = cloud::Providers::new();
        let mut metadata = self.metadata();
        let credentials =
            object(json!({"accessKey": "SCWXXXXXXXXXXXXXXXXX", "secretKey": SECRET_KEY}));
        providers
            .validate(
                Provider::ScalewayKms,
                &mut metadata,
                Some(&credentials),
                Algorithm::Aes256,
                true,
            )
            .expect("valid export");
        let credentials = Zeroizing::new(Value::Object(credentials).to_string());
        providers
            .sync(SyncRequest {
                export_id: Uuid::new_v4(),
                provider: Provider::ScalewayKms,
                metadata: &metadata,
                credentials: &credentials,
                key: &version.key,
                material: &version.material,
                previous: None,
            })
            .await
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

struct Version {
    key: ExportedKey,
    material: SoftwareMaterial,
    sha256: String,
}

fn aes_version(key_id: Uuid, version: u32) -> Version {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(bytes.as_mut_slice());
    let sha256 = Sha256::digest(bytes.as_slice())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Version {
        key: ExportedKey {
            key_id,
            name: "backups".into(),
            algorithm: Algorithm::Aes256,
            usage: Usage::EncryptDecrypt,
            version,
            public_key_der: None,
            allow_unwrapped_export: true,
        },
        material: SoftwareMaterial::aes(bytes.as_slice(), true),
        sha256,
    }
}

fn tags(key: &Value) -> Vec<String> {
    key["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_material_arrives_once_and_a_rotation_makes_a_new_key() {
    let scaleway = Scaleway::start().await;
    let key_id = Uuid::new_v4();
    let v1 = aes_version(key_id, 1);

    let first = scaleway.sync(&v1).await.expect("first sync");
    let keys = scaleway.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_eq!(first.key_id, key["id"].as_str().expect("id"));
    assert_eq!(first.key_version, None);
    assert_eq!(key["state"], "enabled");
    assert_eq!(key["origin"], "external");
    assert_eq!(key["usage"], json!({"symmetric_encryption": "aes_256_gcm"}));
    assert_eq!(key["project_id"], PROJECT);
    assert_eq!(key["name"], "backups-v1");
    assert_eq!(key["materialSha256"], v1.sha256.as_str());
    assert_eq!(key["materialLength"], 32);
    let held = tags(key);
    assert!(
        held.contains(&format!("ironseal-key-id={key_id}")),
        "{held:?}"
    );
    assert!(
        held.contains(&"ironseal-key-version=1".to_string()),
        "{held:?}"
    );

    // A job that runs again finds the key and imports nothing.
    assert_eq!(scaleway.sync(&v1).await.expect("again"), first);
    let keys = scaleway.keys().await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["imports"], 1);

    // Scaleway takes material once per key: a rotation is a new key.
    let v2 = aes_version(key_id, 2);
    let second = scaleway.sync(&v2).await.expect("rotation");
    assert_ne!(second.key_id, first.key_id);
    let keys = scaleway.keys().await;
    assert_eq!(keys.len(), 2);
    let newest = keys
        .iter()
        .find(|k| k["id"] == second.key_id.as_str())
        .expect("the new key");
    assert_eq!(newest["materialSha256"], v2.sha256.as_str());
    assert_eq!(newest["name"], "backups-v2");
    assert!(tags(newest).contains(&"ironseal-key-version=2".to_string()));
    // The previous version's key stays as it was.
    let oldest = keys
        .iter()
        .find(|k| k["id"] == first.key_id.as_str())
        .expect("v1");
    assert_eq!(oldest["state"], "enabled");
    assert_eq!(oldest["materialSha256"], v1.sha256.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_before_a_crash_receives_the_material() {
    let scaleway = Scaleway::start().await;
    let key_id = Uuid::new_v4();
    let v1 = aes_version(key_id, 1);
    // What a sync that died after CreateKey leaves behind.
    let created: Value = scaleway
        .http
        .post(format!(
            "{}/key-manager/v1alpha1/regions/fr-par/keys",
            scaleway.emulator.url()
        ))
        .header("X-Auth-Token", SECRET_KEY)
        .json(&json!({
            "project_id": PROJECT,
            "name": "backups-v1",
            "usage": {"symmetric_encryption": "aes_256_gcm"},
            "tags": [format!("ironseal-key-id={key_id}"), "ironseal-key-version=1"],
            "origin": "external",
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("key");
    assert_eq!(created["state"], "pending_key_material");

    let synced = scaleway.sync(&v1).await.expect("sync");
    assert_eq!(synced.key_id, created["id"].as_str().expect("id"));
    let keys = scaleway.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["state"], "enabled");
    assert_eq!(keys[0]["materialSha256"], v1.sha256.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_refusals_are_permanent_in_scaleways_words_and_outages_retryable() {
    let scaleway = Scaleway::start().await;
    let v1 = aes_version(Uuid::new_v4(), 1);

    scaleway.fault("deny").await;
    let denied = scaleway.sync(&v1).await.expect_err("denied");
    assert!(!denied.retryable, "{denied:?}");
    assert!(
        denied
            .message
            .starts_with("PermissionsDenied — insufficient permissions on resource 'kms'"),
        "{denied:?}"
    );

    scaleway.fault("expired").await;
    let expired = scaleway.sync(&v1).await.expect_err("expired");
    assert!(!expired.retryable, "{expired:?}");
    assert_eq!(
        expired.message,
        "DeniedAuthentication — authentication is denied (api_key: expired)"
    );

    scaleway.fault("error500").await;
    let outage = scaleway.sync(&v1).await.expect_err("outage");
    assert!(outage.retryable, "{outage:?}");

    scaleway.fault("none").await;
    scaleway.sync(&v1).await.expect("after the fix");
    assert_eq!(scaleway.keys().await.len(), 1);
}

#[test]
fn validation_names_the_field_and_refuses_what_scaleway_does_not_take() {
    let providers = cloud::Providers::new();
    let credentials = object(json!({"accessKey": "SCW1", "secretKey": "s"}));
    let validate = |metadata: Value,
                    credentials: Option<&Map<String, Value>>,
                    algorithm: Algorithm,
                    allow: bool| {
        let mut metadata = object(metadata);
        providers
            .validate(
                Provider::ScalewayKms,
                &mut metadata,
                credentials,
                algorithm,
                allow,
            )
            .map(|()| metadata)
    };
    let base = json!({"projectId": PROJECT, "region": "fr-par"});

    let filled =
        validate(base.clone(), Some(&credentials), Algorithm::Aes256, true).expect("valid");
    assert_eq!(filled["endpoint"], "https://api.scaleway.com");

    for (metadata, needle) in [
        (json!({"region": "fr-par"}), "providerMetadata.projectId"),
        (json!({"projectId": PROJECT}), "providerMetadata.region"),
        (
            json!({"projectId": PROJECT, "region": "fr-par", "keyRing": "x"}),
            "providerMetadata.keyRing",
        ),
        (
            json!({"projectId": PROJECT, "region": "fr-par", "endpoint": "http://api.scaleway.com"}),
            "providerMetadata.endpoint",
        ),
        (
            json!({"projectId": PROJECT, "region": "../x"}),
            "providerMetadata.region",
        ),
    ] {
        let err = validate(metadata.clone(), None, Algorithm::Aes256, true).expect_err("refused");
        assert!(err.contains(needle), "{metadata}: {err}");
    }
    for (given, needle) in [
        (json!({"accessKey": "SCW1"}), "credentials.secretKey"),
        (json!({"secretKey": "s"}), "credentials.accessKey"),
        (
            json!({"accessKey": "SCW1", "secretKey": "s", "token": "t"}),
            "credentials.token",
        ),
    ] {
        let given = object(given);
        let err =
            validate(base.clone(), Some(&given), Algorithm::Aes256, true).expect_err("refused");
        assert!(err.contains(needle), "{err}");
    }
    for algorithm in [Algorithm::Rsa2048, Algorithm::EcP256, Algorithm::EcP384] {
        let err = validate(base.clone(), None, algorithm, true).expect_err("refused");
        assert!(
            err.contains("AES-256 keys only") && err.contains("unwrapped over TLS"),
            "{err}"
        );
        assert!(err.contains(algorithm.as_str()), "{err}");
    }
    let err = validate(base.clone(), None, Algorithm::Aes256, false).expect_err("refused");
    assert!(err.contains("allowUnwrappedExport"), "{err}");
}

#[tokio::test]
async fn a_key_without_unwrapped_export_is_refused_at_sync_too() {
    let providers = cloud::Providers::new();
    let mut v1 = aes_version(Uuid::new_v4(), 1);
    v1.key.allow_unwrapped_export = false;
    let metadata = object(json!({
        "projectId": PROJECT,
        "region": "fr-par",
        "endpoint": "http://127.0.0.1:9",
    }));
    let credentials = Zeroizing::new(json!({"accessKey": "a", "secretKey": "s"}).to_string());
    let refused = providers
        .sync(SyncRequest {
            export_id: Uuid::new_v4(),
            provider: Provider::ScalewayKms,
            metadata: &metadata,
            credentials: &credentials,
            key: &v1.key,
            material: &v1.material,
            previous: None,
        })
        .await
        .expect_err("refused");
    assert!(!refused.retryable);
    assert!(
        refused.message.contains("allowUnwrappedExport"),
        "{refused:?}"
    );
}
