//! `kill -9` of the daemon (config mode, Shamir seal, redb storage) while an automatic
//! sync to Azure Key Vault's emulator is owed, while its provider call is in flight, and
//! (a crash point) once the provider answered but before the answer was recorded:
//! after a restart on the same data the sync completes once, and the vault holds exactly
//! one new version, not two. The provider takes no part in the daemon's transaction, so
//! this rests on the import being tagged with the appliance version and looked for first.
//!
//! `/api/v1` is Ironseal's own: in reference mode (`IRONSEAL_REFERENCE=openbao`) these
//! tests return at once.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use softhsm_tests::cloud_sync::{
    azure, azure_export, azure_versions, export_record, wait_export, wait_synced_past,
    SYNC_DEADLINE,
};
use softhsm_tests::crash::restart_after_abort;
use softhsm_tests::emulators::Emulator;
use softhsm_tests::{poll_until, reference_mode, Body, Daemon};

/// How long `GET .../cloud-exports` may take while a provider call hangs: it reads the
/// records only, so this is the machine's load, not the provider's.
const LIST_DEADLINE: Duration = Duration::from_secs(10);

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// An unsealed daemon on disk with an exportable EC key exported to `vault` with
/// auto-sync on; the daemon, the key and the export record.
fn exported_on_disk(vault: &Emulator, name: &str) -> (Daemon, Value, Value) {
    let mut d = Daemon::config(false);
    d.init(1, 1);
    d.unseal();
    let root = d.token.clone().unwrap();
    let key = d
        .kms_create_key_with(&root, name, "EC_P256", json!({"exportable": true}))
        .ok();
    let mut body = azure_export(vault, name);
    body["autoSyncEnabled"] = true.into();
    let r = d.kms_cloud_export(&root, id(&key), body);
    assert_eq!(r.status, 201, "{r}");
    let record = r.ok();
    assert_eq!(record["syncState"], "OK", "{record}");
    (d, key, record)
}

fn restart(d: &mut Daemon) {
    d.kill9();
    d.start();
    d.unseal();
}

/// Version 2's import is the vault's second version of the key, tagged as such, and the
/// record says so.
fn holds_one_new_version(vault: &Emulator, name: &str, record: &Value) {
    let versions = azure_versions(vault, name);
    assert_eq!(versions.len(), 2, "one new version, not two: {versions:?}");
    assert_eq!(versions[1]["tags"]["ironseal-key-version"], "2");
    assert!(
        versions[1]["kid"]
            .as_str()
            .unwrap()
            .ends_with(record["providerKeyVersion"].as_str().unwrap()),
        "{record} vs {versions:?}"
    );
}

/// The daemon dies with version 2's sync owed (its first attempt met a 500 and waits in
/// the outbox); once restarted, the worker takes the job up again.
#[test]
fn a_sync_owed_at_a_crash_completes_once_after_restart() {
    if reference_mode() {
        return;
    }
    let vault = azure();
    let (mut d, key, first) = exported_on_disk(&vault, "owed");
    let root = d.token.clone().unwrap();
    vault.fault("error500");
    d.kms("POST", &format!("keys/{}/rotate", id(&key)), &root, None)
        .ok();
    let pending = wait_export(&d, &root, id(&key), id(&first), "a failed attempt", |r| {
        r["syncState"] == "PENDING" && r["lastSyncError"].is_string()
    });
    assert!(
        pending["lastSyncError"]
            .as_str()
            .unwrap()
            .contains("The service encountered an internal error"),
        "{pending}"
    );

    restart(&mut d);
    vault.fault("none");
    let done = wait_synced_past(&d, &root, id(&key), &first);
    holds_one_new_version(&vault, "owed", &done);
}

/// The daemon dies while the vault holds its import: the listing shows `RUNNING` at once
/// meanwhile; the held import then lands at the vault, and the restarted daemon finds it
/// by its tags instead of importing again.
#[test]
fn a_crash_in_the_middle_of_a_provider_call_leaves_one_version() {
    if reference_mode() {
        return;
    }
    let vault = azure();
    let (mut d, key, first) = exported_on_disk(&vault, "held");
    let root = d.token.clone().unwrap();
    vault.fault("hang");
    d.kms("POST", &format!("keys/{}/rotate", id(&key)), &root, None)
        .ok();
    poll_until(SYNC_DEADLINE, "the vault to hold an import", || {
        (vault.state()["counts"]["held"] == 1).then_some(())
    });
    let asked = Instant::now();
    let running = export_record(&d, &root, id(&key), id(&first));
    assert!(
        asked.elapsed() < LIST_DEADLINE,
        "the listing waited {:?} on a provider call",
        asked.elapsed()
    );
    assert_eq!(running["syncState"], "RUNNING", "{running}");

    d.kill9();
    let imports_before = vault.state()["counts"]["imports"].clone();
    vault.fault("none");
    poll_until(SYNC_DEADLINE, "the held import to land", || {
        (vault.state()["counts"]["imports"] != imports_before).then_some(())
    });
    assert_eq!(azure_versions(&vault, "held").len(), 2);
    d.start();
    d.unseal();
    let done = wait_synced_past(&d, &root, id(&key), &first);
    holds_one_new_version(&vault, "held", &done);
}

/// The daemon dies (its crash point `outbox:called`) right after the vault answered the
/// import of version 2, before the outcome was recorded: the job is still in the outbox,
/// and the restarted daemon finds the import by its tags instead of importing again.
#[test]
fn a_crash_between_the_provider_answer_and_its_record_leaves_one_version() {
    if reference_mode() {
        return;
    }
    let vault = azure();
    let (mut d, key, first) = exported_on_disk(&vault, "answered");
    let root = d.token.clone().unwrap();
    d.kill9();
    d.set_env("IRONSEAL_TEST_CRASH_AT", "outbox:called");
    d.start();
    d.unseal();
    // The worker may take the job up, and the daemon die, before the rotation answers.
    let _ = d.http_with(
        "POST",
        &format!("/api/v1/keys/{}/rotate", id(&key)),
        Body::None,
        &["-H", &format!("X-Vault-Token: {root}")],
    );
    restart_after_abort(&mut d, "outbox:called");
    assert_eq!(azure_versions(&vault, "answered").len(), 2);
    d.unseal();
    let done = wait_synced_past(&d, &root, id(&key), &first);
    holds_one_new_version(&vault, "answered", &done);
}
