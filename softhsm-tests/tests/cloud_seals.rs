//! The export path through the real daemon with every seal: SoftHSM2 and Kryoptic
//! (PKCS#11, the wrap inside the token), the TPM on swtpm and Shamir (the wrap in
//! software, in zeroized memory). Each test makes exportable RSA-2048, P-256 and AES-256
//! keys and exports them to AWS (LocalStack), Azure and GCP (the emulators of
//! `softhsm-tests/emulators/`), then checks what arrived with the stand-ins' own eyes:
//! LocalStack's `GetPublicKey` (through boto3), the emulators' `/_emulator/state`, and the
//! wrapping format the provider was asked for (LocalStack's request log, GCP's import
//! jobs). Where the boundary cannot produce a conformant blob, the export is refused
//! with 422 `EXPORT_FORMAT_UNAVAILABLE` naming the mechanism, nothing is kept, and the
//! provider never saw a key.
//!
//! [`MATRIX`] is the outcome of every (seal, algorithm, provider); README's "What each
//! seal can export" shows the same table.
//!
//! `/api/v1` is Ironseal's own key API: in reference mode (`IRONSEAL_REFERENCE=openbao`)
//! these tests return at once.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};
use softhsm_tests::emulators::Emulator;
use softhsm_tests::hardware::{SoftHsm, Swtpm, ROOT_KEY_LABEL};
use softhsm_tests::kryoptic::{self, Kryoptic};
use softhsm_tests::localstack::{
    localstack_python, LocalStack, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY,
};
use softhsm_tests::tools::run_ok;
use softhsm_tests::{poll_until, reference_mode, Daemon};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seal {
    SoftHsm2,
    Kryoptic,
    Tpm2,
    Shamir,
}

