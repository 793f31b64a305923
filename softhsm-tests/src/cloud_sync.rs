//! What the cloud-export tests of a real daemon share: the stand-ins set up with the
//! credentials an export gives them, the export bodies pointing at them, polling an
//! export record until it reaches a state, the audit log's sync events, and checks made
//! with Python's `cryptography` rather than with the product's code.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::emulators::Emulator;
use crate::tools::{python, run_ok};
use crate::Daemon;

/// How long an export may take to reach a state: several provider round trips, the
/// worker's backoff, and a loaded 2-core machine.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(180);

/// The secret the tests' credentials carry: it must appear in no audit line or answer.
pub const SECRET: &str = "ironseal-test-secret";

/// Azure Key Vault's emulator with its default tenant, client and secret.
pub fn azure() -> Emulator {
    Emulator::start(
        "azure_keyvault.py",
        &[
            "--tenant",
            "ironseal-test-tenant",
            "--client-id",
            "ironseal-test-client",
            "--client-secret",
            SECRET,
        ],
    )
}

pub fn azure_export(emulator: &Emulator, key_name: &str) -> Value {
    json!({
        "provider": "AzureKeyVault",
        "providerMetadata": {
            "vaultName": "emulator",
            "keyName": key_name,
            "vaultUrl": emulator.url(),
            "authorityHost": emulator.url(),
        },
        "credentials": {
            "tenantId": "ironseal-test-tenant",
            "clientId": "ironseal-test-client",
            "clientSecret": SECRET,
        },
    })
}

