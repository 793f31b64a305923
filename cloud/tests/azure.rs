//! Azure Key Vault exports against the emulator (softhsm-tests/emulators/azure_keyvault.py),
//! which unwraps what arrives with Python's `cryptography`: the keys made here must come
//! out there, with the same public key, once per appliance version.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use cloud::Providers;
use engine::cloud_exports::{
    CloudProviders, ExportMaterial, ExportedKey, Provider, ProviderRef, SyncError, SyncRequest,
};
use engine::managed_keys::Algorithm;
use hsm_bridge::WrapMechanism;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use serde_json::{json, Map, Value};
use softhsm_tests::emulators::Emulator;
use uuid::Uuid;
use zeroize::Zeroizing;

const SECRET: &str = "right-secret";

/// A key version whose material is in memory: the software boundary's wrap, counted.
struct Material {
    pkcs8: Zeroizing<Vec<u8>>,
    refuse: Option<String>,
    wraps: AtomicUsize,
}

impl ExportMaterial for Material {
    fn supports(&self, _mechanism: WrapMechanism) -> Result<(), String> {
        match &self.refuse {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    fn wrap(
        &self,
        wrapping_public_der: &[u8],
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, String> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        hsm_bridge::byok::wrap_software(&self.pkcs8, wrapping_public_der, mechanism)
            .map_err(|e| e.to_string())
    }

    fn unwrapped(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        Err("not an AES key".into())
    }
}

/// One appliance key version: what the sync carries and what the provider must end with.
struct Version {
    key: ExportedKey,
    material: Material,
}

fn rsa_version(key_id: Uuid, name: &str, version: u32) -> Version {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa keygen");
    let pkcs8 = private.to_pkcs8_der().expect("pkcs8");
    let public = private.to_public_key().to_public_key_der().expect("spki");
    make_version(
        key_id,
        name,
        version,
        Algorithm::Rsa2048,
        pkcs8.as_bytes(),
        public.as_bytes(),
    )
}

fn p256_version(key_id: Uuid, name: &str, version: u32) -> Version {
    let private = p256::SecretKey::random(&mut rand::thread_rng());
    let pkcs8 = private.to_pkcs8_der().expect("pkcs8");
    let public = private.public_key().to_public_key_der().expect("spki");
    make_version(
        key_id,
        name,
        version,
        Algorithm::EcP256,
        pkcs8.as_bytes(),
        public.as_bytes(),
    )
}

fn make_version(
    key_id: Uuid,
    name: &str,
    version: u32,
    algorithm: Algorithm,
    pkcs8: &[u8],
    public: &[u8],
) -> Version {
    Version {
        key: ExportedKey {
            key_id,
            name: name.to_string(),
            algorithm,
            usage: algorithm.usages()[0],
            version,
            public_key_der: Some(public.to_vec()),
            allow_unwrapped_export: false,
        },
        material: Material {
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            refuse: None,
            wraps: AtomicUsize::new(0),
        },
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// An export to the emulator, as the API would store it: validated, defaults filled in.
struct Export {
    id: Uuid,
    metadata: Map<String, Value>,
    credentials: Zeroizing<String>,
}

fn export(emulator: &Emulator, extra: Value, secret: &str) -> Export {
    let mut metadata = object(json!({
        "vaultName": "ironseal-test",
        "vaultUrl": emulator.url(),
        "authorityHost": emulator.url(),
    }));
    metadata.extend(object(extra));
    let credentials = object(json!({
        "tenantId": "ironseal-test-tenant",
        "clientId": "ironseal-test-client",
        "clientSecret": secret,
    }));
    Providers::new()
        .validate(
            Provider::AzureKeyVault,
            &mut metadata,
            Some(&credentials),
            Algorithm::Rsa2048,
            false,
        )
        .expect("a valid export");
    Export {
        id: Uuid::new_v4(),
        metadata,
        credentials: Zeroizing::new(Value::Object(credentials).to_string()),
    }
}

async fn sync(export: &Export, version: &Version) -> Result<ProviderRef, SyncError> {
    Providers::new()
        .sync(SyncRequest {
            export_id: export.id,
            provider: Provider::AzureKeyVault,
            metadata: &export.metadata,
            credentials: &export.credentials,
            key: &version.key,
            material: &version.material,
            previous: None,
        })
        .await
}

fn start() -> Emulator {
    // One version a page, so finding an earlier import follows nextLink.
    Emulator::start(
        "azure_keyvault.py",
        &["--client-secret", SECRET, "--page-size", "1"],
    )
}

/// The emulator's versions of the Azure key `name`.
fn versions(emulator: &Emulator, name: &str) -> Vec<Value> {
    emulator.state()["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == name)
        .and_then(|k| k["versions"].as_array().cloned())
        .unwrap_or_default()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

fn imports(emulator: &Emulator) -> u64 {
    emulator.state()["counts"]["imports"]
        .as_u64()
        .expect("import count")
}

/// The one Azure version tagged with `version`: its public key is the appliance's.
#[track_caller]
fn assert_arrived(emulator: &Emulator, name: &str, version: &Version, got: &ProviderRef) {
    let all = versions(emulator, name);
    let (key_id, key_version) = (
        version.key.key_id.to_string(),
        version.key.version.to_string(),
    );
    let tagged: Vec<&Value> = all
        .iter()
        .filter(|v| {
            v["tags"]["ironseal-key-id"].as_str() == Some(key_id.as_str())
                && v["tags"]["ironseal-key-version"].as_str() == Some(key_version.as_str())
        })
        .collect();
    assert_eq!(
        tagged.len(),
        1,
        "one Azure version per appliance version: {all:?}"
    );
    let arrived = tagged[0];
    assert_eq!(arrived["origin"], "byok", "{arrived}");
    assert_eq!(
        pem_to_der(arrived["publicKeyPem"].as_str().expect("pem")),
        version.key.public_key_der.clone().expect("public key"),
        "the private key Azure received is not the appliance's"
    );
    assert_eq!(got.key_id, format!("{}/keys/{name}", emulator.url()));
    assert_eq!(got.key_version.as_deref(), arrived["version"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_and_p256_keys_arrive_once_per_version_under_one_name() {
    let emulator = start();
    let export = export(&emulator, json!({"keyName": "payments-signing"}), SECRET);

    let rsa_id = Uuid::new_v4();
    let rsa_v1 = rsa_version(rsa_id, "payments", 1);
    let first = sync(&export, &rsa_v1).await.expect("first sync");
    assert_arrived(&emulator, "payments-signing", &rsa_v1, &first);

    // The same version again (a job run twice): found by its tags, nothing imported.
    let before = imports(&emulator);
    let again = sync(&export, &rsa_v1).await.expect("second sync");
    assert_eq!(again, first);
    assert_eq!(imports(&emulator), before, "a repeated sync imported again");
    assert_eq!(rsa_v1.material.wraps.load(Ordering::SeqCst), 1);

    // A rotation: a second Azure version of the same key.
    let rsa_v2 = rsa_version(rsa_id, "payments", 2);
    let second = sync(&export, &rsa_v2).await.expect("rotation sync");
    assert_eq!(second.key_id, first.key_id);
    assert_ne!(second.key_version, first.key_version);
    assert_arrived(&emulator, "payments-signing", &rsa_v2, &second);
    assert_eq!(versions(&emulator, "payments-signing").len(), 2);
    // Each import had its own key-exchange key, kept for import only.
    let keks = versions(&emulator, &format!("ironseal-kek-{}", export.id));
    assert_eq!(keks.len(), 2, "{keks:?}");
    assert!(keks.iter().all(|k| k["key_ops"] == json!(["import"])));

    // An EC key under the appliance key's own name (no keyName).
    let ec_export = Export {
        id: Uuid::new_v4(),
        metadata: {
            let mut m = export.metadata.clone();
            m.remove("keyName");
            m
        },
        credentials: export.credentials.clone(),
    };
    let ec = p256_version(Uuid::new_v4(), "edge-p256", 1);
    let got = sync(&ec_export, &ec).await.expect("P-256 sync");
    assert_arrived(&emulator, "edge-p256", &ec, &got);
    let arrived = &versions(&emulator, "edge-p256")[0];
    assert_eq!(arrived["kty"], "EC-HSM");
    assert_eq!(arrived["crv"], "P-256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_gives_azure_s_words_and_waits_for_a_person() {
    let emulator = start();
    let export = export(&emulator, json!({}), SECRET);
    let version = p256_version(Uuid::new_v4(), "denied", 1);

    emulator.fault("deny");
    let err = sync(&export, &version).await.expect_err("denied");
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message.starts_with(
            "ForbiddenByRbac: Caller is not authorized to perform action on resource."
        ),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("Action: 'Microsoft.KeyVault/vaults/keys/"),
        "{}",
        err.message
    );

    // The role granted: the same sync goes through.
    emulator.fault("none");
    let got = sync(&export, &version).await.expect("after the fix");
    assert_arrived(&emulator, "denied", &version, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_wrong_secrets_give_entra_s_words_and_are_permanent() {
    let emulator = start();
    let version = p256_version(Uuid::new_v4(), "signin", 1);

    let wrong = export(&emulator, json!({}), "wrong-secret");
    let err = sync(&wrong, &version).await.expect_err("wrong secret");
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message
            .starts_with("AADSTS7000215: Invalid client secret provided."),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("wrong-secret"),
        "the secret leaked: {}",
        err.message
    );

    emulator.fault("expired");
    let right = export(&emulator, json!({}), SECRET);
    let err = sync(&right, &version).await.expect_err("expired");
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message
            .starts_with("AADSTS7000222: The provided client secret keys for app 'ironseal-test-client' are expired."),
        "{}",
        err.message
    );
    assert_eq!(imports(&emulator), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_unreachable_vaults_are_retryable() {
    let emulator = start();
    let export = export(&emulator, json!({}), SECRET);
    let version = p256_version(Uuid::new_v4(), "flaky", 1);

    emulator.fault("error500");
    let err = sync(&export, &version).await.expect_err("500");
    assert!(err.retryable, "{err:?}");
    assert!(
        err.message.starts_with("InternalServerError: "),
        "{}",
        err.message
    );

    let port = emulator.port();
    drop(emulator);
    let mut gone = export;
    gone.metadata
        .insert("vaultUrl".into(), format!("http://127.0.0.1:{port}").into());
    let err = sync(&gone, &version).await.expect_err("nobody listening");
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("Azure sign-in"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boundary_without_the_format_is_refused_before_anything_is_created() {
    let emulator = start();
    let export = export(&emulator, json!({}), SECRET);
    let mut version = rsa_version(Uuid::new_v4(), "hsm-bound", 1);
    version.material.refuse = Some(
        "CKM_AES_KEY_WRAP_PAD is not RFC 5649 on this token (a PKCS#8 key would arrive padded)"
            .into(),
    );
    let err = sync(&export, &version).await.expect_err("unsupported");
    assert!(!err.retryable);
    assert!(
        err.message
            .contains("CKM_RSA_AES_KEY_WRAP (OAEP SHA-1, AES-KWP)"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("CKM_AES_KEY_WRAP_PAD is not RFC 5649"),
        "{}",
        err.message
    );
    let counts = &emulator.state()["counts"];
    assert_eq!(counts["creates"], 0, "{counts}");
    assert_eq!(counts["tokens"], 0, "{counts}");
}

fn validate(
    metadata: Value,
    credentials: Option<Value>,
    algorithm: Algorithm,
) -> Result<Map<String, Value>, String> {
    let mut metadata = object(metadata);
    let credentials = credentials.map(object);
    Providers::new()
        .validate(
            Provider::AzureKeyVault,
            &mut metadata,
            credentials.as_ref(),
            algorithm,
            false,
        )
        .map(|()| metadata)
}

#[test]
fn validation_fills_the_defaults_and_names_the_field_at_fault() {
    let creds = || {
        Some(json!({"tenantId": "contoso.onmicrosoft.com", "clientId": "c", "clientSecret": "s"}))
    };
    let filled = validate(
        json!({"vaultName": "contoso-keys"}),
        creds(),
        Algorithm::EcP384,
    )
    .expect("valid");
    assert_eq!(filled["vaultUrl"], "https://contoso-keys.vault.azure.net");
    assert_eq!(filled["authorityHost"], "https://login.microsoftonline.com");

    let refused = |metadata: Value, credentials: Option<Value>, algorithm: Algorithm| {
        validate(metadata, credentials, algorithm).expect_err("refused")
    };
    let e = refused(json!({}), creds(), Algorithm::Rsa2048);
    assert!(e.contains("providerMetadata.vaultName"), "{e}");
    let e = refused(
        json!({"vaultName": "v-1", "region": "x"}),
        creds(),
        Algorithm::Rsa2048,
    );
    assert!(e.contains("providerMetadata.region"), "{e}");
    let e = refused(
        json!({"vaultName": "v-1", "keyName": "a_b"}),
        creds(),
        Algorithm::Rsa2048,
    );
    assert!(e.contains("providerMetadata.keyName"), "{e}");
    let e = refused(
        json!({"vaultName": "v-1"}),
        Some(json!({"tenantId": "t", "clientId": "c"})),
        Algorithm::Rsa2048,
    );
    assert!(e.contains("credentials.clientSecret"), "{e}");
    let e = refused(
        json!({"vaultName": "v-1", "caCertPem": "nope"}),
        creds(),
        Algorithm::Rsa2048,
    );
    assert!(e.contains("providerMetadata.caCertPem"), "{e}");

    // Plain HTTP only to loopback, for either location.
    let e = refused(
        json!({"vaultName": "v-1", "vaultUrl": "http://vault.example.com"}),
        creds(),
        Algorithm::Rsa2048,
    );
    assert!(
        e.contains("providerMetadata.vaultUrl") && e.contains("loopback"),
        "{e}"
    );
    let e = refused(
        json!({"vaultName": "v-1", "authorityHost": "http://10.0.0.8:8080"}),
        creds(),
        Algorithm::Rsa2048,
    );
    assert!(
        e.contains("providerMetadata.authorityHost") && e.contains("loopback"),
        "{e}"
    );
    assert!(validate(
        json!({"vaultName": "v-1", "vaultUrl": "http://127.0.0.1:9", "authorityHost": "http://[::1]:9"}),
        creds(),
        Algorithm::Rsa2048
    )
    .is_ok());

    // What Azure's BYOK does not take.
    let e = refused(json!({"vaultName": "v-1"}), creds(), Algorithm::Aes256);
    assert!(
        e.contains("Azure Key Vault does not import AES keys"),
        "{e}"
    );
    let e = refused(json!({"vaultName": "v-1"}), creds(), Algorithm::MlDsa65);
    assert!(
        e.contains("Post-quantum algorithms (ML-KEM, ML-DSA) cannot be exported"),
        "{e}"
    );
}

/// The emulator is only as good as its refusals: a blob Azure would refuse must be refused
/// here too, in Azure's error shape, or the tests above prove little.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_refuses_what_azure_refuses() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let emulator = start();
    let base = emulator.url();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/ironseal-test-tenant/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "ironseal-test-client"),
            ("client_secret", SECRET),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let bearer = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{base}{path}?api-version=7.4"))
            .bearer_auth(&bearer)
            .json(&body)
            .send()
    };
    // A KEK with the given operations: its kid and SubjectPublicKeyInfo.
    let kek = |name: &'static str, ops: Value| {
        let created = call(
            reqwest::Method::POST,
            &format!("/keys/{name}/create"),
            json!({"kty": "RSA-HSM", "key_size": 2048, "key_ops": ops}),
        );
        async move {
            let bundle: Value = created.await.expect("create").json().await.expect("json");
            let part = |f: &str| {
                let text = bundle["key"][f].as_str().expect("n, e");
                rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(text).expect("b64url"))
            };
            let public = rsa::RsaPublicKey::new(part("n"), part("e")).expect("rsa");
            let der = public
                .to_public_key_der()
                .expect("spki")
                .as_bytes()
                .to_vec();
            (bundle["key"]["kid"].as_str().expect("kid").to_string(), der)
        }
    };
    let (kid, der) = kek("kek-import", json!(["import"])).await;
    let (wide_kid, wide_der) = kek("kek-wide", json!(["import", "encrypt"])).await;

    let target = p256_version(Uuid::new_v4(), "t", 1);
    let blob = |kid: &str, der: &[u8], target: &[u8], enc: &str| {
        let wrapped =
            hsm_bridge::byok::wrap_software(target, der, WrapMechanism::RsaAesKeyWrapSha1)
                .expect("wrap");
        let blob = json!({
            "schema_version": "1.0.0",
            "header": {"kid": kid, "alg": "dir", "enc": enc},
            "ciphertext": URL_SAFE_NO_PAD.encode(wrapped),
            "generator": "test",
        });
        json!({"key": {"kty": "EC-HSM", "crv": "P-256", "key_ops": ["sign"],
                       "key_hsm": URL_SAFE_NO_PAD.encode(blob.to_string())}})
    };
    let pkcs8 = target.material.pkcs8.to_vec();
    // A PKCS#8 key with the zero padding SoftHSM2's CKM_AES_KEY_WRAP_PAD leaves on it.
    let mut padded = pkcs8.clone();
    padded.extend_from_slice(&[0; 7]);

    for (body, needle) in [
        (
            blob(&format!("{kid}0"), &der, &pkcs8, "CKM_RSA_AES_KEY_WRAP"),
            "was not found",
        ),
        (
            blob(&wide_kid, &wide_der, &pkcs8, "CKM_RSA_AES_KEY_WRAP"),
            "key_ops ['import'] only",
        ),
        (
            blob(&kid, &der, &pkcs8, "RSA-OAEP"),
            "enc 'CKM_RSA_AES_KEY_WRAP'",
        ),
        (
            blob(&kid, &der, &padded, "CKM_RSA_AES_KEY_WRAP"),
            "not a PKCS#8 private key",
        ),
    ] {
        let answer = call(reqwest::Method::PUT, "/keys/target", body)
            .await
            .expect("import");
        assert_eq!(answer.status(), 400);
        let error: Value = answer.json().await.expect("error json");
        assert_eq!(error["error"]["code"], "BadParameter", "{error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{needle}: {error}");
    }
    // The well-formed blob goes through.
    let answer = call(
        reqwest::Method::PUT,
        "/keys/target",
        blob(&kid, &der, &pkcs8, "CKM_RSA_AES_KEY_WRAP"),
    )
    .await
    .expect("import");
    assert_eq!(answer.status(), 200);
    assert_eq!(imports(&emulator), 1);
}