/// What an export of one key to one provider comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Imported, wrapped in this format (the provider's name for it).
    Format(&'static str),
    /// The boundary produces none of the provider's formats: 422 naming the mechanism.
    Refused(&'static str),
    /// The provider imports no key of this algorithm: 400 before anything runs.
    NotTaken,
}

use Expect::{Format, NotTaken, Refused};

/// SoftHSM2 2.6's key wrap with padding zero-pads: a PKCS#8 key would arrive with
/// trailing zeros, so its self-test refuses every RSA-AES format for RSA and EC keys.
const PAD: &str = "CKM_AES_KEY_WRAP_PAD";
/// Microsoft's BYOK blob: RSA-OAEP (SHA-1, as the specification says) then RFC 5649.
const AZURE_BYOK: &str = "CKM_RSA_AES_KEY_WRAP";

const ALGORITHMS: [&str; 3] = ["RSA_2048", "EC_P256", "AES_256"];
const PROVIDERS: [&str; 3] = ["AwsKms", "AzureKeyVault", "GcpKms"];

/// Seal x algorithm -> outcome at AwsKms, AzureKeyVault, GcpKms.
#[rustfmt::skip]
const MATRIX: &[(Seal, &str, [Expect; 3])] = &[
    (Seal::SoftHsm2, "RSA_2048", [Refused(PAD), Refused(PAD), Refused(PAD)]),
    (Seal::SoftHsm2, "EC_P256",  [Refused(PAD), Refused(PAD), NotTaken]),
    (Seal::SoftHsm2, "AES_256",  [Format("RSAES_OAEP_SHA_1"), NotTaken, NotTaken]),
    (Seal::Kryoptic, "RSA_2048", [Format("RSA_AES_KEY_WRAP_SHA_256"), Format(AZURE_BYOK), Format("RSA_OAEP_3072_SHA256_AES_256")]),
    (Seal::Kryoptic, "EC_P256",  [Format("RSA_AES_KEY_WRAP_SHA_256"), Format(AZURE_BYOK), NotTaken]),
    (Seal::Kryoptic, "AES_256",  [Format("RSAES_OAEP_SHA_256"), NotTaken, NotTaken]),
    (Seal::Tpm2,     "RSA_2048", [Format("RSA_AES_KEY_WRAP_SHA_256"), Format(AZURE_BYOK), Format("RSA_OAEP_3072_SHA256_AES_256")]),
    (Seal::Tpm2,     "EC_P256",  [Format("RSA_AES_KEY_WRAP_SHA_256"), Format(AZURE_BYOK), NotTaken]),
    (Seal::Tpm2,     "AES_256",  [Format("RSAES_OAEP_SHA_256"), NotTaken, NotTaken]),
    (Seal::Shamir,   "RSA_2048", [Format("RSA_AES_KEY_WRAP_SHA_256"), Format(AZURE_BYOK), Format("RSA_OAEP_3072_SHA256_AES_256")]),
    (Seal::Shamir,   "EC_P256",  [Format("RSA_AES_KEY_WRAP_SHA_256"), Format(AZURE_BYOK), NotTaken]),
    (Seal::Shamir,   "AES_256",  [Format("RSAES_OAEP_SHA_256"), NotTaken, NotTaken]),
];

const AZURE_TENANT: &str = "ironseal-test-tenant";
const AZURE_CLIENT: &str = "ironseal-test-client";
const AZURE_SECRET: &str = "ironseal-test-secret";
const GCP_RING: &str = "projects/ironseal-test/locations/europe-west1/keyRings/appliance";
const GCP_ACCOUNT: &str = "ironseal-sync@ironseal-test.iam.gserviceaccount.com";

/// The three destinations, started for one test.
struct Providers {
    aws: LocalStack,
    azure: Emulator,
    gcp: Emulator,
    gcp_key_file: String,
}

impl Providers {
    fn start() -> Providers {
        // LocalStack logs each request's parameters at trace level: the test reads the
        // wrapping algorithm the appliance asked `GetParametersForImport` for.
        std::env::set_var("LS_LOG", "trace");
        let aws = LocalStack::start();
        let azure = Emulator::start("azure_keyvault.py", &["--client-secret", AZURE_SECRET]);
        let gcp = Emulator::start("gcp_kms.py", &[]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let private = dir.path().join("sa.pem");
        run_ok(
            Command::new("openssl")
                .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
                .args(["rsa_keygen_bits:2048", "-out", private.to_str().unwrap()]),
        );
        let public = run_ok(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&private),
        );
        let private = std::fs::read_to_string(&private).expect("the service account key");
        let gcp_key_file = json!({
            "type": "service_account",
            "project_id": "ironseal-test",
            "private_key_id": "0123456789abcdef",
            "private_key": private,
            "client_email": GCP_ACCOUNT,
            "client_id": "1234567890",
            "token_uri": format!("{}/token", gcp.url()),
        })
        .to_string();
        post_json(
            &format!("{}/_emulator/setup", gcp.url()),
            &json!({
                "serviceAccounts": [{"clientEmail": GCP_ACCOUNT, "publicKeyPem": public}],
                "keyRings": [GCP_RING],
            }),
        );
        Providers {
            aws,
            azure,
            gcp,
            gcp_key_file,
        }
    }

    fn export_body(&self, provider: &str) -> Value {
        match provider {
            "AwsKms" => json!({
                "provider": provider,
                "providerMetadata": {"region": REGION, "endpoint": self.aws.endpoint()},
                "credentials": {"accessKeyId": ACCESS_KEY_ID, "secretAccessKey": SECRET_ACCESS_KEY},
            }),
            "AzureKeyVault" => json!({
                "provider": provider,
                "providerMetadata": {
                    "vaultName": "ironseal-test",
                    "vaultUrl": self.azure.url(),
                    "authorityHost": self.azure.url(),
                },
                "credentials": {
                    "tenantId": AZURE_TENANT,
                    "clientId": AZURE_CLIENT,
                    "clientSecret": AZURE_SECRET,
                },
            }),
            "GcpKms" => json!({
                "provider": provider,
                "providerMetadata": {
                    "projectId": "ironseal-test",
                    "location": "europe-west1",
                    "keyRing": "appliance",
                    "endpoint": self.gcp.url(),
                },
                "credentials": {"serviceAccountJson": self.gcp_key_file},
            }),
            other => panic!("no stand-in for {other}"),
        }
    }

    /// What each stand-in has seen of imports so far; unchanged by a refused export.
    fn footprint(&self) -> Value {
        let log = self.aws.log();
        let azure = self.azure.state();
        let gcp = self.gcp.state();
        json!({
            "awsCreateKey": log.matches("kms.CreateKey").count(),
            "awsImports": log.matches("kms.ImportKeyMaterial").count(),
            "azure": azure["counts"],
            "gcpImportJobs": gcp["importJobs"].as_array().map_or(0, Vec::len),
            "gcpTokens": gcp["tokensIssued"],
        })
    }

    /// The wrapping algorithm the appliance asked LocalStack's `GetParametersForImport`
    /// for, for the key `arn` (the last request, if several).
    fn aws_wrapping_algorithm(&self, arn: &str) -> String {
        let key_id = arn.rsplit('/').next().unwrap_or(arn);
        let log = self.aws.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("GetParametersForImportRequest(") && l.contains(key_id))
            .unwrap_or_else(|| panic!("no GetParametersForImport for {arn} in LocalStack's log"));
        let (_, rest) = line
            .split_once("'WrappingAlgorithm': '")
            .unwrap_or_else(|| panic!("no WrappingAlgorithm in {line}"));
        rest.split('\'').next().unwrap_or_default().to_string()
    }

    /// LocalStack's view of key `arn`, through boto3: state, origin, spec, and the DER
    /// public key of an asymmetric one.
    fn aws_key(&self, arn: &str) -> Value {
        const SCRIPT: &str = r#"
import base64, json, sys, boto3
endpoint, region, key = sys.argv[1:4]
kms = boto3.client("kms", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id="test", aws_secret_access_key="test")
meta = kms.describe_key(KeyId=key)["KeyMetadata"]
out = {"state": meta["KeyState"], "origin": meta["Origin"], "spec": meta["KeySpec"]}
if meta["KeySpec"] != "SYMMETRIC_DEFAULT":
    out["publicKey"] = base64.b64encode(kms.get_public_key(KeyId=key)["PublicKey"]).decode()
print(json.dumps(out))
"#;
        let out = run_ok(
            Command::new(localstack_python())
                .args(["-c", SCRIPT])
                .args([&self.aws.endpoint(), REGION, arn]),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("boto3 printed {out:?}: {e}"))
    }
}

