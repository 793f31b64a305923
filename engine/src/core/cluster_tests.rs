//! Two nodes on one keyspace: two cores in this process on a shared in-memory store
//! whose handles raise to each node what the other changed, as a shared backend's watch
//! does. What one node writes, the other honours; what both race for, one wins.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map};
use zeroize::Zeroizing;

use crate::audit::{DeviceConfig, RequestInfo};
use crate::core::{Core, Settings};
use crate::error::EngineError;
use crate::lease::{Acquired, Lease};
use crate::managed_keys::model::{Algorithm, CreateKey as NewManagedKey};
use crate::managed_keys::{KeyError, MIN_PENDING_WINDOW};
use crate::mounts::MountConfig;
use crate::periodic::{PeriodicTask, TaskFuture};
use crate::policy::Operation;
use crate::seal::init::INIT_LEASE_TTL;
use crate::seal::rotate::{RotateConfig, RotateTarget, RotateUpdate};
use crate::storage::foundationdb::tests::model::{Faults, Model};
use crate::storage::foundationdb::FdbStore;
use crate::storage::shared_memory::SharedKeyspace;
use crate::storage::{Backend, Storage};
use crate::token::CreateRequest;
use crate::transit::CreateKey;
use crate::{UnsealShare, UnsealStep};

/// The store both nodes open: the in-memory fixture, which raises a change to the other
/// node before the call that made it returns, or the FoundationDB backend on its model,
/// with retryable errors and unknown commit results injected and changes heard within
/// the watch's poll bound.
#[derive(Clone)]
enum Fabric {
    Memory(Arc<SharedKeyspace>),
    Fdb(Model),
}

impl Fabric {
    fn memory() -> Self {
        Fabric::Memory(SharedKeyspace::new())
    }

    fn fdb(seed: u64) -> Self {
        Fabric::Fdb(Model::new(
            seed,
            Faults {
                retryable: 0.05,
                unknown: 0.05,
            },
        ))
    }

    /// An empty store of the same kind.
    fn fresh(&self) -> Self {
        match self {
            Fabric::Memory(_) => Fabric::memory(),
            Fabric::Fdb(_) => Fabric::fdb(rand::random()),
        }
    }

    fn node(&self) -> Arc<dyn Backend> {
        match self {
            Fabric::Memory(keyspace) => keyspace.node(),
            Fabric::Fdb(model) => Arc::new(FdbStore::new(model.clone(), "cluster")),
        }
    }

    /// Every stored value (on FoundationDB, every chunk).
    fn raw_values(&self) -> Vec<Vec<u8>> {
        match self {
            Fabric::Memory(keyspace) => keyspace.raw_values(),
            Fabric::Fdb(model) => model.dump().into_iter().map(|(_, v)| v).collect(),
        }
    }
}

struct Cluster {
    a: Arc<Core>,
    b: Arc<Core>,
    keyspace: Fabric,
    keys: Vec<UnsealShare>,
    root_token: String,
}

/// Nodes `a` and `b`, named so in their audit files.
fn two_cores() -> (Arc<Core>, Arc<Core>, Arc<SharedKeyspace>) {
    let keyspace = SharedKeyspace::new();
    let (a, b, _) = two_cores_on(Fabric::Memory(keyspace.clone()));
    (a, b, keyspace)
}

fn two_cores_on(keyspace: Fabric) -> (Arc<Core>, Arc<Core>, Fabric) {
    let node = |name: &str| {
        let settings = Settings {
            node_name: name.into(),
            ..Default::default()
        };
        Core::with_settings(Storage::new(keyspace.node()), settings)
    };
    let (a, b) = (node("a"), node("b"));
    (a, b, keyspace)
}

/// Waits until `f` holds: what another node changed reaches this one when storage
/// raises it, which may be just after the call that changed it returned.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A token with the `default` policy created on `node` (`num_uses`: 0 for unlimited).
async fn default_token(node: &Core, num_uses: u32) -> String {
    let request = CreateRequest {
        policies: vec!["default".into()],
        num_uses,
        path: "auth/token/create".into(),
        ..Default::default()
    };
    node.tokens
        .create(None, request)
        .await
        .unwrap()
        .token
        .to_string()
}

