//! The FoundationDB backend's algorithms on a model of FoundationDB (see [`model`]), and
//! on a real cluster when `FDB_CLUSTER_FILE` names one.

pub(crate) mod model;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use self::model::{Faults, Model};
use super::layout::{Layout, CHUNK_BYTES};
use super::{FdbStore, RETRY_FOR, TRANSACTION_BUDGET, WATCH_POLL};
use crate::storage::conformance;
use crate::storage::{Backend, Batch, Conflict, Invalidations, Storage, StorageError};

/// A keyspace in one model cluster; every handle is another node on it.
struct ModelFixture {
    model: Model,
}

impl conformance::Fixture for ModelFixture {
    fn open(&mut self) -> Arc<dyn Backend> {
        store(&self.model, "conformance")
    }

    /// The keyspace lives in the cluster, not in a handle.
    fn durable(&self) -> bool {
        true
    }

    fn shared(&self) -> Option<Duration> {
        Some(WATCH_POLL * 2)
    }
}

#[test]
fn the_conformance_suite_on_the_model() {
    conformance::run(|| ModelFixture {
        model: Model::new(20, Faults::default()),
    });
}

/// The same promises while the cluster fails transactions at random, retryably, and
/// answers some commits with an unknown result.
#[test]
fn the_conformance_suite_on_the_model_with_faults() {
    let mut seed = 30;
    conformance::run(|| {
        seed += 1;
        ModelFixture {
            model: Model::new(
                seed,
                Faults {
                    retryable: 0.1,
                    unknown: 0.1,
                },
            ),
        }
    });
}

fn store(model: &Model, prefix: &str) -> Arc<FdbStore<Model>> {
    Arc::new(FdbStore::new(model.clone(), prefix))
}

fn put(backend: &dyn Backend, key: &str, value: &[u8]) {
    let mut batch = Batch::new();
    batch.put(key, value.to_vec());
    assert_eq!(backend.apply(&[batch]).unwrap(), vec![Ok(())]);
}

/// A read whose every attempt fails retryably gives up with the cluster's error once
/// the time for retries is up, rather than blocking its caller for ever.
#[test]
fn a_read_that_keeps_failing_gives_up_after_the_retry_time() {
    let model = Model::new(
        9,
        Faults {
            retryable: 2.0,
            unknown: 0.0,
        },
    );
    let started = Instant::now();
    let error = store(&model, "t").get("k").unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            error,
            StorageError::FoundationDb {
                code: 1007 | 1009 | 1037,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        took >= RETRY_FOR && took < RETRY_FOR + Duration::from_secs(5),
        "{took:?}"
    );
    assert!(model.counts().injected > 1);
}

#[test]
fn values_over_the_value_limit_are_chunked_and_read_back_whole() {
    let model = Model::new(1, Faults::default());
    let backend = store(&model, "t");
    let big: Vec<u8> = (0..(2 * CHUNK_BYTES + 17))
        .map(|i| (i % 251) as u8)
        .collect();
    put(&*backend, "big", &big);
    assert_eq!(backend.get("big").unwrap(), Some(big));
    let layout = Layout::new("t");
    let (begin, end) = layout.value_range("big");
    let chunks: Vec<_> = model
        .dump()
        .into_iter()
        .filter(|(k, _)| *k >= begin && *k < end)
        .collect();
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|(_, v)| v.len() <= CHUNK_BYTES));
    // A smaller value leaves no chunk of the larger one behind.
    put(&*backend, "big", b"small");
    assert_eq!(backend.get("big").unwrap(), Some(b"small".to_vec()));
    assert_eq!(
        model
            .dump()
            .into_iter()
            .filter(|(k, _)| *k >= begin && *k < end)
            .count(),
        1
    );
    // An empty value is a value.
    put(&*backend, "empty", b"");
    assert_eq!(backend.get("empty").unwrap(), Some(Vec::new()));
    assert_eq!(backend.list("").unwrap(), vec!["big", "empty"]);
}