fn post_json(url: &str, body: &Value) {
    run_ok(Command::new("curl").args([
        "-sS",
        "--fail-with-body",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        &body.to_string(),
        url,
    ]));
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("a PEM body")
}

/// The appliance key's DER public key, `None` for AES.
fn public_der(key: &Value) -> Option<Vec<u8>> {
    key["publicKeyPem"].as_str().map(pem_to_der)
}

/// The record once its initial export finished (201 at once, or 202 and the worker).
fn synced(d: &Daemon, token: &str, key_id: &str, reply: Value) -> Value {
    if reply["syncState"] == "OK" {
        return reply;
    }
    let export = reply["id"].as_str().expect("an export id").to_string();
    poll_until(
        std::time::Duration::from_secs(120),
        "the export to finish",
        || {
            d.kms_cloud_exports(token, key_id)
                .into_iter()
                .find(|r| r["id"] == export.as_str() && r["syncState"] == "OK")
        },
    )
}

/// Runs every row of [`MATRIX`] for `seal` against daemon `d`.
fn export_with_every_provider(seal: Seal, d: &Daemon) {
    let token = d.token.clone().expect("a root token");
    let rows: Vec<_> = MATRIX.iter().filter(|(s, ..)| *s == seal).collect();
    assert_eq!(
        rows.iter().map(|(_, a, _)| *a).collect::<Vec<_>>(),
        ALGORITHMS,
        "the matrix has a row for every algorithm with {seal:?}"
    );
    let providers = Providers::start();
    for (_, algorithm, expected) in rows {
        let name = algorithm.to_lowercase().replace('_', "-");
        let key = d
            .kms_create_key_with(&token, &name, algorithm, json!({"exportable": true}))
            .ok();
        let key_id = key["id"].as_str().expect("a key id").to_string();
        for (provider, expect) in PROVIDERS.iter().zip(expected) {
            let what = format!("{seal:?} {algorithm} -> {provider}");
            let before = providers.footprint();
            let kept = d.kms_cloud_exports(&token, &key_id).len();
            let reply = d.kms_cloud_export(&token, &key_id, providers.export_body(provider));
            match *expect {
                NotTaken => {
                    reply.problem(400, "ALGORITHM_NOT_EXPORTABLE");
                }
                Refused(mechanism) => {
                    let p = reply.problem(422, "EXPORT_FORMAT_UNAVAILABLE");
                    let detail = p["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains(mechanism), "{what}: {p}");
                }
                Format(format) => {
                    let record = synced(d, &token, &key_id, reply.ok());
                    let at = record["providerKeyId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{what}: no providerKeyId in {record}"));
                    arrived(&providers, provider, at, &key, format, &what);
                    continue;
                }
            }
            assert_eq!(
                d.kms_cloud_exports(&token, &key_id).len(),
                kept,
                "{what}: a refused export is not kept"
            );
            assert_eq!(
                providers.footprint(),
                before,
                "{what}: the provider saw nothing of a refused export"
            );
        }
    }
}

