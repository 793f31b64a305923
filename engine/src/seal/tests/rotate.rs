//! Key-share rotation inside the engine: the new keys replace the old ones only when the
//! quorum (and, if asked, the verification) is complete, a later keyring rotation keeps
//! the new root key, and sealing forgets an attempt.

use std::sync::Arc;

use crate::rotate::{RotateConfig, RotateTarget, RotateUpdate, VerifyUpdate};
use crate::storage::{MemoryBackend, Storage};
use crate::{Core, UnsealShare, UnsealStep};

fn config(shares: u8, threshold: u8, verify: bool) -> RotateConfig {
    RotateConfig {
        secret_shares: shares,
        secret_threshold: threshold,
        require_verification: verify,
    }
}

async fn unseal_with(core: &Core, keys: &[UnsealShare]) -> bool {
    let mut sealed = true;
    for k in keys {
        match core.unseal(UnsealStep::Share(k.clone())).await {
            Ok(s) => sealed = s.sealed,
            Err(_) => return false,
        }
    }
    !sealed
}

/// An initialised, unsealed core with 5 keys of which 3 unseal.
async fn serving() -> (Arc<Core>, Vec<UnsealShare>) {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let init = core.init(5, 3).await.unwrap();
    assert!(unseal_with(&core, &init.keys[..3]).await);
    (core, init.keys)
}

async fn quorum(core: &Core, nonce: &str, keys: &[UnsealShare]) -> RotateUpdate {
    let mut last = None;
    for k in keys {
        last = Some(
            core.rotation_update(RotateTarget::Root, k.clone(), nonce)
                .await
                .unwrap(),
        );
    }
    last.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_survive_a_keyring_rotation_and_the_old_ones_stop_working() {
    let (core, old) = serving().await;
    let status = core
        .rotation_init(RotateTarget::Root, config(3, 2, false))
        .await
        .unwrap();
    let RotateUpdate::Complete(done) = quorum(&core, &status.nonce, &old[1..4]).await else {
        panic!("the quorum did not complete");
    };
    assert_eq!(done.keys.len(), 3);
    // `sys/rotate` rewraps the keyring with the root key the core holds: the new one.
    core.rotate_keyring().await.unwrap();
    core.seal().await;
    assert!(!unseal_with(&core, &old[..3]).await);
    assert!(unseal_with(&core, &done.keys[1..]).await);
    let config = core.seal_config().unwrap().unwrap();
    assert_eq!((config.secret_shares, config.secret_threshold), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_holds_the_new_keys_back_and_sealing_forgets_the_attempt() {
    let (core, old) = serving().await;
    let status = core
        .rotation_init(RotateTarget::Root, config(2, 2, true))
        .await
        .unwrap();
    let RotateUpdate::Complete(done) = quorum(&core, &status.nonce, &old[..3]).await else {
        panic!("the quorum did not complete");
    };
    assert!(done.verification_required);
    // Not in effect yet: sealing forgets the attempt and the old keys still open.
    core.seal().await;
    assert!(unseal_with(&core, &old[2..]).await);
    assert!(!core.rotation_status(RotateTarget::Root).unwrap().started);

    let status = core
        .rotation_init(RotateTarget::Root, config(2, 2, true))
        .await
        .unwrap();
    let RotateUpdate::Complete(done) = quorum(&core, &status.nonce, &old[..3]).await else {
        panic!("the quorum did not complete");
    };
    let mut last = None;
    for k in &done.keys {
        last = Some(
            core.rotation_verify(RotateTarget::Root, k.clone(), &done.verification_nonce)
                .await
                .unwrap(),
        );
    }
    assert!(matches!(last, Some(VerifyUpdate::Complete { .. })));
    core.seal().await;
    assert!(!unseal_with(&core, &old[..3]).await);
    assert!(unseal_with(&core, &done.keys).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_keys_are_refused_with_the_shamir_seal() {
    let (core, _) = serving().await;
    let err = core
        .rotation_init(RotateTarget::Recovery, config(3, 2, false))
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("recovery keys not supported"),
        "{err}"
    );
    let err = core
        .rotation_init(RotateTarget::Root, config(3, 1, false))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("greater than one"), "{err}");
}