#[test]
fn tenants_under_other_prefixes_do_not_see_each_other() {
    let model = Model::new(2, Faults::default());
    let a = store(&model, "tenant");
    let b = store(&model, "tenant-b");
    put(&*a, "sys/x", b"a");
    put(&*b, "sys/x", b"b");
    put(&*b, "sys/y", b"b");
    assert_eq!(a.get("sys/x").unwrap(), Some(b"a".to_vec()));
    assert_eq!(a.list("").unwrap(), vec!["sys/x"]);
    assert_eq!(b.list("sys/").unwrap(), vec!["sys/x", "sys/y"]);
}

#[test]
fn what_cannot_fit_is_refused_clearly_and_alone() {
    let model = Model::new(3, Faults::default());
    let backend = store(&model, "t");
    let mut long_key = Batch::new();
    long_key.put("k".repeat(20_000), b"v".to_vec());
    let e = backend.cost(&long_key).unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::TooLarge {
                what: "a storage key",
                ..
            }
        ),
        "{e}"
    );
    let mut huge = Batch::new();
    huge.put("huge", vec![0; TRANSACTION_BUDGET]);
    let e = backend.cost(&huge).unwrap_err();
    assert!(
        e.to_string().contains("over the storage backend's limit"),
        "{e}"
    );
    // A group over the budget is refused whole, before anything is written.
    let big = |k: &str| {
        let mut b = Batch::new();
        b.put(k, vec![1; TRANSACTION_BUDGET / 3]);
        b
    };
    let e = backend
        .apply(&[big("a"), big("b"), big("c"), big("d")])
        .unwrap_err();
    assert!(matches!(e, StorageError::TooLarge { .. }), "{e}");
    assert!(backend.list("").unwrap().is_empty());
}

/// Storage refuses the batch that cannot fit, and only it, and closes each group before
/// it outgrows a transaction: many large writes at once all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_keeps_every_transaction_under_the_limit() {
    let model = Model::new(4, Faults::default());
    let storage = Storage::new(store(&model, "t"));
    let mut huge = Batch::new();
    huge.put("huge", vec![0; TRANSACTION_BUDGET]);
    let e = storage.commit(huge).await.unwrap_err();
    assert!(matches!(e, StorageError::TooLarge { .. }), "{e}");
    let writers: Vec<_> = (0..12)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut b = Batch::new();
                b.put(format!("w/{i:02}"), vec![i as u8; 2_000_000]);
                storage.commit(b).await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    assert_eq!(storage.list("w/").unwrap().len(), 12);
    assert_eq!(storage.get("w/07").unwrap(), Some(vec![7; 2_000_000]));
    // No group made the model answer transaction_too_large: every commit landed.
    assert!(model.counts().commits >= 4);
}

/// A commit whose result is unknown but which landed is not applied twice, and its
/// condition is not reported as failed against its own write.
#[test]
fn an_unknown_result_that_landed_is_answered_once() {
    let model = Model::new(5, Faults::default());
    let backend = store(&model, "t");
    model.script_unknown(true);
    let mut batch = Batch::new();
    batch.check("k", None).put("k", b"1".to_vec());
    assert_eq!(backend.apply(&[batch]).unwrap(), vec![Ok(())]);
    assert_eq!(backend.get("k").unwrap(), Some(b"1".to_vec()));
    let counts = model.counts();
    assert_eq!((counts.unknown_landed, counts.commits), (1, 1));
    // A batch of the same group that failed its condition is answered as it was.
    model.script_unknown(true);
    let mut lost = Batch::new();
    lost.check("k", None).put("k", b"2".to_vec());
    let mut won = Batch::new();
    won.check("k", Some(b"1".to_vec())).put("k", b"3".to_vec());
    assert_eq!(
        backend.apply(&[lost, won]).unwrap(),
        vec![Err(Conflict { key: "k".into() }), Ok(())]
    );
    assert_eq!(model.counts().commits, 2);
}

