//! Cloud export and auto-sync to AWS KMS through a real daemon (dev mode, Shamir seal,
//! software keys), against LocalStack started by the test. What arrived is checked with
//! boto3 and Python's `cryptography`, not with the product's code: `GetPublicKey` is the
//! appliance's public key, a LocalStack `Sign` verifies under it, and after a rotation
//! with auto-sync on the same holds for version 2, with the alias on the new key.
//!
//! Failures go through `aws_fault_proxy.py` in front of LocalStack, which answers as AWS
//! does without the permission or with expired credentials (LocalStack never refuses).
//!
//! `/api/v1` is Ironseal's own: in reference mode (`IRONSEAL_REFERENCE=openbao`) these
//! tests return at once.

use std::process::Command;

use serde_json::{json, Value};
use softhsm_tests::cloud_sync::{
    appliance_public_pem, aws_export, enable_audit, export_record, sync_events, wait_export,
    wait_synced_past, SECRET,
};
use softhsm_tests::emulators::Emulator;
use softhsm_tests::localstack::{localstack_python, LocalStack, ACCESS_KEY_ID, REGION};
use softhsm_tests::tools::run_ok;
use softhsm_tests::{reference_mode, Daemon};

/// Asks LocalStack for `key`'s public key and a signature by it, and checks both against
/// the appliance's public key with `cryptography`; answers what `alias` points at.
const PROVE: &str = r#"
import json, sys
import boto3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

endpoint, region, access_key, key, alias, appliance_pem, algorithm = sys.argv[1:8]
kms = boto3.client("kms", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id=access_key, aws_secret_access_key="unused")
mine = serialization.load_pem_public_key(appliance_pem.encode())
theirs = kms.get_public_key(KeyId=key)["PublicKey"]
der = mine.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
assert theirs == der, "GetPublicKey is not the appliance's public key"
message = b"signed by LocalStack with the key the appliance exported"
signature = kms.sign(KeyId=key, Message=message, MessageType="RAW", SigningAlgorithm=algorithm)["Signature"]
if algorithm.startswith("ECDSA"):
    mine.verify(signature, message, ec.ECDSA(hashes.SHA256()))
else:
    mine.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
target = kms.describe_key(KeyId=alias)["KeyMetadata"]
print(json.dumps({"aliasKeyId": target["KeyId"], "aliasArn": target["Arn"]}))
"#;

