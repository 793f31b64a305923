//! The AWS KMS provider against LocalStack, a third-party KMS emulator started on
//! loopback for each test, checked through a client of the tests' own: the public key AWS
//! holds is the appliance's, a LocalStack signature verifies under it, AES material
//! decrypts what LocalStack encrypted, and a sync run again leaves one key.
//!
//! What LocalStack cannot show is shown against a stand-in that answers every call the
//! same way: it never refuses a caller (no IAM or key-policy checks in the community
//! edition, so no `AccessDeniedException`), and its 500s cannot be counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, MessageType, OriginType, SigningAlgorithmSpec, Tag};
use aws_sdk_kms::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider as TlsProvider};
use cloud::Providers;
use engine::cloud_exports::{
    CloudProviders, ExportMaterial, ExportedKey, Provider, ProviderRef, SyncError, SyncRequest,
};
use engine::managed_keys::Algorithm;
use hsm_bridge::WrapMechanism;
use rand::RngCore;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use serde_json::{json, Map, Value};
use softhsm_tests::localstack::{LocalStack, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
use uuid::Uuid;
use zeroize::Zeroizing;

const ALL_FORMATS: &[WrapMechanism] = &[
    WrapMechanism::RsaOaepSha1,
    WrapMechanism::RsaOaepSha256,
    WrapMechanism::RsaAesKeyWrapSha1,
    WrapMechanism::RsaAesKeyWrapSha256,
];

/// A software boundary, as a Shamir seal exports: `hsm_bridge::byok::wrap_software` over
/// the key's PKCS#8 (or AES bytes), limited to `formats` to stand for a device that
/// produces only some of them.
struct Material {
    target: Zeroizing<Vec<u8>>,
    formats: &'static [WrapMechanism],
    /// Hands out bytes that unwrap to nothing, as a faulty device would.
    corrupt: bool,
}

impl ExportMaterial for Material {
    fn supports(&self, mechanism: WrapMechanism) -> Result<(), String> {
        if self.formats.contains(&mechanism) {
            Ok(())
        } else {
            Err(format!("{} is not available here", mechanism.pkcs11_name()))
        }
    }

    fn wrap(
        &self,
        wrapping_public_der: &[u8],
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, String> {
        self.supports(mechanism)?;
        if self.corrupt {
            return Ok(vec![0x5a; 512 + 48]);
        }
        hsm_bridge::byok::wrap_software(&self.target, wrapping_public_der, mechanism)
            .map_err(|e| e.to_string())
    }

    fn unwrapped(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        Err("AWS KMS takes wrapped material only".into())
    }
}

/// One appliance key version: what the engine would hand the provider.
struct Version {
    key: ExportedKey,
    material: Material,
}

/// A version of `algorithm` whose material is `target` (PKCS#8, or the AES bytes).
fn version_of(
    key_id: Uuid,
    name: &str,
    algorithm: Algorithm,
    version: u32,
    target: Vec<u8>,
    public_key_der: Option<Vec<u8>>,
) -> Version {
    Version {
        key: ExportedKey {
            key_id,
            name: name.to_owned(),
            algorithm,
            usage: algorithm.usages()[0],
            version,
            public_key_der,
            allow_unwrapped_export: false,
        },
        material: Material {
            target: Zeroizing::new(target),
            formats: ALL_FORMATS,
            corrupt: false,
        },
    }
}

/// A version made from `private`'s PKCS#8 and `public`'s SubjectPublicKeyInfo.
fn asymmetric_version(
    key_id: Uuid,
    name: &str,
    algorithm: Algorithm,
    version: u32,
    private: &impl EncodePrivateKey,
    public: &impl EncodePublicKey,
) -> Version {
    let pkcs8 = private.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec();
    let spki = public.to_public_key_der().expect("spki").into_vec();
    version_of(key_id, name, algorithm, version, pkcs8, Some(spki))
}

fn rsa_version(key_id: Uuid, name: &str, version: u32) -> (Version, rsa::RsaPrivateKey) {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa keygen");
    let public = private.to_public_key();
    let v = asymmetric_version(key_id, name, Algorithm::Rsa2048, version, &private, &public);
    (v, private)
}

fn p256_version(key_id: Uuid, name: &str, version: u32) -> (Version, p256::SecretKey) {
    let private = p256::SecretKey::random(&mut rand::thread_rng());
    let public = private.public_key();
    let v = asymmetric_version(key_id, name, Algorithm::EcP256, version, &private, &public);
    (v, private)
}

fn p384_version(key_id: Uuid, name: &str, version: u32) -> Version {
    let private = p384::SecretKey::random(&mut rand::thread_rng());
    let public = private.public_key();
    asymmetric_version(key_id, name, Algorithm::EcP384, version, &private, &public)
}

fn aes_version(key_id: Uuid, name: &str, formats: &'static [WrapMechanism]) -> Version {
    let mut bytes = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut v = version_of(key_id, name, Algorithm::Aes256, 1, bytes, None);
    v.material.formats = formats;
    v
}

/// The export's metadata as the engine stores it: validated, defaults filled in.
fn export_metadata(endpoint: &str, algorithm: Algorithm, extra: Value) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("region".into(), json!(REGION));
    metadata.insert("endpoint".into(), json!(endpoint));
    if let Value::Object(extra) = extra {
        metadata.extend(extra);
    }
    let credentials = credentials_object();
    Providers::new()
        .validate(
            Provider::AwsKms,
            &mut metadata,
            Some(&credentials),
            algorithm,
            false,
        )
        .expect("the metadata is valid");
    metadata
}

fn credentials_object() -> Map<String, Value> {
    let Value::Object(c) =
        json!({"accessKeyId": ACCESS_KEY_ID, "secretAccessKey": SECRET_ACCESS_KEY})
    else {
        unreachable!()
    };
    c
}

async fn sync(
    providers: &Providers,
    metadata: &Map<String, Value>,
    export_id: Uuid,
    version: &Version,
) -> Result<ProviderRef, SyncError> {
    let credentials = Zeroizing::new(Value::Object(credentials_object()).to_string());
    providers
        .sync(SyncRequest {
            export_id,
            provider: Provider::AwsKms,
            metadata,
            credentials: &credentials,
            key: &version.key,
            material: &version.material,
            previous: None,
        })
        .await
}

/// The tests' own view of LocalStack.
fn inspector(endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(TlsProvider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "tests",
        ))
        .http_client(http)
        .build();
    Client::from_conf(config)
}