/// Node `a` set up as `-dev` does (kv at `secret/`, transit at `transit/`), node `b`
/// unsealed with the same key.
async fn cluster() -> Cluster {
    cluster_on(Fabric::memory()).await
}

async fn cluster_on(fabric: Fabric) -> Cluster {
    let (a, b, keyspace) = two_cores_on(fabric);
    let init = a.dev_setup(None).await.unwrap();
    for k in &init.keys {
        b.unseal(UnsealStep::Share(k.clone())).await.unwrap();
    }
    assert!(!b.is_sealed());
    Cluster {
        a,
        b,
        keyspace,
        keys: init.keys,
        root_token: init.root_token.to_string(),
    }
}

/// Counts its runs on a counter shared by the nodes it is registered on.
struct Probe(Arc<AtomicUsize>);

impl PeriodicTask for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn interval(&self) -> Duration {
        Duration::ZERO
    }

    fn run<'a>(&'a self, _core: &'a Core) -> TaskFuture<'a> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_nodes_initialising_at_once_one_wins_and_the_other_is_told_so() {
    of_two_nodes_initialising_at_once_one_wins_and_the_other_is_told_so_on(Fabric::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_nodes_initialising_at_once_one_wins_and_the_other_is_told_so_on_the_foundationdb_model(
) {
    of_two_nodes_initialising_at_once_one_wins_and_the_other_is_told_so_on(Fabric::fdb(100)).await;
}

async fn of_two_nodes_initialising_at_once_one_wins_and_the_other_is_told_so_on(fabric: Fabric) {
    for _ in 0..5 {
        let (a, b, _keyspace) = two_cores_on(fabric.fresh());
        let (ra, rb) = tokio::join!(a.init(1, 1), b.init(1, 1));
        let (winner, loser) = match (ra, rb) {
            (Ok(init), Err(e)) | (Err(e), Ok(init)) => (init, e),
            (ra, rb) => panic!(
                "expected one init: {:?} / {:?}",
                ra.map(|_| ()),
                rb.map(|_| ())
            ),
        };
        assert!(matches!(loser, EngineError::AlreadyInitialized), "{loser}");
        // Both nodes open the keyspace the winner made, with its keys.
        for node in [&a, &b] {
            for k in &winner.keys {
                node.unseal(UnsealStep::Share(k.clone())).await.unwrap();
            }
            assert!(!node.is_sealed());
            node.tokens.lookup(&winner.root_token).unwrap();
        }
    }
}

#[tokio::test]
async fn periodic_tasks_run_on_one_node_and_move_when_it_seals() {
    periodic_tasks_run_on_one_node_and_move_when_it_seals_on(Fabric::memory()).await;
}

#[tokio::test]
async fn periodic_tasks_run_on_one_node_and_move_when_it_seals_on_the_foundationdb_model() {
    periodic_tasks_run_on_one_node_and_move_when_it_seals_on(Fabric::fdb(101)).await;
}

async fn periodic_tasks_run_on_one_node_and_move_when_it_seals_on(fabric: Fabric) {
    let c = cluster_on(fabric).await;
    let runs = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    c.a.periodic().register(Probe(runs[0].clone()));
    c.b.periodic().register(Probe(runs[1].clone()));
    for _ in 0..3 {
        c.a.tick().await;
        c.b.tick().await;
    }
    let counts = [
        runs[0].load(Ordering::SeqCst),
        runs[1].load(Ordering::SeqCst),
    ];
    assert!(
        counts == [3, 0] || counts == [0, 3],
        "one runner: {counts:?}"
    );
    let (runner, other, other_runs) = if counts[0] == 3 {
        (&c.a, &c.b, &runs[1])
    } else {
        (&c.b, &c.a, &runs[0])
    };
    assert_eq!(
        other.periodic_runner().unwrap().as_deref(),
        Some(runner.node_id())
    );
    runner.seal().await;
    other.tick().await;
    assert_eq!(other_runs.load(Ordering::SeqCst), 1, "taken over");
    assert_eq!(
        runner.periodic_runner().unwrap().as_deref(),
        Some(other.node_id())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyring_rotation_on_one_node_is_taken_up_by_the_other_and_races_lose_no_term() {
    let c = cluster().await;
    let secret = |core: &Core| core.route("secret/data/x").unwrap().0;
    let data = |v: &str| Map::from_iter([("v".to_string(), json!(v))]);
    c.a.rotate_keyring().await.unwrap();
    assert_eq!(c.b.key_status().unwrap().term, 2, "b took the new term up");
    // Written by b under term 2, read by a.
    secret(&c.b)
        .kv()
        .unwrap()
        .write("from-b", data("b2"), None)
        .await
        .unwrap();
    let read = secret(&c.a).kv().unwrap().read("from-b", None).unwrap();
    assert_eq!(read.data.unwrap()["v"], "b2");

    let (ra, rb) = tokio::join!(c.a.rotate_keyring(), c.b.rotate_keyring());
    let terms = [ra.unwrap().term, rb.unwrap().term];
    assert!(terms == [3, 4] || terms == [4, 3], "{terms:?}");
    every_term_reads_after_unseal(
        &c,
        4,
        (&c.a, "from-a", "written-by-a-under-term-4"),
        &c.b,
        &[("from-b", "b2")],
    )
    .await;
}

/// Once both nodes reach keyring `term`: `writer` writes its value under it, then
/// `reader` seals and unseals afresh and reads that value and `earlier` ones back (every
/// term is in the stored keyring), and the value's plaintext is nowhere in storage. The
/// value is long enough that random ciphertext never contains it by chance.
async fn every_term_reads_after_unseal(
    c: &Cluster,
    term: u32,
    (writer, key, value): (&Core, &str, &str),
    reader: &Core,
    earlier: &[(&str, &str)],
) {
    let secret = |core: &Core| core.route("secret/data/x").unwrap().0;
    for node in [&c.a, &c.b] {
        eventually(&format!("every node at term {term}"), || {
            node.key_status().is_ok_and(|s| s.term == term)
        })
        .await;
    }
    let data = Map::from_iter([("v".to_string(), json!(value))]);
    secret(writer)
        .kv()
        .unwrap()
        .write(key, data, None)
        .await
        .unwrap();
    reader.seal().await;
    for k in &c.keys {
        reader.unseal(UnsealStep::Share(k.clone())).await.unwrap();
    }
    let kv = secret(reader);
    let kv = kv.kv().unwrap();
    for (key, value) in earlier.iter().chain([&(key, value)]) {
        assert_eq!(kv.read(key, None).unwrap().data.unwrap()["v"], *value);
    }
    for v in c.keyspace.raw_values() {
        assert!(
            !v.windows(value.len()).any(|w| w == value.as_bytes()),
            "plaintext stored"
        );
    }
}

#[tokio::test]
async fn mounts_policies_tokens_and_transit_keys_changed_on_one_node_are_honoured_on_the_other() {
    let c = cluster().await;
    // Mount table.
    c.a.mounts
        .mount(
            "team",
            "kv-v2",
            String::new(),
            Default::default(),
            MountConfig::default(),
        )
        .await
        .unwrap();
    assert!(c.b.route("team/data/x").is_some(), "b routes a's new mount");
    // A transit engine subscribes to invalidations as it is built, here while b takes
    // the change up.
    c.a.mounts
        .mount(
            "enc",
            "transit",
            String::new(),
            Default::default(),
            MountConfig::default(),
        )
        .await
        .unwrap();
    assert!(
        c.b.route("enc/keys/k").is_some(),
        "b routes a's transit mount"
    );
    c.b.mounts.unmount("team").await.unwrap();
    assert!(c.a.route("team/data/x").is_none(), "a forgot b's unmount");

    // Policies.
    c.a.policies
        .put("ops", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await
        .unwrap();
    assert!(c.b.policies.get("ops").unwrap().is_some());
    c.b.policies.delete("ops").await.unwrap();
    assert!(c.a.policies.get("ops").unwrap().is_none());

    // Tokens: created on a, honoured on b until a revokes it.
    let token = default_token(&c.a, 0).await;
    let (key, _) = c.b.tokens.lookup(&token).unwrap();
    c.a.tokens.revoke(&key).await.unwrap();
    assert!(matches!(
        c.b.tokens.lookup(&token),
        Err(EngineError::Unauthenticated)
    ));
    c.b.tokens.lookup(&c.root_token).unwrap();

    // Transit keys: rotated on a, b encrypts with the new version.
    let transit = |core: &Core| core.route("transit/keys/k").unwrap().0;
    transit(&c.a)
        .transit()
        .unwrap()
        .create("k", CreateKey::default())
        .await
        .unwrap();
    let on_b = transit(&c.b).transit().unwrap().get("k").unwrap().unwrap();
    assert_eq!(on_b.config.latest_version, 1);
    transit(&c.a).transit().unwrap().rotate("k").await.unwrap();
    let on_b = transit(&c.b).transit().unwrap().get("k").unwrap().unwrap();
    assert_eq!(on_b.config.latest_version, 2);

    // Token mount TTLs tuned on b.
    let mut tune = c.b.tokens.mount_ttls();
    tune.default_lease_ttl = 3600;
    c.b.tokens.tune(tune).await.unwrap();
    assert_eq!(c.a.tokens.mount_ttls().default_lease_ttl, 3600);
}

/// On FoundationDB a change reaches the other node when its watch hears it, within the
/// poll bound rather than before the call that made it returns: the other node honours
/// it from then on. Retryable errors and unknown commit results are injected throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_node_are_honoured_on_the_other_on_the_foundationdb_model() {
    let c = cluster_on(Fabric::fdb(7)).await;
    let secret = |core: &Core| core.route("secret/data/x").unwrap().0;
    let data = |v: &str| Map::from_iter([("v".to_string(), json!(v))]);
    secret(&c.a)
        .kv()
        .unwrap()
        .write("x", data("one"), None)
        .await
        .unwrap();
    eventually("b reads a's kv write", || {
        secret(&c.b)
            .kv()
            .unwrap()
            .read("x", None)
            .ok()
            .and_then(|r| r.data)
            .is_some_and(|d| d["v"] == "one")
    })
    .await;

    c.a.policies
        .put("ops", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await
        .unwrap();
    eventually("b has a's policy", || {
        c.b.policies.get("ops").is_ok_and(|p| p.is_some())
    })
    .await;
    c.b.policies.delete("ops").await.unwrap();
    eventually("a forgot b's deleted policy", || {
        c.a.policies.get("ops").is_ok_and(|p| p.is_none())
    })
    .await;

    let token = default_token(&c.a, 0).await;
    eventually("b knows a's token", || c.b.tokens.lookup(&token).is_ok()).await;
    let (key, _) = c.b.tokens.lookup(&token).unwrap();
    c.a.tokens.revoke(&key).await.unwrap();
    eventually("b refuses the token a revoked", || {
        matches!(c.b.tokens.lookup(&token), Err(EngineError::Unauthenticated))
    })
    .await;

    let transit = |core: &Core| core.route("transit/keys/k").unwrap().0;
    let on_a = transit(&c.a);
    let on_a = on_a.transit().unwrap();
    on_a.create("k", CreateKey::default()).await.unwrap();
    on_a.rotate("k").await.unwrap();
    eventually("b uses the version a rotated to", || {
        transit(&c.b)
            .transit()
            .unwrap()
            .get("k")
            .ok()
            .flatten()
            .is_some_and(|k| k.config.latest_version == 2)
    })
    .await;

    let (ra, rb) = tokio::join!(c.a.rotate_keyring(), c.b.rotate_keyring());
    let mut terms = [ra.unwrap().term, rb.unwrap().term];
    terms.sort_unstable();
    assert_eq!(terms, [2, 3], "both rotations kept their term");
    every_term_reads_after_unseal(
        &c,
        3,
        (&c.b, "y", "written-by-b-under-term-3"),
        &c.a,
        &[("x", "one")],
    )
    .await;
    let Fabric::Fdb(model) = &c.keyspace else {
        unreachable!("built on the model")
    };
    assert!(model.counts().injected > 0, "no fault was injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounting_on_both_nodes_at_once_loses_no_mount() {
    mounting_on_both_nodes_at_once_loses_no_mount_on(Fabric::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounting_on_both_nodes_at_once_loses_no_mount_on_the_foundationdb_model() {
    mounting_on_both_nodes_at_once_loses_no_mount_on(Fabric::fdb(102)).await;
}

async fn mounting_on_both_nodes_at_once_loses_no_mount_on(fabric: Fabric) {
    let c = cluster_on(fabric).await;
    let mount = |core: Arc<Core>, path: &'static str| async move {
        loop {
            match core
                .mounts
                .mount(
                    path,
                    "kv-v2",
                    String::new(),
                    Default::default(),
                    MountConfig::default(),
                )
                .await
            {
                Ok(_) => return,
                // The loser is told to try again, and does.
                Err(EngineError::Conflict(_)) => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    };
    for i in 0..10 {
        let (pa, pb): (&'static str, &'static str) = match i % 2 {
            0 => ("left", "right"),
            _ => ("up", "down"),
        };
        tokio::join!(mount(c.a.clone(), pa), mount(c.b.clone(), pb));
        // The other node takes a table change up when storage raises it, which may land
        // just after the mount call returned: wait for it within a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for node in [&c.a, &c.b] {
            while [pa, pb]
                .iter()
                .any(|p| node.route(&format!("{p}/data/x")).is_none())
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{pa} and {pb} not both routed on every node"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        c.a.mounts.unmount(pa).await.unwrap();
        c.a.mounts.unmount(pb).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_check_and_set_from_two_nodes_accepts_one_writer_per_version() {
    kv_check_and_set_from_two_nodes_accepts_one_writer_per_version_on(Fabric::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_check_and_set_from_two_nodes_accepts_one_writer_per_version_on_the_foundationdb_model()
{
    kv_check_and_set_from_two_nodes_accepts_one_writer_per_version_on(Fabric::fdb(103)).await;
}

async fn kv_check_and_set_from_two_nodes_accepts_one_writer_per_version_on(fabric: Fabric) {
    let c = cluster_on(fabric).await;
    let secret = |core: &Core| core.route("secret/data/x").unwrap().0;
    let data = |v: &str| Map::from_iter([("v".to_string(), json!(v))]);
    for version in 0..10u64 {
        let (a, b) = (secret(&c.a), secret(&c.b));
        let (ra, rb) = tokio::join!(
            a.kv().unwrap().write("cas", data("a"), Some(version)),
            b.kv().unwrap().write("cas", data("b"), Some(version)),
        );
        let won = [ra.is_ok(), rb.is_ok()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "version {version}");
    }
    let meta = secret(&c.b).kv().unwrap().metadata("cas").unwrap();
    assert_eq!(meta.current_version, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_use_token_used_on_both_nodes_is_used_no_more_than_allowed() {
    a_limited_use_token_used_on_both_nodes_is_used_no_more_than_allowed_on(Fabric::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_use_token_used_on_both_nodes_is_used_no_more_than_allowed_on_the_foundationdb_model(
) {
    a_limited_use_token_used_on_both_nodes_is_used_no_more_than_allowed_on(Fabric::fdb(104)).await;
}

async fn a_limited_use_token_used_on_both_nodes_is_used_no_more_than_allowed_on(fabric: Fabric) {
    let c = cluster_on(fabric).await;
    let token = default_token(&c.a, 4).await;
    let mut accepted = 0;
    for _ in 0..4 {
        let (ra, rb) = tokio::join!(
            c.a.tokens
                .authenticate(&token, "secret/data/x", Operation::Read, None),
            c.b.tokens
                .authenticate(&token, "secret/data/x", Operation::Read, None)
        );
        accepted += [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count();
    }
    assert_eq!(accepted, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_whose_node_vanished_frees_the_keyspace_once_its_lease_expires() {
    assert!(
        INIT_LEASE_TTL <= Duration::from_secs(15),
        "freed within seconds"
    );
    let (a, b, keyspace) = two_cores();
    // What a node that died in the middle of its init leaves: its lease, not renewed.
    let vanished = Lease::new(
        Storage::new(keyspace.node()),
        "init",
        "vanished",
        INIT_LEASE_TTL,
    );
    assert_eq!(vanished.acquire().await.unwrap(), Acquired::Held);
    drop(vanished);
    let started = Instant::now();
    assert!(matches!(
        a.init(1, 1).await,
        Err(EngineError::AlreadyInitialized)
    ));
    let init = loop {
        match b.init(1, 1).await {
            Ok(init) => break init,
            Err(EngineError::AlreadyInitialized) => {
                assert!(
                    started.elapsed() < INIT_LEASE_TTL + Duration::from_secs(5),
                    "the lease of the vanished node was never freed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    for node in [&a, &b] {
        node.unseal(UnsealStep::Share(init.keys[0].clone()))
            .await
            .unwrap();
        node.tokens.lookup(&init.root_token).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_nodes_rotating_the_unseal_keys_at_once_one_wins_and_its_keys_open_both() {
    let c = cluster().await;
    let new = RotateConfig {
        secret_shares: 3,
        secret_threshold: 2,
        require_verification: false,
    };
    let required =
        c.a.rotation_init(RotateTarget::Root, new)
            .await
            .unwrap()
            .required;
    let nonce_a = c.a.rotation_status(RotateTarget::Root).unwrap().nonce;
    c.b.rotation_init(RotateTarget::Root, new).await.unwrap();
    let nonce_b = c.b.rotation_status(RotateTarget::Root).unwrap().nonce;
    let (last, before) = c.keys[..required as usize].split_last().unwrap();
    for k in before {
        c.a.rotation_update(RotateTarget::Root, k.clone(), &nonce_a)
            .await
            .unwrap();
        c.b.rotation_update(RotateTarget::Root, k.clone(), &nonce_b)
            .await
            .unwrap();
    }
    let (ra, rb) = tokio::join!(
        c.a.rotation_update(RotateTarget::Root, last.clone(), &nonce_a),
        c.b.rotation_update(RotateTarget::Root, last.clone(), &nonce_b),
    );
    let (keys, refusal) = match (ra, rb) {
        (Ok(RotateUpdate::Complete(k)), Err(e)) | (Err(e), Ok(RotateUpdate::Complete(k))) => {
            (k.keys, e)
        }
        (ra, rb) => {
            let show = |r: crate::error::Result<RotateUpdate>| match r {
                Ok(RotateUpdate::Complete(_)) => "complete".to_string(),
                Ok(RotateUpdate::Progress(p)) => format!("progress {p:?}"),
                Err(e) => e.to_string(),
            };
            panic!("expected one rotation: {} / {}", show(ra), show(rb))
        }
    };
    assert!(
        matches!(&refusal, EngineError::Conflict(m) if m.contains("another node changed the seal")),
        "{refusal}"
    );
    // Both nodes open with the winner's keys, and no longer with the old ones.
    for node in [&c.a, &c.b] {
        node.seal().await;
        for k in &c.keys {
            let _ = node.unseal(UnsealStep::Share(k.clone())).await;
        }
        assert!(node.is_sealed(), "the old keys still open a node");
        node.unseal(UnsealStep::Reset).await.unwrap();
        for k in &keys[..2] {
            node.unseal(UnsealStep::Share(k.clone())).await.unwrap();
        }
        assert!(!node.is_sealed());
        node.tokens.lookup(&c.root_token).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_keys_created_rotated_and_destroyed_on_one_node_are_seen_on_the_other() {
    let c = cluster().await;
    let key =
        c.a.keys
            .create(
                NewManagedKey {
                    name: "shared".into(),
                    algorithm: Algorithm::Aes256,
                    usage: None,
                    labels: BTreeMap::new(),
                    exportable: false,
                    allow_unwrapped_export: false,
                },
                c.a.root().unwrap(),
            )
            .await
            .unwrap();
    let encrypt_on_b = || async {
        let on_b = c.b.keys.get(&key.id)?;
        c.b.keys
            .encrypt(
                &on_b,
                None,
                Zeroizing::new(b"x".to_vec()),
                c.b.root().unwrap(),
            )
            .await
    };
    assert_eq!(encrypt_on_b().await.unwrap().version, 1);
    c.a.keys
        .rotate(&key.id, c.a.root().unwrap(), "test")
        .await
        .unwrap();
    assert_eq!(
        encrypt_on_b().await.unwrap().version,
        2,
        "b uses a's rotation"
    );

    // b's housekeeping found nothing due; a schedules the key's destruction, and b both
    // refuses the key and, once it is due, destroys it.
    assert!(c
        .b
        .keys
        .tidy(Some(c.b.root().unwrap()))
        .await
        .unwrap()
        .is_empty());
    c.a.keys
        .schedule_destruction(&key.id, MIN_PENDING_WINDOW)
        .await
        .unwrap();
    assert!(matches!(
        encrypt_on_b().await,
        Err(KeyError::PendingDestruction(_))
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let destroyed = c.b.keys.tidy(Some(c.b.root().unwrap())).await.unwrap();
        if destroyed.iter().any(|(id, _)| *id == key.id.to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never destroyed the key a scheduled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(c.a.keys.get(&key.id), Err(KeyError::NotFound(_))));
    assert!(matches!(encrypt_on_b().await, Err(KeyError::NotFound(_))));
}

fn file_device(path: &std::path::Path) -> DeviceConfig {
    DeviceConfig {
        path: "file".into(),
        kind: "file".into(),
        description: String::new(),
        options: BTreeMap::from([("file_path".to_string(), path.display().to_string())]),
        local: false,
    }
}

/// Logs one request on `core`'s devices, as the operation layer does before running it.
async fn audited(core: &Core, id: &str) -> crate::error::Result<()> {
    let request = RequestInfo {
        id,
        operation: "read",
        path: "secret/data/x",
        data: None,
        client_token: "",
        remote_address: None,
    };
    core.audit.log_request(&request, None, None).await
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_devices_are_shared_by_the_nodes_and_each_node_keeps_its_own_chain() {
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    c.a.audit
        .enable(file_device(&dir.path().join("audit.log")))
        .await
        .unwrap();
    eventually("b to take a's audit device up", || {
        c.b.audit.device_count() == 1
    })
    .await;
    let file_of = |node: &str| dir.path().join(format!("audit.{node}.log"));

    // Both nodes audit at once, each into its own file.
    for i in 0..20 {
        let (id_a, id_b) = (format!("a-{i}"), format!("b-{i}"));
        let (ra, rb) = tokio::join!(audited(&c.a, &id_a), audited(&c.b, &id_b));
        ra.unwrap();
        rb.unwrap();
    }
    assert!(
        !dir.path().join("audit.log").exists(),
        "no node writes the shared name"
    );
    for (node, name) in [(&c.a, "a"), (&c.b, "b")] {
        let text = std::fs::read_to_string(file_of(name)).unwrap();
        assert_eq!(text.matches(&format!("\"{name}-")).count(), 20, "{name}");
        let other = if name == "a" { "b" } else { "a" };
        assert!(
            !text.contains(&format!("\"{other}-")),
            "{name} has {other}'s lines"
        );
        // Each node's chain verifies, up to the head it recorded (the recorder stores
        // heads after the writes it follows): no node's head is the other's.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let report = node.audit.verify("file").await.unwrap();
            assert_eq!(report.file_path, file_of(name).display().to_string());
            assert!(report.report.is_clean(), "{name}: {:?}", report.report);
            if report.stored_head.is_some() && report.stored_head == report.report.head {
                assert!(report.stored_head_found);
                break;
            }
            assert!(Instant::now() < deadline, "{name}'s head never recorded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Disabled on b: a stops auditing.
    assert!(c.b.audit.disable("file").await.unwrap());
    eventually("a to take b's disable up", || c.a.audit.device_count() == 0).await;
    let before = lines(&file_of("a"));
    audited(&c.a, "after-disable").await.unwrap();
    assert_eq!(lines(&file_of("a")), before);

    // Enabled on both at once: one wins, the other is told to try again.
    let (ra, rb) = tokio::join!(
        c.a.audit.enable(file_device(&dir.path().join("left.log"))),
        c.b.audit.enable(DeviceConfig {
            path: "other".into(),
            ..file_device(&dir.path().join("right.log"))
        }),
    );
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert!(matches!(e, EngineError::Conflict(_)), "{e}");
        }
    }
    let enabled = [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count();
    assert!(enabled >= 1);
    eventually("both nodes to list the same devices", || {
        let paths = |core: &Core| -> Vec<String> {
            core.audit
                .list()
                .unwrap()
                .into_iter()
                .map(|d| d.path)
                .collect()
        };
        let on_a = paths(&c.a);
        on_a.len() == enabled && on_a == paths(&c.b)
    })
    .await;
}