#[test]
fn an_unknown_result_that_did_not_land_is_applied_on_retry() {
    let model = Model::new(6, Faults::default());
    let backend = store(&model, "t");
    model.script_unknown(false);
    let mut batch = Batch::new();
    batch.check("k", None).put("k", b"1".to_vec());
    assert_eq!(backend.apply(&[batch]).unwrap(), vec![Ok(())]);
    let counts = model.counts();
    assert_eq!((counts.unknown_lost, counts.commits), (1, 1));
    assert_eq!(backend.get("k").unwrap(), Some(b"1".to_vec()));
}

/// Outcome ids do not pile up: each commit clears the ones before it.
#[test]
fn outcome_ids_are_cleared_by_the_next_commit() {
    let model = Model::new(7, Faults::default());
    let backend = store(&model, "t");
    for i in 0..5 {
        put(&*backend, "k", &[i]);
    }
    let markers = |model: &Model| {
        let commits = foundationdb_tuple::Subspace::from("t").subspace(&"commit");
        model
            .dump()
            .iter()
            .filter(|(k, _)| commits.is_start_of(k))
            .count()
    };
    assert_eq!(markers(&model), 1);
}

/// Two nodes increment one counter through their own `Storage`, each also writing a key
/// of its own, while the model injects retryable errors and unknown results: no
/// increment is lost or doubled, and a writer's key is there exactly when its
/// increment is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_under_injected_faults_lose_nothing() {
    for seed in [11, 12, 13] {
        let model = Model::new(
            seed,
            Faults {
                retryable: 0.05,
                unknown: 0.05,
            },
        );
        let nodes = [
            Storage::new(store(&model, "t")),
            Storage::new(store(&model, "t")),
        ];
        conformance::writers_racing_on_one_counter(&nodes).await;
        let counts = model.counts();
        assert!(counts.injected > 0, "seed {seed}: {counts:?}");
    }
}

/// A transaction on one node whose read another node changed before the commit: the
/// conflict comes back as the batch's condition failing, and a rerun succeeds.
#[tokio::test]
async fn a_write_by_another_node_fails_the_condition_on_it() {
    let model = Model::new(8, Faults::default());
    let a = Storage::new(store(&model, "t"));
    let b = store(&model, "t");
    let mut tx = a.begin();
    assert_eq!(tx.get("k").unwrap(), None);
    tx.put("k", b"a".to_vec());
    put(&*b, "k", b"b");
    let e = a.commit(tx.into_batch()).await.unwrap_err();
    assert!(
        matches!(&e, StorageError::Conflict { key } if key == "k"),
        "{e}"
    );
    assert_eq!(a.get("k").unwrap(), Some(b"b".to_vec()));
}