/// The KMS keys tagged as versions of `key_id`: (ARN, version, state).
async fn tagged_keys(client: &Client, key_id: Uuid) -> Vec<(String, String, KeyState)> {
    let mut found = Vec::new();
    let keys = client
        .list_keys()
        .limit(1000)
        .send()
        .await
        .expect("ListKeys");
    for entry in keys.keys() {
        let id = entry.key_id().expect("a key id");
        let tags = client
            .list_resource_tags()
            .key_id(id)
            .send()
            .await
            .expect("ListResourceTags");
        let tag = |name: &str| {
            tags.tags()
                .iter()
                .find(|t| t.tag_key() == name)
                .map(|t| t.tag_value().to_owned())
        };
        if tag("ironseal-key-id") == Some(key_id.to_string()) {
            let meta = client
                .describe_key()
                .key_id(id)
                .send()
                .await
                .expect("DescribeKey");
            let meta = meta.key_metadata().expect("metadata");
            found.push((
                meta.arn().expect("arn").to_owned(),
                tag("ironseal-key-version").expect("a version tag"),
                meta.key_state().expect("a state").clone(),
            ));
        }
    }
    found.sort();
    found
}

async fn alias_target(client: &Client, alias: &str) -> String {
    let out = client
        .describe_key()
        .key_id(alias)
        .send()
        .await
        .expect("the alias exists");
    out.key_metadata()
        .and_then(|m| m.arn())
        .expect("arn")
        .to_owned()
}

async fn public_key(client: &Client, arn: &str) -> Vec<u8> {
    let out = client
        .get_public_key()
        .key_id(arn)
        .send()
        .await
        .expect("GetPublicKey");
    out.public_key().expect("a public key").as_ref().to_vec()
}

