//! The HSM token lost under a serving appliance: SoftHSM2's token directory moved away
//! while the daemon holds its sessions (see [`SoftHsm::unplug`]). Requests that need the
//! token fail with 503 naming the HSM, leave no partial key behind, and requests that do
//! not need it keep working: the keyring is already open in memory, so the appliance
//! stays unsealed rather than sealing itself, and nothing the HSM guards is served without
//! it. When the token is back, the daemon reinitialises the module and logs in again by
//! itself, without a restart.
//!
//! Ironseal's seals and key API: OpenBao has no SoftHSM2 set up here, so in reference mode
//! the test returns at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use softhsm_tests::hardware::SoftHsm;
use softhsm_tests::kms_client::KmsReply;
use softhsm_tests::{poll_until, reference_mode, Daemon};

const DEADLINE: Duration = Duration::from_secs(60);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Asserts the answer of a request that needed the lost token: 503, the HSM named, none
/// of the device's own words.
#[track_caller]
fn assert_hsm_unavailable(r: KmsReply) {
    let body = r.problem(503, "HSM_UNAVAILABLE");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("hsm"), "{body}");
    assert!(!detail.contains("internal error"), "{body}");
    assert!(!detail.contains("CKR_"), "{body}");
}

/// The names of the managed keys, sorted.
fn key_names(d: &Daemon, token: &str) -> Vec<String> {
    let list = d.kms("GET", "keys", token, None).ok();
    let mut names: Vec<String> = list["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no key list: {list}"))
        .iter()
        .map(|k| k["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn key(d: &Daemon, token: &str, id: &str) -> Value {
    d.kms("GET", &format!("keys/{id}"), token, None).ok()
}

#[test]
fn hsm_token_lost_mid_run_fails_closed_and_recovers_without_a_restart() {
    if reference_mode() {
        return;
    }
    let hsm = SoftHsm::new("session-loss");
    let (d, _recovery) = hsm.unsealed_daemon(1, 1);
    let root = d.token.clone().unwrap();
    d.ensure_secret_kv2();
    d.kv_put_value("app/before", "written-before-the-fault");
    let steady = d.kms_create_key(&root, "steady", "EC_P256");
    let id = steady["id"].as_str().unwrap().to_string();
    let msg = b"signed across an HSM fault";
    d.kms_sign(&root, &id, msg, None).ok();
    let pid = d.pid();

    // Signing keeps going from another thread through the loss, the reconnect and after:
    // every answer is a signature or the 503 naming the HSM (a hang would end in the
    // daemon's request timeout, another 503).
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let signer = scope.spawn(|| {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(d.kms_sign(&root, &id, msg, None));
            }
            answers
        });
        lost_and_back(&hsm, &d, &root, &id, msg);
        stop.store(true, Ordering::Relaxed);
        let answers = signer.join().expect("the signing thread");
        assert!(!answers.is_empty());
        for r in answers {
            if r.status != 200 {
                assert_hsm_unavailable(r);
            }
        }
    });
    assert_eq!(d.pid(), pid, "the daemon was restarted");

    let logs = d.logs();
    assert!(logs.contains("HSM session restored"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    d.assert_logs_hold_no_registered_secret();
}

/// The token taken away and put back under `d`, which serves managed key `id`.
fn lost_and_back(hsm: &SoftHsm, d: &Daemon, root: &str, id: &str, msg: &[u8]) {
    hsm.unplug();

    // Creating a key needs the token (generation and the wrap under the root key).
    assert_hsm_unavailable(d.kms(
        "POST",
        "keys",
        root,
        Some(json!({"name": "during", "algorithm": "EC_P256"})),
    ));
    // So does a rotation, which must leave the key as it was.
    assert_hsm_unavailable(d.kms("POST", &format!("keys/{id}/rotate"), root, None));
    let after_rotate = key(d, root, id);
    assert_eq!(after_rotate["primaryVersion"], 1, "{after_rotate}");
    assert_eq!(
        after_rotate["versions"].as_array().map(Vec::len),
        Some(1),
        "{after_rotate}"
    );
    assert_eq!(key_names(d, root), ["steady"], "a failed create left a key");
    // A key already unwrapped into a session object of the token may still sign (the
    // object lives in the module's memory); if not, the answer is the same 503.
    let signed = d.kms_sign(root, id, msg, None);
    if signed.status != 200 {
        assert_hsm_unavailable(signed);
    }

    // What the token does not guard keeps working: the keyring is open in memory.
    assert_eq!(d.seal_status()["sealed"], false);
    assert_eq!(d.kv_get_value("app/before"), "written-before-the-fault");
    d.kv_put_value("app/during", "written-during-the-fault");
    assert_eq!(d.kv_get_value("app/during"), "written-during-the-fault");

    hsm.plug_back();

    // The next request that needs the token reconnects; until it manages, 503.
    let created = poll_until(DEADLINE, "a key create to work again", || {
        let r = d.kms(
            "POST",
            "keys",
            root,
            Some(json!({"name": "after", "algorithm": "EC_P256"})),
        );
        if r.status == 503 {
            assert_hsm_unavailable(r);
            return None;
        }
        Some(r.ok())
    });
    assert_eq!(created["protection"], "HSM", "{created}");
    let rotated = d.kms("POST", &format!("keys/{id}/rotate"), root, None).ok();
    assert_eq!(rotated["primaryVersion"], 2, "{rotated}");
    for version in [1, 2] {
        let r = d.kms_sign(root, id, msg, Some(version)).ok();
        assert_eq!(r["version"], version, "{r}");
        assert!(
            B64.decode(r["signature"].as_str().unwrap_or_default())
                .is_ok_and(|s| !s.is_empty()),
            "{r}"
        );
    }
    let after = created["id"].as_str().unwrap();
    d.kms_sign(root, after, msg, None).ok();
    assert_eq!(key_names(d, root), ["after", "steady"]);
}
