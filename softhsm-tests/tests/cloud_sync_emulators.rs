//! Cloud export and auto-sync to Azure Key Vault, GCP Cloud KMS and Scaleway Key Manager
//! through a real daemon (dev mode, Shamir seal, software keys), against the emulators of
//! `softhsm-tests/emulators/`, which unwrap what they receive with Python's
//! `cryptography`: the private key that arrived has the appliance's public key, AES
//! material opens what the appliance encrypted, and a rotation with auto-sync on adds a
//! provider version. Then each provider's refusals (a missing permission, expired
//! credentials): the rotation succeeds, the record carries the provider's text, and a
//! manual sync once fixed clears it; every sync is audited, no credential in clear.
//!
//! `/api/v1` is Ironseal's own: in reference mode (`IRONSEAL_REFERENCE=openbao`) these
//! tests return at once.

use serde_json::{json, Value};
use softhsm_tests::cloud_sync::{
    aes_gcm_open, appliance_public_pem, assert_same_public_key, azure, azure_export,
    azure_versions, enable_audit, export_record, gcp, provider_ref, scaleway, scaleway_export,
    sync_events, wait_export, wait_synced_past, SCALEWAY_PROJECT, SECRET,
};
use softhsm_tests::emulators::Emulator;
use softhsm_tests::{reference_mode, Daemon};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// An exportable key and its export with auto-sync on, answered 201 (the emulators are
/// quick); the key and the record.
fn exported(d: &Daemon, root: &str, name: &str, algorithm: &str, export: Value) -> (Value, Value) {
    let flags = if algorithm == "AES_256" {
        json!({"exportable": true, "allowUnwrappedExport": true})
    } else {
        json!({"exportable": true})
    };
    let key = d.kms_create_key_with(root, name, algorithm, flags).ok();
    let mut body = export;
    body["autoSyncEnabled"] = true.into();
    let r = d.kms_cloud_export(root, id(&key), body);
    assert_eq!(r.status, 201, "{r}");
    let record = r.ok();
    assert_eq!(record["syncState"], "OK", "{record}");
    assert!(record["lastSyncError"].is_null(), "{record}");
    assert!(record["lastSyncAt"].is_string(), "{record}");
    (key, record)
}

fn rotate(d: &Daemon, root: &str, key: &Value) {
    d.kms("POST", &format!("keys/{}/rotate", id(key)), root, None)
        .ok();
}

#[test]
fn azure_receives_rsa_and_ec_keys_and_each_rotation() {
    if reference_mode() {
        return;
    }
    let vault = azure();
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    for (name, algorithm) in [("rsa-out", "RSA_2048"), ("ec-out", "EC_P256")] {
        let (key, first) = exported(&d, &root, name, algorithm, azure_export(&vault, name));
        let versions = azure_versions(&vault, name);
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert_same_public_key(
            &appliance_public_pem(&d, &root, id(&key), 1),
            versions[0]["publicKeyPem"].as_str().unwrap(),
            name,
        );
        assert_eq!(versions[0]["tags"]["ironseal-key-version"], "1");

        rotate(&d, &root, &key);
        let second = wait_synced_past(&d, &root, id(&key), &first);
        let versions = azure_versions(&vault, name);
        assert_eq!(versions.len(), 2, "{versions:?}");
        assert_same_public_key(
            &appliance_public_pem(&d, &root, id(&key), 2),
            versions[1]["publicKeyPem"].as_str().unwrap(),
            name,
        );
        assert_eq!(versions[1]["tags"]["ironseal-key-version"], "2");
        assert_eq!(versions[1]["tags"]["ironseal-key-id"], id(&key));
        assert!(
            versions[1]["kid"]
                .as_str()
                .unwrap()
                .ends_with(second["providerKeyVersion"].as_str().unwrap()),
            "{second} vs {versions:?}"
        );
    }
}