async fn sign(
    client: &Client,
    arn: &str,
    algorithm: SigningAlgorithmSpec,
    message: &[u8],
) -> Vec<u8> {
    let out = client
        .sign()
        .key_id(arn)
        .message(Blob::new(message))
        .message_type(MessageType::Raw)
        .signing_algorithm(algorithm)
        .send()
        .await
        .expect("Sign");
    out.signature().expect("a signature").as_ref().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_arrives_as_the_appliances_key_pair() {
    let localstack = LocalStack::start();
    let kms = inspector(&localstack.endpoint());
    let providers = Providers::new();
    let (key_id, export_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (version, private) = rsa_version(key_id, "payments-signing", 1);
    let metadata = export_metadata(&localstack.endpoint(), Algorithm::Rsa2048, json!({}));

    let made = sync(&providers, &metadata, export_id, &version)
        .await
        .expect("the export succeeds");
    assert_eq!(made.key_version.as_deref(), Some("1"));
    assert!(
        made.key_id.starts_with("arn:aws:kms:us-east-1:"),
        "{made:?}"
    );

    let described = kms
        .describe_key()
        .key_id(&made.key_id)
        .send()
        .await
        .expect("DescribeKey");
    let described = described.key_metadata().expect("metadata");
    assert_eq!(described.key_spec(), Some(&KeySpec::Rsa2048));
    assert_eq!(described.origin(), Some(&OriginType::External));
    assert_eq!(described.key_state(), Some(&KeyState::Enabled));
    assert_eq!(
        Some(public_key(&kms, &made.key_id).await),
        version.key.public_key_der
    );

    let message = b"signed by LocalStack with the imported key";
    let signature = sign(
        &kms,
        &made.key_id,
        SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        message,
    )
    .await;
    let verifying = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(private.to_public_key());
    let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).expect("a signature");
    rsa::signature::Verifier::verify(&verifying, message, &signature)
        .expect("LocalStack signed with the appliance's private key");

    assert_eq!(
        alias_target(&kms, "alias/payments-signing").await,
        made.key_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_keys_arrive_as_the_appliances_key_pairs() {
    let localstack = LocalStack::start();
    let kms = inspector(&localstack.endpoint());
    let providers = Providers::new();

    let (version, private) = p256_version(Uuid::new_v4(), "p256", 1);
    let metadata = export_metadata(
        &localstack.endpoint(),
        Algorithm::EcP256,
        json!({"alias": "alias/team/p256"}),
    );
    let made = sync(&providers, &metadata, Uuid::new_v4(), &version)
        .await
        .expect("the export succeeds");
    assert_eq!(
        Some(public_key(&kms, &made.key_id).await),
        version.key.public_key_der
    );
    let message = b"an ECDSA signature made by LocalStack";
    let signature = sign(
        &kms,
        &made.key_id,
        SigningAlgorithmSpec::EcdsaSha256,
        message,
    )
    .await;
    let signature = p256::ecdsa::Signature::from_der(&signature).expect("a DER signature");
    let verifying = p256::ecdsa::VerifyingKey::from(private.public_key());
    p256::ecdsa::signature::Verifier::verify(&verifying, message, &signature)
        .expect("LocalStack signed with the appliance's private key");
    assert_eq!(alias_target(&kms, "alias/team/p256").await, made.key_id);

    let version = p384_version(Uuid::new_v4(), "p384", 1);
    let metadata = export_metadata(&localstack.endpoint(), Algorithm::EcP384, json!({}));
    let made = sync(&providers, &metadata, Uuid::new_v4(), &version)
        .await
        .expect("the export succeeds");
    let described = kms
        .describe_key()
        .key_id(&made.key_id)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_spec()),
        Some(&KeySpec::EccNistP384)
    );
    assert_eq!(
        Some(public_key(&kms, &made.key_id).await),
        version.key.public_key_der
    );
}

/// LocalStack's `Encrypt`/`Decrypt` round trip would pass with any material, so the
/// proof reads its ciphertext: LocalStack 4.10 writes `key id (36) || IV (16) || tag (16)
/// || AES-256-GCM ciphertext` under the imported bytes (localstack/services/kms/models.py),
/// which the test opens with the appliance's AES key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_material_arrives_as_the_appliances_bytes() {
    let localstack = LocalStack::start();
    let kms = inspector(&localstack.endpoint());
    let providers = Providers::new();
    // SoftHSM2's OAEP is SHA-1 only: the provider falls back to RSAES_OAEP_SHA_1.
    let version = aes_version(Uuid::new_v4(), "aes", &[WrapMechanism::RsaOaepSha1]);
    let metadata = export_metadata(&localstack.endpoint(), Algorithm::Aes256, json!({}));
    let made = sync(&providers, &metadata, Uuid::new_v4(), &version)
        .await
        .expect("the export succeeds");

    let described = kms
        .describe_key()
        .key_id(&made.key_id)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_spec()),
        Some(&KeySpec::SymmetricDefault)
    );
    let message = b"encrypted by LocalStack, opened by the appliance's key";
    let blob = kms
        .encrypt()
        .key_id(&made.key_id)
        .plaintext(Blob::new(message.as_slice()))
        .send()
        .await
        .expect("Encrypt");
    let blob = blob
        .ciphertext_blob()
        .expect("a ciphertext")
        .as_ref()
        .to_vec();
    let (iv, rest) = blob[36..].split_at(16);
    let (tag, ciphertext) = rest.split_at(16);
    let cipher =
        AesGcm::<Aes256, U16>::new_from_slice(&version.material.target).expect("an AES-256 key");
    let sealed = [ciphertext, tag].concat();
    let opened = cipher
        .decrypt(
            iv.into(),
            Payload {
                msg: &sealed,
                aad: b"",
            },
        )
        .expect("LocalStack encrypted under the appliance's AES key");
    assert!(
        opened.starts_with(message),
        "LocalStack pads the plaintext before GCM"
    );

    let nothing = aes_version(Uuid::new_v4(), "aes-nothing", &[]);
    let err = sync(&providers, &metadata, Uuid::new_v4(), &nothing)
        .await
        .expect_err("no format");
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message
            .contains("CKM_RSA_PKCS_OAEP (SHA-1) is not available here"),
        "{err:?}"
    );
    assert!(
        tagged_keys(&kms, nothing.key.key_id).await.is_empty(),
        "no key is made for a boundary that cannot export"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_run_again_finds_its_key() {
    let localstack = LocalStack::start();
    let kms = inspector(&localstack.endpoint());
    let providers = Providers::new();
    let (key_id, export_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (version, _) = p256_version(key_id, "again", 1);
    let metadata = export_metadata(&localstack.endpoint(), Algorithm::EcP256, json!({}));

    let first = sync(&providers, &metadata, export_id, &version)
        .await
        .expect("the first sync");
    let second = sync(&providers, &metadata, export_id, &version)
        .await
        .expect("the second sync");
    assert_eq!(first, second);
    assert_eq!(
        tagged_keys(&kms, key_id).await,
        vec![(first.key_id.clone(), "1".to_owned(), KeyState::Enabled)]
    );

    // A crash after CreateKey, before the import: the next run imports into that key.
    let (version, _) = p256_version(key_id, "again", 2);
    let tags = [
        ("ironseal-key-id", key_id.to_string()),
        ("ironseal-key-version", "2".to_owned()),
        ("ironseal-export-id", export_id.to_string()),
    ]
    .map(|(k, v)| {
        Tag::builder()
            .tag_key(k)
            .tag_value(v)
            .build()
            .expect("a tag")
    });
    let orphan = kms
        .create_key()
        .origin(OriginType::External)
        .key_spec(KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .set_tags(Some(tags.to_vec()))
        .send()
        .await
        .expect("CreateKey");
    let orphan = orphan
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("arn")
        .to_owned();
    let resumed = sync(&providers, &metadata, export_id, &version)
        .await
        .expect("the resumed sync");
    assert_eq!(resumed.key_id, orphan);
    assert_eq!(
        Some(public_key(&kms, &orphan).await),
        version.key.public_key_der
    );
    assert_eq!(tagged_keys(&kms, key_id).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_gets_a_new_key_and_the_alias() {
    let localstack = LocalStack::start();
    let kms = inspector(&localstack.endpoint());
    let providers = Providers::new();
    let (key_id, export_id) = (Uuid::new_v4(), Uuid::new_v4());
    let metadata = export_metadata(
        &localstack.endpoint(),
        Algorithm::Rsa2048,
        json!({"alias": "alias/rotating"}),
    );

    let (v1, _) = rsa_version(key_id, "rotating", 1);
    let first = sync(&providers, &metadata, export_id, &v1)
        .await
        .expect("version 1");
    let (v2, private2) = rsa_version(key_id, "rotating", 2);
    let second = sync(&providers, &metadata, export_id, &v2)
        .await
        .expect("version 2");
    assert_ne!(first.key_id, second.key_id);
    assert_eq!(second.key_version.as_deref(), Some("2"));
    assert_eq!(alias_target(&kms, "alias/rotating").await, second.key_id);
    assert_eq!(
        Some(public_key(&kms, &second.key_id).await),
        v2.key.public_key_der
    );
    let message = b"after the rotation";
    let signature = sign(
        &kms,
        "alias/rotating",
        SigningAlgorithmSpec::RsassaPssSha256,
        message,
    )
    .await;
    let verifying = rsa::pss::VerifyingKey::<sha2::Sha256>::new(private2.to_public_key());
    let signature = rsa::pss::Signature::try_from(signature.as_slice()).expect("a signature");
    rsa::signature::Verifier::verify(&verifying, message, &signature)
        .expect("the alias signs with version 2's key");

    // A late job for version 1 leaves the alias on version 2.
    assert_eq!(
        sync(&providers, &metadata, export_id, &v1).await,
        Ok(first.clone())
    );
    assert_eq!(alias_target(&kms, "alias/rotating").await, second.key_id);
    let keys = tagged_keys(&kms, key_id).await;
    assert_eq!(keys.len(), 2, "{keys:?}");

    // An alias on a key that is not this one's stays where it is.
    let foreign = kms.create_key().send().await.expect("CreateKey");
    let foreign = foreign
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .expect("id");
    kms.create_alias()
        .alias_name("alias/taken")
        .target_key_id(&foreign)
        .send()
        .await
        .expect("CreateAlias");
    let taken = export_metadata(
        &localstack.endpoint(),
        Algorithm::Rsa2048,
        json!({"alias": "alias/taken"}),
    );
    let err = sync(&providers, &taken, Uuid::new_v4(), &v2)
        .await
        .expect_err("the alias is someone else's");
    assert!(
        !err.retryable && err.message.contains("alias/taken already names KMS key"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_localstack_cannot_open_is_a_retryable_sync_error() {
    let localstack = LocalStack::start();
    let providers = Providers::new();
    let (mut version, _) = p256_version(Uuid::new_v4(), "corrupt", 1);
    version.material.corrupt = true;
    let metadata = export_metadata(&localstack.endpoint(), Algorithm::EcP256, json!({}));
    let err = sync(&providers, &metadata, Uuid::new_v4(), &version)
        .await
        .expect_err("LocalStack answers 500");
    assert_eq!(
        err,
        SyncError::retryable(
            "InternalError: exception while calling kms.ImportKeyMaterial: Decryption failed"
        )
    );

    // LocalStack rejects the SHA-1 variant of the RSA-AES format for private keys: its
    // refusal arrives as it words it, and is not retried.
    let (mut version, _) = p256_version(Uuid::new_v4(), "sha1", 1);
    version.material.formats = &[WrapMechanism::RsaAesKeyWrapSha1];
    let err = sync(&providers, &metadata, Uuid::new_v4(), &version)
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        SyncError::permanent(
            "KMSInvalidStateException: Unsupported padding, requested wrapping algorithm: \
             'RSA_AES_KEY_WRAP_SHA_1'"
        )
    );
}

/// A stand-in for AWS that answers every request with `status` and `body` and counts them.
fn stand_in(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut request_body = vec![0; length];
            let _ = reader.read_exact(&mut request_body);
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (endpoint, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_aws_words_and_permanent() {
    let (endpoint, requests) = stand_in(
        400,
        r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::111122223333:user/ironseal is not authorized to perform: kms:ListKeys because no identity-based policy allows the kms:ListKeys action"}"#,
    );
    let (version, _) = p256_version(Uuid::new_v4(), "denied", 1);
    let metadata = export_metadata(&endpoint, Algorithm::EcP256, json!({}));
    let err = sync(&Providers::new(), &metadata, Uuid::new_v4(), &version)
        .await
        .expect_err("denied");
    assert_eq!(
        err,
        SyncError::permanent(
            "AccessDeniedException: User: arn:aws:iam::111122223333:user/ironseal is not \
             authorized to perform: kms:ListKeys because no identity-based policy allows the \
             kms:ListKeys action"
        )
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_one_attempt() {
    let (endpoint, requests) = stand_in(
        500,
        r#"{"__type":"KMSInternalException","message":"We encountered an internal error. Please try again."}"#,
    );
    let (version, _) = p256_version(Uuid::new_v4(), "five-hundred", 1);
    let metadata = export_metadata(&endpoint, Algorithm::EcP256, json!({}));
    let err = sync(&Providers::new(), &metadata, Uuid::new_v4(), &version)
        .await
        .expect_err("500");
    assert_eq!(
        err,
        SyncError::retryable(
            "KMSInternalException: We encountered an internal error. Please try again."
        )
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the SDK does not retry on its own"
    );

    // Nobody listening: a network error, worth trying again later.
    let closed = TcpListener::bind("127.0.0.1:0").expect("a port");
    let endpoint = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let metadata = export_metadata(&endpoint, Algorithm::EcP256, json!({}));
    let err = sync(&Providers::new(), &metadata, Uuid::new_v4(), &version)
        .await
        .expect_err("refused");
    assert!(err.retryable, "{err:?}");
}
