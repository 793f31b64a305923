//! The GCP Cloud KMS client against the emulator in softhsm-tests/emulators/gcp_kms.py,
//! through `cloud::Providers` as the engine drives it. The emulator verifies the service
//! account's JWT with the key file's public key, and unwraps every import with Python's
//! `cryptography`; the tests compare what it received with the appliance key.

mod material;

use engine::cloud_exports::{
    CloudProviders, ExportedKey, Provider, ProviderRef, SyncError, SyncRequest,
};
use engine::managed_keys::{Algorithm, Usage};
use hsm_bridge::WrapMechanism;
use material::SoftwareMaterial;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;
use serde_json::{json, Map, Value};
use softhsm_tests::emulators::Emulator;
use uuid::Uuid;
use zeroize::Zeroizing;

const RING: &str = "projects/ironseal-test/locations/europe-west1/keyRings/appliance";
const CLIENT_EMAIL: &str = "ironseal-sync@ironseal-test.iam.gserviceaccount.com";

struct Gcp {
    emulator: Emulator,
    http: reqwest::Client,
    key_file: Value,
}

impl Gcp {
    /// The emulator with one service account (whose key file the test makes) and one key
    /// ring.
    async fn start() -> Self {
        let emulator = Emulator::start("gcp_kms.py", &[]);
        let account = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
        let private_pem = account.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let public_pem = account
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let key_file = json!({
            "type": "service_account",
            "project_id": "ironseal-test",
            "private_key_id": "0123456789abcdef",
            "private_key": private_pem.as_str(),
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "token_uri": format!("{}/token", emulator.url()),
        });
        let gcp = Gcp {
            emulator,
            http: reqwest::Client::new(),
            key_file,
        };
        gcp.admin(
            "setup",
            json!({
                "serviceAccounts": [{"clientEmail": CLIENT_EMAIL, "publicKeyPem": public_pem}],
                "keyRings": [RING],
            }),
        )
        .await;
        gcp
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

    async fn fault(&self, mode: Value) {
        self.admin("fault", mode).await;
    }

    async fn state(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/state", self.emulator.url()))
            .send()
            .await
            .expect("emulator state")
            .json()
            .await
            .expect("state JSON")
    }

    fn metadata(&self) -> Map<String, Value> {
        object(json!({
            "projectId": "ironseal-test",
            "location": "europe-west1",
            "keyRing": "appliance",
            "endpoint": self.emulator.url(),
        }))
    }

    fn credentials(&self) -> Map<String, Value> {
        object(json!({"serviceAccountJson": self.key_file.to_string()}))
    }

    async fn sync(
        &self,
        version: &Version,
        material: &SoftwareMaterial,
    ) -> Result<ProviderRef, SyncError> {
        self.sync_to(self.metadata(), version, material).await
    }

    async fn sync_to(
        &self,
        mut metadata: Map<String, Value>,
        version: &Version,
        material: &SoftwareMaterial,
    ) -> Result<ProviderRef, SyncError> {
        let providers = cloud::Providers::new();
        let credentials = self.credentials();
        providers
            .validate(
                Provider::GcpKms,
                &mut metadata,
                Some(&credentials),
                version.key.algorithm,
                false,
            )
            .expect("valid export");
        let credentials = Zeroizing::new(Value::Object(credentials).to_string());
        providers
            .sync(SyncRequest {
                export_id: Uuid::new_v4(),
                provider: Provider::GcpKms,
                metadata: &metadata,
                credentials: &credentials,
                key: &version.key,
                material,
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

/// One version of an appliance RSA key, with what the provider should end up holding.
struct Version {
    key: ExportedKey,
    pkcs8: Zeroizing<Vec<u8>>,
    public_pem: String,
}

fn rsa_version(key_id: Uuid, version: u32) -> Version {
    let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
    let public = private.to_public_key();
    Version {
        key: ExportedKey {
            key_id,
            name: "payments signing".into(),
            algorithm: Algorithm::Rsa2048,
            usage: Usage::SignVerify,
            version,
            public_key_der: Some(public.to_public_key_der().expect("spki").to_vec()),
            allow_unwrapped_export: false,
        },
        pkcs8: Zeroizing::new(private.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec()),
        public_pem: public.to_public_key_pem(LineEnding::LF).expect("pem"),
    }
}

impl Version {
    fn material(&self) -> SoftwareMaterial {
        SoftwareMaterial::asymmetric(&self.pkcs8)
    }
}

const CRYPTO_KEY: &str =
    "projects/ironseal-test/locations/europe-west1/keyRings/appliance/cryptoKeys/payments-signing";

fn crypto_key(state: &Value) -> &Value {
    &state["cryptoKeys"][CRYPTO_KEY]
}

fn versions(state: &Value) -> Vec<Value> {
    crypto_key(state)["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_arrives_once_and_a_rotation_adds_a_version() {
    let gcp = Gcp::start().await;
    let key_id = Uuid::new_v4();
    let v1 = rsa_version(key_id, 1);
    let material = v1.material();

    let first = gcp.sync(&v1, &material).await.expect("first sync");
    assert_eq!(first.key_id, CRYPTO_KEY);
    assert_eq!(
        first.key_version.as_deref(),
        Some(format!("{CRYPTO_KEY}/cryptoKeyVersions/1").as_str())
    );
    let state = gcp.state().await;
    let key = crypto_key(&state);
    assert_eq!(key["importOnly"], true, "{key}");
    assert_eq!(key["purpose"], "ASYMMETRIC_SIGN", "{key}");
    let imported = versions(&state);
    assert_eq!(imported.len(), 1, "{state}");
    assert_eq!(imported[0]["state"], "ENABLED", "{state}");
    assert_eq!(imported[0]["algorithm"], "RSA_SIGN_PKCS1_2048_SHA256");
    // What the emulator unwrapped (OAEP-SHA256, then AES-KWP) is the appliance's key.
    assert_eq!(imported[0]["publicKeyPem"], v1.public_pem.as_str());
    assert_eq!(key["labels"]["ironseal-key-id"], key_id.to_string());
    assert_eq!(key["labels"]["ironseal-v1"], "1");
    let jobs = state["importJobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["importMethod"], "RSA_OAEP_3072_SHA256_AES_256");

    // A job that runs again (a crash before the outbox commit) finds the version.
    let again = gcp.sync(&v1, &material).await.expect("second sync");
    assert_eq!(again, first);
    let state = gcp.state().await;
    assert_eq!(versions(&state).len(), 1, "{state}");
    assert_eq!(state["importJobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(material.wraps(), 1);

    // A rotation imports a new version into the same crypto key, with a fresh job.
    let v2 = rsa_version(key_id, 2);
    let second = gcp.sync(&v2, &v2.material()).await.expect("rotation sync");
    assert_eq!(second.key_id, CRYPTO_KEY);
    assert_eq!(
        second.key_version.as_deref(),
        Some(format!("{CRYPTO_KEY}/cryptoKeyVersions/2").as_str())
    );
    let state = gcp.state().await;
    let imported = versions(&state);
    assert_eq!(imported.len(), 2, "{state}");
    assert_eq!(imported[1]["publicKeyPem"], v2.public_pem.as_str());
    assert_eq!(crypto_key(&state)["labels"]["ironseal-v2"], "2");
    assert_eq!(crypto_key(&state)["labels"]["ironseal-key-version"], "2");
    assert_eq!(state["importJobs"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_labels_were_never_written_is_found_by_its_public_key() {
    let gcp = Gcp::start().await;
    let key_id = Uuid::new_v4();
    let v1 = rsa_version(key_id, 1);
    gcp.sync(&v1, &v1.material()).await.expect("v1");

    // An account that may import but not update the crypto key: the import succeeds and
    // the label is missing, as after a crash between the import and the PATCH.
    gcp.fault(json!({"mode": "deny", "permission": "cloudkms.cryptoKeys.update"}))
        .await;
    let v2 = rsa_version(key_id, 2);
    let material = v2.material();
    let imported = gcp.sync(&v2, &material).await.expect("v2 without labels");
    let state = gcp.state().await;
    assert!(
        crypto_key(&state)["labels"].get("ironseal-v2").is_none(),
        "{state}"
    );

    gcp.fault(json!({"mode": "none"})).await;
    let again = gcp.sync(&v2, &material).await.expect("v2 again");
    assert_eq!(again, imported);
    assert_eq!(material.wraps(), 1, "the version was imported twice");
    let state = gcp.state().await;
    assert_eq!(versions(&state).len(), 2, "{state}");
    assert_eq!(crypto_key(&state)["labels"]["ironseal-v2"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_refusals_are_permanent_in_gcps_words_and_outages_retryable() {
    let gcp = Gcp::start().await;
    let key_id = Uuid::new_v4();
    let v1 = rsa_version(key_id, 1);

    gcp.fault(json!({"mode": "deny"})).await;
    let denied = gcp.sync(&v1, &v1.material()).await.expect_err("denied");
    assert!(!denied.retryable, "{denied:?}");
    assert!(
        denied
            .message
            .starts_with("PERMISSION_DENIED: Permission 'cloudkms."),
        "{denied:?}"
    );

    gcp.fault(json!({"mode": "deny", "permission": "cloudkms.importJobs.create"}))
        .await;
    let denied = gcp.sync(&v1, &v1.material()).await.expect_err("denied");
    assert!(!denied.retryable, "{denied:?}");
    assert!(
        denied.message.starts_with(
            "PERMISSION_DENIED: Permission 'cloudkms.importJobs.create' denied on resource"
        ),
        "{denied:?}"
    );

    gcp.fault(json!({"mode": "expired"})).await;
    let expired = gcp.sync(&v1, &v1.material()).await.expect_err("expired");
    assert!(!expired.retryable, "{expired:?}");
    assert_eq!(expired.message, "invalid_grant: Invalid JWT Signature.");

    gcp.fault(json!({"mode": "error500"})).await;
    let outage = gcp.sync(&v1, &v1.material()).await.expect_err("outage");
    assert!(outage.retryable, "{outage:?}");

    // Fixed: the same sync goes through, once.
    gcp.fault(json!({"mode": "none"})).await;
    gcp.sync(&v1, &v1.material()).await.expect("after the fix");
    assert_eq!(versions(&gcp.state().await).len(), 1);

    // A crypto key holding another appliance key's versions is left alone.
    let other = rsa_version(Uuid::new_v4(), 1);
    let taken = gcp
        .sync(&other, &other.material())
        .await
        .expect_err("another key's crypto key");
    assert!(!taken.retryable);
    assert!(
        taken
            .message
            .contains("holds the versions of another appliance key")
            && taken.message.contains(&key_id.to_string()),
        "{taken:?}"
    );

    // A key ring is the customer's to make.
    let mut elsewhere = gcp.metadata();
    elsewhere.insert("keyRing".into(), json!("missing"));
    let missing = gcp
        .sync_to(elsewhere, &v1, &v1.material())
        .await
        .expect_err("no key ring");
    assert!(!missing.retryable);
    assert!(
        missing.message.starts_with("NOT_FOUND: KeyRing")
            && missing.message.contains("keyRings/missing"),
        "{missing:?}"
    );

    // Nothing listening: a network error, worth retrying.
    let mut closed = gcp.metadata();
    closed.insert("endpoint".into(), json!("http://127.0.0.1:9"));
    let unreachable = gcp
        .sync_to(closed, &v1, &v1.material())
        .await
        .expect_err("unreachable");
    assert!(unreachable.retryable, "{unreachable:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_follows_what_the_boundary_produces() {
    let gcp = Gcp::start().await;
    let v1 = rsa_version(Uuid::new_v4(), 1);

    // SoftHSM2's OAEP has SHA-1 only: GCP's SHA-1 method.
    let sha1_only = v1.material().without(&[WrapMechanism::RsaAesKeyWrapSha256]);
    gcp.sync(&v1, &sha1_only).await.expect("SHA-1 import");
    let state = gcp.state().await;
    assert_eq!(
        state["importJobs"][0]["importMethod"],
        "RSA_OAEP_3072_SHA1_AES_256"
    );
    assert_eq!(versions(&state)[0]["publicKeyPem"], v1.public_pem.as_str());

    let v2 = rsa_version(v1.key.key_id, 2);
    let neither = v2.material().without(&[
        WrapMechanism::RsaAesKeyWrapSha256,
        WrapMechanism::RsaAesKeyWrapSha1,
    ]);
    let refused = gcp.sync(&v2, &neither).await.expect_err("no format");
    assert!(!refused.retryable);
    assert!(
        refused
            .message
            .contains("this test boundary lacks CKM_RSA_AES_KEY_WRAP (OAEP SHA-1, AES-KWP)"),
        "{refused:?}"
    );
}

#[test]
fn validation_names_the_field_and_refuses_what_gcp_does_not_take() {
    let providers = cloud::Providers::new();
    let account = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
    let key_file = |token_uri: &str| {
        json!({
            "private_key": account.to_pkcs8_pem(LineEnding::LF).expect("pem").as_str(),
            "client_email": CLIENT_EMAIL,
            "token_uri": token_uri,
        })
        .to_string()
    };
    let good_metadata = || object(json!({"projectId": "p", "location": "global", "keyRing": "r"}));
    let good_credentials =
        object(json!({"serviceAccountJson": key_file("https://oauth2.googleapis.com/token")}));
    let validate = |metadata: &mut Map<String, Value>,
                    credentials: Option<&Map<String, Value>>,
                    algorithm: Algorithm| {
        providers.validate(Provider::GcpKms, metadata, credentials, algorithm, false)
    };

    let mut metadata = good_metadata();
    validate(&mut metadata, Some(&good_credentials), Algorithm::Rsa3072).expect("valid");
    assert_eq!(metadata["endpoint"], "https://cloudkms.googleapis.com");

    let refused = |metadata: Value, credentials: Option<Value>, algorithm: Algorithm| {
        let credentials = credentials.map(object);
        validate(&mut object(metadata), credentials.as_ref(), algorithm).expect_err("refused")
    };
    let rsa = Algorithm::Rsa2048;
    for (metadata, needle) in [
        (
            json!({"location": "l", "keyRing": "r"}),
            "providerMetadata.projectId",
        ),
        (
            json!({"projectId": "p", "keyRing": "r"}),
            "providerMetadata.location",
        ),
        (
            json!({"projectId": "p", "location": "l"}),
            "providerMetadata.keyRing",
        ),
        (
            json!({"projectId": "p", "location": "l", "keyRing": "r", "vaultName": "x"}),
            "providerMetadata.vaultName",
        ),
        (
            json!({"projectId": "p", "location": "l", "keyRing": "r", "endpoint": "http://10.0.0.1"}),
            "providerMetadata.endpoint",
        ),
        (
            json!({"projectId": "p", "location": "l", "keyRing": "r", "keyName": "no spaces"}),
            "providerMetadata.keyName",
        ),
        (
            json!({"projectId": "p/../q", "location": "l", "keyRing": "r"}),
            "providerMetadata.projectId",
        ),
        (
            json!({"projectId": "p", "location": "l", "keyRing": "r", "caCertPem": "nope"}),
            "providerMetadata.caCertPem",
        ),
    ] {
        let err = refused(metadata.clone(), None, rsa);
        assert!(err.contains(needle), "{metadata}: {err}");
    }
    let base = json!({"projectId": "p", "location": "l", "keyRing": "r"});
    for (credentials, needle) in [
        (json!({}), "credentials.serviceAccountJson"),
        (
            json!({"serviceAccountJson": "{not json"}),
            "credentials.serviceAccountJson",
        ),
        (
            json!({"serviceAccountJson": "{\"client_email\": \"a@b\", \"token_uri\": \"https://x\"}"}),
            "credentials.serviceAccountJson",
        ),
        (
            json!({"serviceAccountJson": key_file("http://oauth.example.com/token")}),
            "token_uri",
        ),
        (
            json!({"serviceAccountJson": key_file("https://x/t"), "clientSecret": "s"}),
            "credentials.clientSecret",
        ),
    ] {
        let err = refused(base.clone(), Some(credentials.clone()), rsa);
        assert!(err.contains(needle), "{credentials}: {err}");
    }
    for algorithm in [
        Algorithm::EcP256,
        Algorithm::EcP384,
        Algorithm::Aes256,
        Algorithm::MlDsa65,
    ] {
        let err = refused(base.clone(), None, algorithm);
        assert!(err.contains("RSA keys only"), "{algorithm:?}: {err}");
        assert!(err.contains(algorithm.as_str()), "{algorithm:?}: {err}");
    }
}
