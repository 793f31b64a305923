//! The seal lifecycle with a hardware seal, against a fake device that can be switched
//! off: recovery keys at init, auto-unseal with retries and a reported error, manual
//! seal + recovery-key unseal, and migration shamir -> hardware -> shamir.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::storage::{MemoryBackend, Storage};
use crate::{Core, InitRequest, Migration, Seals, UnsealStep};
use hsm_bridge::{BridgeError, OpenMode, RootOfTrust, SealDevice, SealKind, ShamirRoot};
use zeroize::Zeroizing;

/// A "device" holding a software key; `up` switches it on and off.
struct FakeDevice {
    up: AtomicBool,
    key: Arc<ShamirRoot>,
}

struct FakeRoot(Arc<ShamirRoot>);

impl RootOfTrust for FakeRoot {
    fn kind(&self) -> SealKind {
        SealKind::Pkcs11
    }
    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
        self.0.wrap(aad, plaintext)
    }
    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        self.0
            .unwrap(aad, blob)
            .map_err(|_| BridgeError::ForeignKeyring(SealKind::Pkcs11))
    }
}

impl SealDevice for FakeDevice {
    fn kind(&self) -> SealKind {
        SealKind::Pkcs11
    }
    fn open(&self, _mode: OpenMode) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(BridgeError::Unavailable {
                kind: SealKind::Pkcs11,
                message: "the fake HSM is switched off".into(),
            });
        }
        Ok(Arc::new(FakeRoot(self.key.clone())))
    }
    fn describe(&self) -> String {
        "fake".into()
    }
}