/// The versions Azure's emulator holds of key `name`, oldest first.
pub fn azure_versions(emulator: &Emulator, name: &str) -> Vec<Value> {
    let state = emulator.state();
    state["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == name)
        .and_then(|k| k["versions"].as_array().cloned())
        .unwrap_or_default()
}

/// GCP's emulator with a service account whose key file [`gcp_export`] sends, and one
/// key ring.
pub struct Gcp {
    pub emulator: Emulator,
    key_file: Value,
}

const GCP_RING: &str = "projects/ironseal-test/locations/europe-west1/keyRings/appliance";

pub fn gcp() -> Gcp {
    let emulator = Emulator::start("gcp_kms.py", &[]);
    let private_pem = run_ok(Command::new("openssl").args([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]));
    let public_pem = openssl_stdin(&["pkey", "-pubout"], &private_pem);
    emulator.admin(
        "setup",
        json!({
            "serviceAccounts": [{"clientEmail": "appliance@ironseal-test.iam.gserviceaccount.com", "publicKeyPem": public_pem}],
            "keyRings": [GCP_RING],
        }),
    );
    let key_file = json!({
        "type": "service_account",
        "project_id": "ironseal-test",
        "private_key_id": "0123456789abcdef",
        "private_key": private_pem,
        "client_email": "appliance@ironseal-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": format!("{}/token", emulator.url()),
    });
    Gcp { emulator, key_file }
}

impl Gcp {
    pub fn export(&self, key_name: &str) -> Value {
        json!({
            "provider": "GcpKms",
            "providerMetadata": {
                "projectId": "ironseal-test",
                "location": "europe-west1",
                "keyRing": "appliance",
                "keyName": key_name,
                "endpoint": self.emulator.url(),
            },
            "credentials": {"serviceAccountJson": self.key_file.to_string()},
        })
    }

    /// A line of the service account's private key: what must appear in no audit line.
    pub fn secret(&self) -> String {
        let pem = self.key_file["private_key"].as_str().unwrap_or_default();
        pem.lines().nth(1).unwrap_or_default().to_string()
    }

    /// The versions GCP's emulator holds of crypto key `name`.
    pub fn versions(&self, name: &str) -> Vec<Value> {
        let state = self.emulator.state();
        state["cryptoKeys"][format!("{GCP_RING}/cryptoKeys/{name}")]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Scaleway's emulator knowing the API secret [`scaleway_export`] sends.
pub fn scaleway() -> Emulator {
    let emulator = Emulator::start("scaleway_kms.py", &[]);
    emulator.admin("setup", json!({"secretKeys": [SECRET]}));
    emulator
}

pub const SCALEWAY_PROJECT: &str = "6170692e-7363-616c-6577-61792e636f6d";

pub fn scaleway_export(emulator: &Emulator, key_name: &str) -> Value {
    json!({
        "provider": "ScalewayKms",
        "providerMetadata": {
            "projectId": SCALEWAY_PROJECT,
            "region": "fr-par",
            "keyName": key_name,
            "endpoint": emulator.url(),
        },
        "credentials": {"accessKey": "SCWXXXXXXXXXXXXXXXXX", "secretKey": SECRET},
    })
}

pub fn aws_export(endpoint: &str, alias: &str) -> Value {
    json!({
        "provider": "AwsKms",
        "providerMetadata": {"region": crate::localstack::REGION, "endpoint": endpoint, "alias": alias},
        "credentials": {
            "accessKeyId": crate::localstack::ACCESS_KEY_ID,
            "secretAccessKey": SECRET,
        },
    })
}

/// Export `export_id` of key `key_id` as `GET .../cloud-exports` lists it.
pub fn export_record(d: &Daemon, token: &str, key_id: &str, export_id: &str) -> Value {
    d.kms_cloud_exports(token, key_id)
        .into_iter()
        .find(|r| r["id"] == export_id)
        .unwrap_or_else(|| panic!("export {export_id} is not listed"))
}

/// Polls the export until `done` holds for its record; the record.
pub fn wait_export(
    d: &Daemon,
    token: &str,
    key_id: &str,
    export_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let record = export_record(d, token, key_id, export_id);
        if done(&record) {
            return record;
        }
        assert!(
            start.elapsed() < SYNC_DEADLINE,
            "timed out after {SYNC_DEADLINE:?} waiting for {what}; the record: {record}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Where the provider holds the export's last synced version: `(providerKeyId,
/// providerKeyVersion)` (Scaleway has no versions: a new key per appliance version).
pub fn provider_ref(record: &Value) -> (Value, Value) {
    (
        record["providerKeyId"].clone(),
        record["providerKeyVersion"].clone(),
    )
}

/// Waits until the export is in sync (`OK`, no error) at another provider-side key or
/// version than `previous` had; the record.
pub fn wait_synced_past(d: &Daemon, token: &str, key_id: &str, previous: &Value) -> Value {
    let export_id = previous["id"].as_str().expect("an export id");
    let before = provider_ref(previous);
    wait_export(
        d,
        token,
        key_id,
        export_id,
        &format!("export {export_id} to sync past {before:?}"),
        |r| r["syncState"] == "OK" && r["lastSyncError"].is_null() && provider_ref(r) != before,
    )
}

/// The `cloud-export-sync` events of the audit file at `path`, oldest first.
pub fn sync_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "cloud-export-sync")
        .map(|e| e["data"].clone())
        .collect()
}

/// Enables a file audit device at `<daemon dir>/audit.log`; its path.
pub fn enable_audit(d: &Daemon) -> std::path::PathBuf {
    let audit = d.dir().join("audit.log");
    d.bao(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", audit.display()),
    ])
    .ok();
    audit
}

/// Two public keys (PEM) are the same key, compared as DER by Python's `cryptography`.
pub fn assert_same_public_key(appliance_pem: &str, provider_pem: &str, what: &str) {
    let script = "import sys\n\
from cryptography.hazmat.primitives import serialization as s\n\
der = lambda p: s.load_pem_public_key(p.encode()).public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)\n\
print('same' if der(sys.argv[1]) == der(sys.argv[2]) else 'different')\n";
    let out = run_ok(
        Command::new(python())
            .args(["-c", script])
            .arg(appliance_pem)
            .arg(provider_pem),
    );
    assert_eq!(
        out.trim(),
        "same",
        "{what}: the provider holds another key than the appliance's\nappliance: {appliance_pem}\nprovider: {provider_pem}"
    );
}

/// The appliance's public key (PEM) of `version` of key `key_id`.
pub fn appliance_public_pem(d: &Daemon, token: &str, key_id: &str, version: u64) -> String {
    let key = d.kms("GET", &format!("keys/{key_id}"), token, None).ok();
    key["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"] == version)
        .and_then(|v| v["publicKeyPem"].as_str())
        .unwrap_or_else(|| panic!("no public key for version {version} in {key}"))
        .to_string()
}

/// The plaintext of an appliance AES-256-GCM ciphertext (`iv(12) || ct || tag`, base64)
/// under raw `key_hex`, decrypted by Python's `cryptography`; None when it does not open.
pub fn aes_gcm_open(key_hex: &str, ciphertext_b64: &str) -> Option<Vec<u8>> {
    let script = "import sys, base64\n\
from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n\
blob = base64.b64decode(sys.argv[2])\n\
try:\n    print(AESGCM(bytes.fromhex(sys.argv[1])).decrypt(blob[:12], blob[12:], None).hex())\n\
except Exception as e:\n    print('FAILED', type(e).__name__)\n";
    let out = run_ok(
        Command::new(python())
            .args(["-c", script])
            .arg(key_hex)
            .arg(ciphertext_b64),
    );
    hex::decode(out.trim()).ok()
}

fn openssl_stdin(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("openssl stdin");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
