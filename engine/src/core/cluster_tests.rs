//! Two nodes on one keyspace: two cores in this process on a shared in-memory store
//! whose handles raise to each node what the other changed, as a shared backend's watch
//! does. What one node writes, the other honours; what both race for, one wins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map};

use crate::core::Core;
use crate::error::EngineError;
use crate::mounts::MountConfig;
use crate::periodic::{PeriodicTask, TaskFuture};
use crate::policy::Operation;
use crate::storage::shared_memory::SharedKeyspace;
use crate::storage::Storage;
use crate::token::CreateRequest;
use crate::transit::CreateKey;
use crate::{UnsealShare, UnsealStep};

struct Cluster {
    a: Arc<Core>,
    b: Arc<Core>,
    keyspace: Arc<SharedKeyspace>,
    keys: Vec<UnsealShare>,
    root_token: String,
}

fn two_cores() -> (Arc<Core>, Arc<Core>, Arc<SharedKeyspace>) {
    let keyspace = SharedKeyspace::new();
    let a = Core::new(Storage::new(keyspace.node()));
    let b = Core::new(Storage::new(keyspace.node()));
    (a, b, keyspace)
}

/// Node `a` set up as `-dev` does (kv at `secret/`, transit at `transit/`), node `b`
/// unsealed with the same key.
async fn cluster() -> Cluster {
    let (a, b, keyspace) = two_cores();
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
    for _ in 0..5 {
        let (a, b, _keyspace) = two_cores();
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
    let c = cluster().await;
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
    // Each node takes the other's last rotation up when storage raises it: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for node in [&c.a, &c.b] {
        while node.key_status().unwrap().term != 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "a node stayed behind term 4"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    secret(&c.a)
        .kv()
        .unwrap()
        .write("from-a", data("written-by-a-under-term-4"), None)
        .await
        .unwrap();
    // Every term is in the stored keyring: a node unsealing afresh reads both values.
    c.b.seal().await;
    for k in &c.keys {
        c.b.unseal(UnsealStep::Share(k.clone())).await.unwrap();
    }
    let kv = secret(&c.b);
    let kv = kv.kv().unwrap();
    assert_eq!(
        kv.read("from-a", None).unwrap().data.unwrap()["v"],
        "written-by-a-under-term-4"
    );
    assert_eq!(kv.read("from-b", None).unwrap().data.unwrap()["v"], "b2");
    for v in c.keyspace.raw_values() {
        // Long enough that random ciphertext never contains it by chance.
        let plain = b"written-by-a-under-term-4";
        assert!(
            !v.windows(plain.len()).any(|w| w == plain),
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
    let issued =
        c.a.tokens
            .create(
                None,
                CreateRequest {
                    policies: vec!["default".into()],
                    path: "auth/token/create".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    let token = issued.token.to_string();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounting_on_both_nodes_at_once_loses_no_mount() {
    let c = cluster().await;
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
    let c = cluster().await;
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
    let c = cluster().await;
    let issued =
        c.a.tokens
            .create(
                None,
                CreateRequest {
                    policies: vec!["default".into()],
                    num_uses: 4,
                    path: "auth/token/create".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    let token = issued.token.to_string();
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