/// Checks with the stand-in's own eyes that `key` arrived at `provider` as `at`, wrapped
/// in `format`.
fn arrived(providers: &Providers, provider: &str, at: &str, key: &Value, format: &str, what: &str) {
    let public = public_der(key);
    match provider {
        "AwsKms" => {
            let got = providers.aws_key(at);
            assert_eq!(
                (&got["state"], &got["origin"]),
                (&json!("Enabled"), &json!("EXTERNAL")),
                "{what}: {got}"
            );
            if let Some(public) = public {
                let received = base64::engine::general_purpose::STANDARD
                    .decode(got["publicKey"].as_str().unwrap_or_default())
                    .expect("base64");
                assert_eq!(
                    received, public,
                    "{what}: LocalStack holds another key than the appliance's"
                );
            }
            assert_eq!(providers.aws_wrapping_algorithm(at), format, "{what}");
        }
        "AzureKeyVault" => {
            let state = providers.azure.state();
            let name = key["name"].as_str().expect("a key name");
            let versions: Vec<&Value> = state["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["name"] == name)
                .flat_map(|k| k["versions"].as_array().into_iter().flatten())
                .collect();
            assert_eq!(versions.len(), 1, "{what}: {state}");
            let pem = versions[0]["publicKeyPem"].as_str().unwrap_or_default();
            assert_eq!(Some(pem_to_der(pem)), public, "{what}: {state}");
            assert_eq!(format, AZURE_BYOK, "{what}: the only format Azure takes");
        }
        "GcpKms" => {
            let state = providers.gcp.state();
            let versions = state["cryptoKeys"][at]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(versions.len(), 1, "{what}: {state}");
            let pem = versions[0]["publicKeyPem"].as_str().unwrap_or_default();
            assert_eq!(Some(pem_to_der(pem)), public, "{what}: {state}");
            let methods: Vec<&Value> = state["importJobs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|j| &j["importMethod"])
                .collect();
            assert!(
                !methods.is_empty() && methods.iter().all(|m| *m == format),
                "{what}: import jobs {methods:?}"
            );
        }
        other => panic!("no stand-in for {other}"),
    }
}

/// The daemon sealed by a PKCS#11 token (`module`, `label`), initialised and unsealed.
fn pkcs11_daemon(module: &Path, label: &str, pin_file: &Path, env: &[(&str, &str)]) -> Daemon {
    let seal = format!(
        "seal \"pkcs11\" {{\n  lib          = \"{}\"\n  token_label  = \"{label}\"\n  key_label    = \"{ROOT_KEY_LABEL}\"\n  generate_key = \"true\"\n  pin_file     = \"{}\"\n}}\n",
        module.display(),
        pin_file.display()
    );
    let mut d = Daemon::config_with_seal(&seal, env);
    d.init_recovery(1, 1);
    d.wait_unsealed();
    d
}

#[test]
fn softhsm2_exports_what_its_token_wraps_conformantly_and_refuses_the_rest() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("cloud-seals");
    let (d, _) = hsm.unsealed_daemon(1, 1);
    export_with_every_provider(Seal::SoftHsm2, &d);
}

#[test]
fn kryoptic_exports_every_algorithm_inside_the_token() {
    if reference_mode() {
        return;
    }
    let token = Kryoptic::new("cloud-seals");
    let conf = token.conf();
    let d = pkcs11_daemon(
        &token.module,
        &token.label,
        &token.pin_file(),
        &[(kryoptic::CONF_ENV, conf.to_str().unwrap())],
    );
    export_with_every_provider(Seal::Kryoptic, &d);
}

#[test]
fn tpm2_sealed_appliance_exports_in_software() {
    if reference_mode() {
        return;
    }
    let tpm = Swtpm::start();
    let mut d = Daemon::config_with_seal(&tpm.seal_hcl(), &[]);
    d.init_recovery(1, 1);
    d.wait_unsealed();
    export_with_every_provider(Seal::Tpm2, &d);
}

#[test]
fn shamir_sealed_appliance_exports_in_software() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    export_with_every_provider(Seal::Shamir, &d);
}