#[test]
fn gcp_receives_rsa_keys_and_each_rotation() {
    if reference_mode() {
        return;
    }
    let gcp = gcp();
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let (key, first) = exported(&d, &root, "rsa-out", "RSA_2048", gcp.export("rsa-out"));
    let versions = gcp.versions("rsa-out");
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["state"], "ENABLED", "{versions:?}");
    assert_same_public_key(
        &appliance_public_pem(&d, &root, id(&key), 1),
        versions[0]["publicKeyPem"].as_str().unwrap(),
        "GCP version 1",
    );

    rotate(&d, &root, &key);
    let second = wait_synced_past(&d, &root, id(&key), &first);
    let versions = gcp.versions("rsa-out");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_same_public_key(
        &appliance_public_pem(&d, &root, id(&key), 2),
        versions[1]["publicKeyPem"].as_str().unwrap(),
        "GCP version 2",
    );
    assert!(
        versions[1]["name"]
            .as_str()
            .unwrap()
            .ends_with(second["providerKeyVersion"].as_str().unwrap()),
        "{second} vs {versions:?}"
    );

    // GCP imports RSA keys only: an EC key is refused before anything is kept.
    let ec = d
        .kms_create_key_with(&root, "ec-out", "EC_P256", json!({"exportable": true}))
        .ok();
    d.kms_cloud_export(&root, id(&ec), gcp.export("ec-out"))
        .problem(400, "ALGORITHM_NOT_EXPORTABLE");
    assert!(d.kms_cloud_exports(&root, id(&ec)).is_empty());
}

/// The Scaleway keys the emulator holds for appliance key `key_id`, by appliance version.
fn scaleway_keys(emulator: &Emulator, key_id: &str) -> Vec<Value> {
    let state = emulator.state();
    let mut keys: Vec<Value> = state["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| {
            k["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t == &json!(format!("ironseal-key-id={key_id}")))
            })
        })
        .cloned()
        .collect();
    keys.sort_by_key(|k| k["name"].as_str().unwrap_or("").to_string());
    keys
}

/// Encrypts with the appliance and decrypts with the material Scaleway received.
fn opens_with(d: &Daemon, root: &str, key: &Value, material_hex: &str) -> bool {
    let plaintext = b"encrypted by the appliance, opened with what Scaleway received";
    let ct = d.kms_encrypt(root, id(key), plaintext).ok();
    aes_gcm_open(material_hex, ct["ciphertext"].as_str().unwrap()).as_deref()
        == Some(plaintext.as_slice())
}

#[test]
fn scaleway_receives_aes_material_that_opens_the_appliance_s_ciphertext() {
    if reference_mode() {
        return;
    }
    let scw = scaleway();
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let (key, first) = exported(
        &d,
        &root,
        "aes-out",
        "AES_256",
        scaleway_export(&scw, "aes-out"),
    );
    let keys = scaleway_keys(&scw, id(&key));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["state"], "enabled", "{keys:?}");
    assert_eq!(keys[0]["project_id"], SCALEWAY_PROJECT);
    assert_eq!(keys[0]["materialLength"], 32, "{keys:?}");
    let v1 = keys[0]["materialHex"].as_str().unwrap().to_string();
    assert!(opens_with(&d, &root, &key, &v1));

    rotate(&d, &root, &key);
    let second = wait_synced_past(&d, &root, id(&key), &first);
    let keys = scaleway_keys(&scw, id(&key));
    assert_eq!(keys.len(), 2, "{keys:?}");
    let newest = keys
        .iter()
        .find(|k| k["id"] == second["providerKeyId"])
        .unwrap_or_else(|| panic!("{second} vs {keys:?}"));
    let v2 = newest["materialHex"].as_str().unwrap();
    assert_ne!(v1, v2);
    // The appliance now encrypts with version 2: Scaleway's new key opens it, not the old.
    assert!(opens_with(&d, &root, &key, v2));
    assert!(!opens_with(&d, &root, &key, &v1));

    // An RSA key is not Scaleway's to import: refused with the reason, nothing kept.
    let rsa = d
        .kms_create_key_with(&root, "rsa-out", "RSA_2048", json!({"exportable": true}))
        .ok();
    d.kms_cloud_export(&root, id(&rsa), scaleway_export(&scw, "rsa-out"))
        .problem(400, "ALGORITHM_NOT_EXPORTABLE");
    assert!(d.kms_cloud_exports(&root, id(&rsa)).is_empty());
}