/// Proves that LocalStack's `key_id` is the appliance's `version` of `key`, and answers
/// the key `alias` points at (its id and ARN).
fn prove(
    localstack: &LocalStack,
    key_id: &str,
    alias: &str,
    appliance_pem: &str,
    algorithm: &str,
) -> Value {
    let out = run_ok(Command::new(localstack_python()).args([
        "-c",
        PROVE,
        &localstack.endpoint(),
        REGION,
        ACCESS_KEY_ID,
        key_id,
        alias,
        appliance_pem,
        algorithm,
    ]));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn points_at(target: &Value, provider_key_id: &str) -> bool {
    target["aliasKeyId"] == provider_key_id || target["aliasArn"] == provider_key_id
}

/// The record of a create that answered 201, or of one that answered 202 once the worker
/// has finished it.
fn created(d: &Daemon, token: &str, key_id: &str, body: Value) -> Value {
    let r = d.kms_cloud_export(token, key_id, body);
    let status = r.status;
    let record = r.ok();
    if status == 201 {
        return record;
    }
    assert_eq!(status, 202, "{record}");
    wait_export(
        d,
        token,
        key_id,
        record["id"].as_str().unwrap(),
        "the initial export",
        |r| r["syncState"] == "OK",
    )
}

#[test]
fn rsa_and_ec_keys_reach_localstack_and_follow_their_rotation() {
    if reference_mode() {
        return;
    }
    let localstack = LocalStack::start();
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let audit = enable_audit(&d);
    for (name, algorithm, signing) in [
        ("rsa-out", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
        ("ec-out", "EC_P256", "ECDSA_SHA_256"),
    ] {
        let key = d
            .kms_create_key_with(&root, name, algorithm, json!({"exportable": true}))
            .ok();
        let key_id = key["id"].as_str().unwrap();
        let alias = format!("alias/ironseal-{name}");
        let mut body = aws_export(&localstack.endpoint(), &alias);
        body["autoSyncEnabled"] = true.into();
        let first = created(&d, &root, key_id, body);
        assert_eq!(first["syncState"], "OK", "{first}");
        assert_eq!(first["providerKeyVersion"], "1", "{first}");
        assert!(first["lastSyncError"].is_null(), "{first}");
        let aws_key = first["providerKeyId"].as_str().unwrap().to_string();
        let target = prove(
            &localstack,
            &aws_key,
            &alias,
            &appliance_public_pem(&d, &root, key_id, 1),
            signing,
        );
        assert!(points_at(&target, &aws_key), "{target} vs {first}");

        d.kms("POST", &format!("keys/{key_id}/rotate"), &root, None)
            .ok();
        let second = wait_synced_past(&d, &root, key_id, &first);
        assert_eq!(second["providerKeyVersion"], "2", "{second}");
        let new_key = second["providerKeyId"].as_str().unwrap().to_string();
        assert_ne!(new_key, aws_key, "each version is its own AWS key");
        let target = prove(
            &localstack,
            &new_key,
            &alias,
            &appliance_public_pem(&d, &root, key_id, 2),
            signing,
        );
        assert!(
            points_at(&target, &new_key),
            "the alias stays on the old key: {target} vs {second}"
        );
        // Version 1's key is still there, still the appliance's version 1.
        prove(
            &localstack,
            &aws_key,
            &alias,
            &appliance_public_pem(&d, &root, key_id, 1),
            signing,
        );
        let events: Vec<Value> = sync_events(&audit)
            .into_iter()
            .filter(|e| e["exportId"] == first["id"])
            .collect();
        assert_eq!(events.len(), 2, "{events:?}");
        for e in &events {
            assert_eq!(
                (&e["provider"], &e["result"]),
                (&json!("AwsKms"), &json!("ok")),
                "{e}"
            );
        }
        assert_eq!(events[1]["version"], 2, "{events:?}");
    }
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(!log.contains(SECRET), "a credential in the audit log");
}

#[test]
fn aws_refusals_leave_the_rotation_and_a_manual_sync_clears_them() {
    if reference_mode() {
        return;
    }
    let localstack = LocalStack::start();
    let proxy = Emulator::start(
        "aws_fault_proxy.py",
        &["--upstream", &localstack.endpoint()],
    );
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let audit = enable_audit(&d);
    let key = d
        .kms_create_key_with(&root, "ec-denied", "EC_P256", json!({"exportable": true}))
        .ok();
    let key_id = key["id"].as_str().unwrap();
    let mut body = aws_export(&proxy.url(), "alias/ironseal-denied");
    body["autoSyncEnabled"] = true.into();
    let first = created(&d, &root, key_id, body);
    let export_id = first["id"].as_str().unwrap();

    proxy.fault("deny");
    d.kms("POST", &format!("keys/{key_id}/rotate"), &root, None)
        .ok();
    let failed = wait_export(&d, &root, key_id, export_id, "the denied sync", |r| {
        r["syncState"] == "FAILED"
    });
    let error = failed["lastSyncError"].as_str().unwrap_or("");
    assert!(
        error.contains("AccessDeniedException") && error.contains("not authorized"),
        "{failed}"
    );
    assert_eq!(failed["lastSyncAt"], first["lastSyncAt"], "{failed}");
    assert_eq!(failed["providerKeyVersion"], "1", "{failed}");

    proxy.fault("expired");
    let p = d
        .kms(
            "POST",
            &format!("keys/{key_id}/cloud-exports/{export_id}/sync"),
            &root,
            None,
        )
        .problem(502, "PROVIDER_ERROR");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("The security token included in the request is expired"),
        "{p}"
    );
    let expired = export_record(&d, &root, key_id, export_id);
    assert_eq!(expired["syncState"], "FAILED", "{expired}");
    assert!(
        expired["lastSyncError"]
            .as_str()
            .unwrap_or("")
            .contains("ExpiredTokenException"),
        "{expired}"
    );
    assert_eq!(expired["lastSyncAt"], first["lastSyncAt"], "{expired}");

    proxy.fault("none");
    let fixed = d
        .kms(
            "POST",
            &format!("keys/{key_id}/cloud-exports/{export_id}/sync"),
            &root,
            None,
        )
        .ok();
    assert_eq!(fixed["syncState"], "OK", "{fixed}");
    assert!(fixed["lastSyncError"].is_null(), "{fixed}");
    assert_eq!(fixed["providerKeyVersion"], "2", "{fixed}");
    assert_ne!(fixed["lastSyncAt"], first["lastSyncAt"], "{fixed}");
    assert_eq!(export_record(&d, &root, key_id, export_id), fixed);

    let events: Vec<Value> = sync_events(&audit)
        .into_iter()
        .filter(|e| e["exportId"] == export_id)
        .collect();
    let results: Vec<&str> = events
        .iter()
        .map(|e| e["result"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(results, ["ok", "error", "error", "ok"], "{events:?}");
    assert!(
        events.iter().all(|e| e["provider"] == "AwsKms"),
        "{events:?}"
    );
    assert!(events[1]["error"]
        .as_str()
        .unwrap_or("")
        .contains("AccessDeniedException"));
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(!log.contains(SECRET), "a credential in the audit log");
}