fn fake() -> Arc<FakeDevice> {
    let (key, _) = ShamirRoot::generate(1, 1).unwrap();
    Arc::new(FakeDevice {
        up: AtomicBool::new(true),
        key: Arc::new(key),
    })
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn request(shares: u8, threshold: u8) -> InitRequest {
    InitRequest {
        secret_shares: 0,
        secret_threshold: 0,
        recovery_shares: shares,
        recovery_threshold: threshold,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_init_auto_unseals_and_retries_while_the_device_is_away() {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let dev = fake();
    let seals = Seals {
        device: Some(dev.clone()),
        previous: None,
    };
    let core = Core::with_seals(storage.clone(), seals.clone());
    let init = core.init_with(request(3, 2)).await.unwrap();
    assert!(init.keys.is_empty());
    assert_eq!(init.recovery_keys.len(), 3);
    let s = core.seal_status().unwrap();
    assert!(!s.sealed);
    assert_eq!(
        (s.kind.as_str(), s.recovery_seal, s.t, s.n),
        ("pkcs11", true, 2, 3)
    );

    // "Restart" with the device away: sealed, the error is reported, then it recovers.
    dev.up.store(false, Ordering::SeqCst);
    let core = Core::with_seals(storage.clone(), seals.clone());
    let task = tokio::spawn(core.clone().run_auto_unseal());
    wait_for("the seal error", || {
        let s = core.seal_status_detailed().unwrap();
        s.seal_error.as_deref() == Some("hsm_unreachable")
            && s.seal_error_detail
                .is_some_and(|d| d.message.contains("switched off"))
    })
    .await;
    assert!(core.is_sealed());
    dev.up.store(true, Ordering::SeqCst);
    wait_for("auto-unseal", || !core.is_sealed()).await;
    assert!(core.seal_status().unwrap().seal_error.is_none());

    // A manual seal is not undone by the loop; recovery keys unseal it.
    core.seal().await;
    assert!(core.is_sealed());
    core.unseal(UnsealStep::Share(init.recovery_keys[0].clone()))
        .await
        .unwrap();
    let s = core
        .unseal(UnsealStep::Share(init.recovery_keys[2].clone()))
        .await
        .unwrap();
    assert!(!s.sealed);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shamir_to_hardware_and_back() {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let shamir = Core::new(storage.clone());
    let init = shamir.init(3, 2).await.unwrap();
    shamir
        .unseal(UnsealStep::Share(init.keys[0].clone()))
        .await
        .unwrap();
    shamir
        .unseal(UnsealStep::Share(init.keys[1].clone()))
        .await
        .unwrap();
    let term = shamir.key_status().unwrap().term;
    shamir.shutdown().await;

    let dev = fake();
    let to_hw = Core::with_seals(
        storage.clone(),
        Seals {
            device: Some(dev.clone()),
            previous: None,
        },
    );
    assert!(to_hw.seal_status().unwrap().migration);
    assert!(to_hw
        .unseal(UnsealStep::Share(init.keys[0].clone()))
        .await
        .is_err());
    to_hw
        .unseal_with(UnsealStep::Share(init.keys[0].clone()), Migration::Migrate)
        .await
        .unwrap();
    let s = to_hw
        .unseal_with(UnsealStep::Share(init.keys[2].clone()), Migration::Migrate)
        .await
        .unwrap();
    assert!(!s.sealed);
    assert_eq!(s.kind, "pkcs11");
    assert_eq!(to_hw.key_status().unwrap().term, term);
    to_hw.shutdown().await;

    // A Shamir config without the old seal block says what is missing.
    let lost = Core::new(storage.clone());
    let status = lost.seal_status().unwrap();
    assert_eq!(status.seal_error.as_deref(), Some("seal_config_mismatch"));
    let detail = lost.seal_status_detailed().unwrap().seal_error_detail;
    let err = detail.map(|d| d.message).unwrap_or_default();
    assert!(err.contains("no seal \"pkcs11\" block"), "{err}");
    assert!(lost
        .unseal(UnsealStep::Share(init.keys[0].clone()))
        .await
        .is_err());

    let back = Core::with_seals(
        storage.clone(),
        Seals {
            device: None,
            previous: Some(dev.clone()),
        },
    );
    assert!(back.seal_status().unwrap().migration);
    back.unseal_with(UnsealStep::Share(init.keys[1].clone()), Migration::Migrate)
        .await
        .unwrap();
    let s = back
        .unseal_with(UnsealStep::Share(init.keys[2].clone()), Migration::Migrate)
        .await
        .unwrap();
    assert!(!s.sealed);
    assert_eq!(s.kind, "shamir");
    back.shutdown().await;

    // Plain Shamir: the original unseal keys open it.
    let plain = Core::new(storage);
    plain
        .unseal(UnsealStep::Share(init.keys[0].clone()))
        .await
        .unwrap();
    assert!(
        !plain
            .unseal(UnsealStep::Share(init.keys[1].clone()))
            .await
            .unwrap()
            .sealed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_nodes_migrating_to_the_hardware_seal_at_once_one_switches_and_the_other_is_refused()
{
    let keyspace = crate::storage::shared_memory::SharedKeyspace::new();
    let first = Core::new(Storage::new(keyspace.node()));
    let init = first.init(1, 1).await.unwrap();
    first.shutdown().await;
    let seals = Seals {
        device: Some(fake()),
        previous: None,
    };
    let a = Core::with_seals(Storage::new(keyspace.node()), seals.clone());
    let b = Core::with_seals(Storage::new(keyspace.node()), seals);
    let share = || UnsealStep::Share(init.keys[0].clone());
    let (ra, rb) = tokio::join!(
        a.unseal_with(share(), Migration::Migrate),
        b.unseal_with(share(), Migration::Migrate),
    );
    let (winner, loser, refusal) = match (ra, rb) {
        (Ok(s), Err(e)) => (s, &b, e),
        (Err(e), Ok(s)) => (s, &a, e),
        (ra, rb) => panic!(
            "expected one migration: {:?} / {:?}",
            ra.map(|_| ()),
            rb.map(|_| ())
        ),
    };
    assert!(!winner.sealed);
    assert_eq!(winner.kind, "pkcs11");
    // Told the seal changed under it (or, had the switch landed before it began, that
    // the unseal keys no longer open the keyring), and left sealed.
    assert!(
        matches!(
            &refusal,
            crate::EngineError::Conflict(_) | crate::EngineError::BadRequest(_)
        ),
        "{refusal}"
    );
    assert!(loser.is_sealed());
    // The loser finds the keyspace migrated: no migration pending, the hardware seal
    // opens it.
    assert!(!loser.seal_status().unwrap().migration);
    let task = tokio::spawn(loser.clone().run_auto_unseal());
    wait_for("the loser to auto-unseal", || !loser.is_sealed()).await;
    task.abort();
    for node in [&a, &b] {
        node.tokens.lookup(&init.root_token).unwrap();
    }
}