/// What one node writes is raised on the other's invalidations within the poll bound,
/// and a node does not hear its own writes.
#[test]
fn other_nodes_hear_what_changed() {
    let model = Model::new(9, Faults::default());
    let a = store(&model, "t");
    let b = store(&model, "t");
    let heard = |backend: &Arc<FdbStore<Model>>| {
        let hub = Arc::new(Invalidations::default());
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        hub.subscribe(&log, |log, prefix| log.lock().push(prefix.to_string()));
        backend.watch(hub.clone());
        (hub, log)
    };
    let (_hub_a, heard_a) = heard(&a);
    let (_hub_b, heard_b) = heard(&b);
    // Each watcher took its first look before `watch` returned: what follows is news.
    let mut batch = Batch::new();
    batch.put("sys/policy/x", b"1".to_vec()).delete("kv/y");
    a.apply(&[batch]).unwrap();
    let until = Instant::now() + WATCH_POLL * 3;
    loop {
        let got = heard_b.lock().clone();
        if got.contains(&"sys/policy/x".to_string()) {
            assert!(got.contains(&"kv/y".to_string()), "{got:?}");
            break;
        }
        assert!(Instant::now() < until, "node b heard {got:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !heard_a.lock().iter().any(|p| p.starts_with("sys/")),
        "a node raised its own write"
    );
    // Each later write too, within the bound.
    let started = Instant::now();
    let before = heard_b.lock().len();
    put(&*a, "tokens/z", b"1");
    while heard_b.lock().len() == before {
        assert!(
            started.elapsed() < WATCH_POLL * 3,
            "not heard within the bound"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A node that looks only after the log entries it missed were trimmed cannot know what
/// changed, so it raises everything.
#[test]
fn a_node_that_missed_trimmed_entries_raises_everything() {
    let model = Model::new(10, Faults::default());
    let a = store(&model, "t");
    let layout = Layout::new("t");
    let node = [7; 16];
    let (seen, raised, _) = super::watch::look(&model, &layout, &node, None).unwrap();
    assert!(raised.is_empty());
    put(&*a, "x", b"1");
    let (_, raised, _) = super::watch::look(&model, &layout, &node, Some(seen)).unwrap();
    assert_eq!(raised, vec!["x".to_string()]);
    model.advance(super::LOG_RETENTION_VERSIONS * 2);
    put(&*a, "y", b"1");
    let (_, raised, _) = super::watch::look(&model, &layout, &node, Some(seen)).unwrap();
    assert_eq!(raised, vec![String::new()]);
}

/// On a real cluster: run only when `FDB_CLUSTER_FILE` names one and the crate is built
/// with `--features fdb`; otherwise says why it did not.
#[test]
fn on_a_real_foundationdb_cluster() {
    let Ok(cluster_file) = std::env::var("FDB_CLUSTER_FILE") else {
        eprintln!("SKIPPED: FDB_CLUSTER_FILE is not set: no FoundationDB cluster to test against");
        return;
    };
    real::run(&cluster_file);
}

#[cfg(not(feature = "fdb"))]
mod real {
    pub(super) fn run(_cluster_file: &str) {
        eprintln!("SKIPPED: built without the `fdb` feature: cargo test -p ironseal-engine --features fdb");
    }
}

#[cfg(feature = "fdb")]
mod real {
    use super::*;
    use crate::storage::foundationdb::{client::HEADER_API_VERSION, FdbCluster};

    /// A fresh keyspace per case, under a prefix of its own; emptied when dropped.
    struct RealFixture {
        cluster: FdbCluster,
        prefix: String,
        opened: Option<Arc<dyn Backend>>,
    }

    impl conformance::Fixture for RealFixture {
        fn open(&mut self) -> Arc<dyn Backend> {
            let backend = self.cluster.keyspace(&self.prefix);
            self.opened = Some(backend.clone());
            backend
        }

        fn durable(&self) -> bool {
            true
        }

        fn shared(&self) -> Option<Duration> {
            Some(WATCH_POLL * 2)
        }
    }

    impl Drop for RealFixture {
        fn drop(&mut self) {
            if let Some(backend) = &self.opened {
                let mut batch = Batch::new();
                for key in backend.list("").unwrap_or_default() {
                    batch.delete(key);
                }
                let _ = backend.apply(&[batch]);
            }
        }
    }

    pub(super) fn run(cluster_file: &str) {
        let cluster =
            FdbCluster::connect(Some(std::path::Path::new(cluster_file)), HEADER_API_VERSION)
                .unwrap();
        let run = uuid::Uuid::new_v4();
        let mut case = 0;
        conformance::run(|| {
            case += 1;
            RealFixture {
                cluster: cluster.clone(),
                prefix: format!("ironseal-test-{run}-{case}"),
                opened: None,
            }
        });
    }
}

#[test]
fn the_cluster_status_is_read_from_the_status_document() {
    let model = Model::new(31, Faults::default());
    let node = store(&model, "status");
    // A cluster always has one; its absence is an error, not a healthy cluster.
    assert!(node.cluster_status().is_err());
    let doc = serde_json::json!({
        "client": {"database_status": {"available": true, "healthy": true}},
        "cluster": {"machines": {"m1": {}, "m2": {}}},
    });
    model.set_special(super::status::STATUS_KEY, doc.to_string().as_bytes());
    let s = node.cluster_status().unwrap().expect("a summary");
    assert_eq!(
        (s.available, s.healthy, s.machines),
        (Some(true), Some(true), Some(2))
    );
}