/// One provider's refusals: `deny` during an automatic sync, `expired` during a manual
/// one, then a manual sync once fixed; what the record and the audit log show.
fn refusals_are_recorded_and_cleared(
    provider: &str,
    emulator: &Emulator,
    algorithm: &str,
    export: Value,
    denied: &str,
    expired: &str,
    secret: &str,
) {
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let audit = enable_audit(&d);
    let (key, first) = exported(&d, &root, "refused", algorithm, export);
    let key_id = id(&key);
    let export_id = id(&first);
    let sync_path = format!("keys/{key_id}/cloud-exports/{export_id}/sync");

    emulator.fault("deny");
    rotate(&d, &root, &key);
    let failed = wait_export(&d, &root, key_id, export_id, "the denied sync", |r| {
        r["syncState"] == "FAILED"
    });
    assert!(
        failed["lastSyncError"]
            .as_str()
            .unwrap_or("")
            .contains(denied),
        "{provider}: {failed}"
    );
    assert_eq!(failed["lastSyncAt"], first["lastSyncAt"], "{failed}");
    assert_eq!(provider_ref(&failed), provider_ref(&first), "{failed}");
    let key_now = d.kms("GET", &format!("keys/{key_id}"), &root, None).ok();
    assert_eq!(
        key_now["primaryVersion"], 2,
        "the rotation stands: {key_now}"
    );

    emulator.fault("expired");
    let p = d
        .kms("POST", &sync_path, &root, None)
        .problem(502, "PROVIDER_ERROR");
    assert!(
        p["detail"].as_str().unwrap().contains(expired),
        "{provider}: {p}"
    );
    let record = export_record(&d, &root, key_id, export_id);
    assert_eq!(record["syncState"], "FAILED", "{record}");
    assert!(
        record["lastSyncError"]
            .as_str()
            .unwrap_or("")
            .contains(expired),
        "{record}"
    );
    assert_eq!(record["lastSyncAt"], first["lastSyncAt"], "{record}");

    emulator.fault("none");
    let fixed = d.kms("POST", &sync_path, &root, None).ok();
    assert_eq!(fixed["syncState"], "OK", "{fixed}");
    assert!(fixed["lastSyncError"].is_null(), "{fixed}");
    assert_ne!(fixed["lastSyncAt"], first["lastSyncAt"], "{fixed}");
    assert_ne!(provider_ref(&fixed), provider_ref(&first), "{fixed}");
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
        events.iter().all(|e| e["provider"] == provider),
        "{events:?}"
    );
    assert!(events[1]["error"].as_str().unwrap_or("").contains(denied));
    assert!(events[2]["error"].as_str().unwrap_or("").contains(expired));
    let versions: Vec<&Value> = events.iter().map(|e| &e["version"]).collect();
    assert_eq!(versions, [&json!(1), &json!(2), &json!(2), &json!(2)]);
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(secret.len() >= 16, "{secret:?}");
    assert!(
        !log.contains(secret),
        "{provider}: a credential in the audit log"
    );
}

#[test]
fn azure_refusals_leave_the_rotation_and_a_manual_sync_clears_them() {
    if reference_mode() {
        return;
    }
    let vault = azure();
    refusals_are_recorded_and_cleared(
        "AzureKeyVault",
        &vault,
        "EC_P256",
        azure_export(&vault, "refused"),
        "Caller is not authorized to perform action on resource",
        "AADSTS7000222",
        SECRET,
    );
}

#[test]
fn gcp_refusals_leave_the_rotation_and_a_manual_sync_clears_them() {
    if reference_mode() {
        return;
    }
    let gcp = gcp();
    refusals_are_recorded_and_cleared(
        "GcpKms",
        &gcp.emulator,
        "RSA_2048",
        gcp.export("refused"),
        "PERMISSION_DENIED",
        "Invalid JWT Signature",
        &gcp.secret(),
    );
}

#[test]
fn scaleway_refusals_leave_the_rotation_and_a_manual_sync_clears_them() {
    if reference_mode() {
        return;
    }
    let scw = scaleway();
    refusals_are_recorded_and_cleared(
        "ScalewayKms",
        &scw,
        "AES_256",
        scaleway_export(&scw, "refused"),
        "insufficient permissions",
        "expired",
        SECRET,
    );
}

/// Deleting an export deletes the credentials it saved: its `vaultSecretId` names
/// nothing afterwards.
#[test]
fn deleting_an_export_deletes_its_saved_credentials() {
    if reference_mode() {
        return;
    }
    let scw = scaleway();
    let d = Daemon::dev(&[]);
    let root = d.token.clone().unwrap();
    let (key, record) = exported(
        &d,
        &root,
        "aes-out",
        "AES_256",
        scaleway_export(&scw, "aes-out"),
    );
    let secret_id = record["vaultSecretId"].as_str().unwrap().to_string();
    let mut reuse = scaleway_export(&scw, "aes-again");
    reuse.as_object_mut().unwrap().remove("credentials");
    reuse["vaultSecretId"] = secret_id.clone().into();
    let r = d.kms(
        "DELETE",
        &format!("keys/{}/cloud-exports/{}", id(&key), id(&record)),
        &root,
        None,
    );
    assert_eq!(r.status, 204, "{r}");
    assert!(d.kms_cloud_exports(&root, id(&key)).is_empty());
    let p = d
        .kms_cloud_export(&root, id(&key), reuse)
        .problem(400, "INVALID_FIELD");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains(&secret_id) && detail.contains("no saved credentials"),
        "{p}"
    );
}
