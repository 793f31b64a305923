//! An interrupted init can be run again: what its steps left (keyring, token store,
//! policies, a root token nobody received) is discarded and init starts over; data that
//! init does not write is never discarded, init refuses instead.

use std::sync::Arc;

use crate::storage::{Batch, MemoryBackend, Storage};
use crate::{Core, UnsealStep};

/// Storage as a killed init leaves it: values at init's paths, sealed by a keyring
/// (and unseal keys) that are gone, and no seal configuration.
async fn leftovers_of_a_killed_init(storage: &Storage) {
    let mut batch = Batch::new();
    for path in [
        "core/keyring",
        "sys/token/salt",
        "sys/token/signing-key",
        "sys/token/id/0123abcd",
        "sys/policy/default",
    ] {
        batch.put(path, b"sealed under the lost keyring".to_vec());
    }
    storage.commit(batch).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_after_an_interrupted_init_starts_over() {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    leftovers_of_a_killed_init(&storage).await;
    let core = Core::new(storage.clone());
    assert!(!core.is_initialized().unwrap());
    let init = core.init(3, 2).await.unwrap();
    core.unseal(UnsealStep::Share(init.keys[0].clone()))
        .await
        .unwrap();
    let s = core
        .unseal(UnsealStep::Share(init.keys[2].clone()))
        .await
        .unwrap();
    assert!(!s.sealed);
    // The new root token works; the stale token entry is gone.
    core.tokens.lookup(&init.root_token).unwrap();
    assert!(storage.get("sys/token/id/0123abcd").unwrap().is_none());
    assert!(core.policies.get("default").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_to_run_over_data_it_did_not_write() {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    leftovers_of_a_killed_init(&storage).await;
    let mut batch = Batch::new();
    batch.put("logical/kv/data/x", b"someone's secret".to_vec());
    storage.commit(batch).await.unwrap();
    let core = Core::new(storage.clone());
    let err = core.init(1, 1).await.err().expect("init must refuse");
    assert!(err.to_string().contains("storage holds data"), "{err}");
    // Nothing was discarded.
    assert!(storage.get("logical/kv/data/x").unwrap().is_some());
    assert!(storage.get("core/keyring").unwrap().is_some());
    assert!(!core.is_initialized().unwrap());
}
