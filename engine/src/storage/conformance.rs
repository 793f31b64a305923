//! The conformance suite every [`Backend`] passes: the same cases on redb, the memory
//! backend, PostgreSQL and FoundationDB, so the engine above storage can rely on one
//! contract whatever holds its keyspace.
//!
//! Run it with [`run`] and a factory of fresh, empty fixtures:
//!
//! ```ignore
//! engine::storage::conformance::run(|| MyFixture::new());
//! ```
//!
//! Cases a fixture cannot take part in (durability for a backend that keeps nothing,
//! several handles for a single-node one) are reported as skipped on stderr, not passed
//! silently. The suite panics (with the case's name) on the first broken promise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Backend, Batch, Conflict, Invalidations, IsConflict, Storage, StorageError};

/// One store under test.
pub trait Fixture {
    /// A handle on the fixture's store. Called again after every handle was dropped, it
    /// must open the same data again, as a restarted daemon would.
    fn open(&mut self) -> Arc<dyn Backend>;

    /// Whether what was applied survives dropping every handle and opening again.
    fn durable(&self) -> bool {
        false
    }

    /// For a store several nodes share: a second handle may be opened while the first
    /// lives, and a write through one is raised on the other's [`Backend::watch`]
    /// within this bound.
    fn shared(&self) -> Option<Duration> {
        None
    }
}

type Case<F> = (&'static str, fn(&mut F));

/// Runs every case, each on a fresh fixture from `fresh`.
pub fn run<F: Fixture>(mut fresh: impl FnMut() -> F) {
    let cases: &[Case<F>] = &[
        ("get_list_apply", get_list_apply),
        ("an_empty_value_is_not_an_absent_key", empty_value),
        ("conditions_gate_their_batch", conditions_gate_their_batch),
        (
            "conditions_see_the_earlier_batches_of_their_group",
            conditions_see_earlier_batches,
        ),
        ("ops_apply_in_order", ops_apply_in_order),
        ("list_is_in_byte_order", list_is_in_byte_order),
        ("large_values", large_values),
        ("keys_with_odd_bytes", keys_with_odd_bytes),
        ("concurrent_appliers_lose_nothing", concurrent_appliers),
        (
            "concurrent_transactions_under_group_commit_lose_nothing",
            concurrent_transactions,
        ),
        ("durable_across_reopen", durable_across_reopen),
        ("other_handles_see_writes", other_handles_see_writes),
    ];
    for (name, case) in cases {
        eprintln!("conformance: {name}");
        let mut fixture = fresh();
        case(&mut fixture);
    }
}

fn skipped(case: &str, why: &str) {
    eprintln!("conformance: {case}: SKIPPED ({why})");
}

fn applied_ok(backend: &dyn Backend, batch: Batch) {
    let applied = backend.apply(&[batch]).expect("apply");
    assert_eq!(applied, vec![Ok(())], "an unconditional batch is applied");
}

fn put(backend: &dyn Backend, key: &str, value: &[u8]) {
    let mut batch = Batch::new();
    batch.put(key, value.to_vec());
    applied_ok(backend, batch);
}

fn get_list_apply(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    assert_eq!(b.get("a/1").unwrap(), None);
    assert!(b.list("").unwrap().is_empty());
    assert_eq!(
        b.apply(&[]).unwrap(),
        vec![],
        "an empty group applies nothing"
    );

    let mut batch = Batch::new();
    batch
        .put("a/1", b"one".to_vec())
        .put("a/2", b"two".to_vec())
        .put("b/1", b"three".to_vec());
    applied_ok(b, batch);
    assert_eq!(b.get("a/1").unwrap(), Some(b"one".to_vec()));
    assert_eq!(b.list("a/").unwrap(), ["a/1", "a/2"]);
    assert_eq!(b.list("").unwrap(), ["a/1", "a/2", "b/1"]);
    assert_eq!(
        b.list("a/1").unwrap(),
        ["a/1"],
        "a key is a prefix of itself"
    );
    assert!(b.list("c").unwrap().is_empty());

    put(b, "a/1", b"uno");
    assert_eq!(
        b.get("a/1").unwrap(),
        Some(b"uno".to_vec()),
        "put overwrites"
    );
    let mut batch = Batch::new();
    batch.delete("a/1").delete("never/there");
    applied_ok(b, batch);
    assert_eq!(b.get("a/1").unwrap(), None);
    assert_eq!(b.list("a/").unwrap(), ["a/2"]);
}

fn empty_value(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    put(&*backend, "empty", b"");
    assert_eq!(backend.get("empty").unwrap(), Some(Vec::new()));
    let mut batch = Batch::new();
    batch.check("empty", None).put("empty", b"x".to_vec());
    assert_eq!(
        backend.apply(&[batch]).unwrap(),
        vec![Err(Conflict {
            key: "empty".into()
        })],
        "an empty value does not satisfy `absent`"
    );
    let mut batch = Batch::new();
    batch.check("empty", Some(Vec::new())).delete("empty");
    applied_ok(&*backend, batch);
    assert_eq!(backend.get("empty").unwrap(), None);
}

fn conditions_gate_their_batch(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    let mut create = Batch::new();
    create.check("k", None).put("k", b"1".to_vec());
    applied_ok(b, create.clone());
    // The same create again: the key is no longer absent.
    assert_eq!(
        b.apply(&[create]).unwrap(),
        vec![Err(Conflict { key: "k".into() })]
    );
    // A stale expected value: nothing of the batch, not even its unconditional writes.
    let mut stale = Batch::new();
    stale
        .check("k", Some(b"0".to_vec()))
        .put("k", b"2".to_vec())
        .put("side", b"x".to_vec())
        .delete("k");
    assert_eq!(
        b.apply(&[stale]).unwrap(),
        vec![Err(Conflict { key: "k".into() })]
    );
    assert_eq!(b.get("k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(b.get("side").unwrap(), None);
    // The first failing condition is the one named.
    let mut two = Batch::new();
    two.check("k", Some(b"1".to_vec()))
        .check("absent", Some(b"v".to_vec()))
        .check("k", None)
        .put("k", b"2".to_vec());
    assert_eq!(
        b.apply(&[two]).unwrap(),
        vec![Err(Conflict {
            key: "absent".into()
        })]
    );
    // Conditions on keys the batch does not write still gate it.
    let mut guarded = Batch::new();
    guarded
        .check("k", Some(b"1".to_vec()))
        .check("absent", None)
        .put("other", b"y".to_vec());
    applied_ok(b, guarded);
    assert_eq!(b.get("other").unwrap(), Some(b"y".to_vec()));
    // A batch that only checks writes nothing and does not fail.
    let mut check_only = Batch::new();
    check_only.check("k", Some(b"1".to_vec()));
    applied_ok(b, check_only);
}

/// Three batches of one group: the second's condition fails against the first, the
/// third's holds only because the first was applied before it; the fourth is applied
/// although the second failed.
fn conditions_see_earlier_batches(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    let mut first = Batch::new();
    first.check("k", None).put("k", b"1".to_vec());
    let mut second = Batch::new();
    second
        .check("k", None)
        .put("k", b"2".to_vec())
        .put("other", b"x".to_vec());
    let mut third = Batch::new();
    third
        .check("k", Some(b"1".to_vec()))
        .put("k", b"3".to_vec());
    let mut fourth = Batch::new();
    fourth.check("other", None).put("fourth", b"4".to_vec());
    let applied = b.apply(&[first, second, third, fourth]).unwrap();
    assert_eq!(
        applied,
        vec![Ok(()), Err(Conflict { key: "k".into() }), Ok(()), Ok(())]
    );
    assert_eq!(b.get("k").unwrap(), Some(b"3".to_vec()));
    // Nothing of the batch that failed its condition, not even its other key.
    assert_eq!(b.get("other").unwrap(), None);
    assert_eq!(b.get("fourth").unwrap(), Some(b"4".to_vec()));
}

fn ops_apply_in_order(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    let mut batch = Batch::new();
    batch
        .put("put-then-delete", b"1".to_vec())
        .delete("put-then-delete")
        .delete("delete-then-put")
        .put("delete-then-put", b"2".to_vec())
        .put("twice", b"first".to_vec())
        .put("twice", b"second".to_vec());
    applied_ok(b, batch);
    assert_eq!(b.get("put-then-delete").unwrap(), None);
    assert_eq!(b.get("delete-then-put").unwrap(), Some(b"2".to_vec()));
    assert_eq!(b.get("twice").unwrap(), Some(b"second".to_vec()));
    // Across the batches of one group, the later one wins.
    let mut one = Batch::new();
    one.put("g", b"one".to_vec());
    let mut two = Batch::new();
    two.put("g", b"two".to_vec());
    let mut three = Batch::new();
    three.check("g", Some(b"two".to_vec())).delete("g");
    assert_eq!(b.apply(&[one, two, three]).unwrap(), vec![Ok(()); 3]);
    assert_eq!(b.get("g").unwrap(), None);
}

fn list_is_in_byte_order(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    // Written out of order; some sort differently under a locale's collation.
    let keys = [
        "p/b", "p/a", "p/B", "p/A", "p/a/b", "p/a0", "p/a-", "p/é", "p/z", "p/~", "p/ ", "q", "p",
        "p/Ä",
    ];
    let mut batch = Batch::new();
    for k in keys {
        batch.put(k, k.as_bytes().to_vec());
    }
    applied_ok(b, batch);
    let mut expected: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("p/"))
        .collect();
    expected.sort_unstable();
    assert_eq!(b.list("p/").unwrap(), expected);
    let mut all: Vec<&str> = keys.to_vec();
    all.sort_unstable();
    assert_eq!(b.list("").unwrap(), all);
    assert_eq!(b.list("p/a").unwrap(), ["p/a", "p/a-", "p/a/b", "p/a0"]);
}

fn large_values(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    // Around FoundationDB's 100 kB value limit, and well past it.
    let sizes = [99_999, 100_000, 100_001, 1 << 20, 3 << 20];
    let value = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 251) as u8).collect() };
    let mut batch = Batch::new();
    for n in sizes {
        batch.put(format!("big/{n}"), value(n));
    }
    applied_ok(b, batch);
    for n in sizes {
        assert_eq!(
            b.get(&format!("big/{n}")).unwrap(),
            Some(value(n)),
            "{n} bytes"
        );
    }
    // A condition on a large value compares all of it.
    let mut almost = value(1 << 20);
    almost[(1 << 20) - 1] ^= 1;
    let mut stale = Batch::new();
    stale
        .check("big/1048576", Some(almost))
        .delete("big/1048576");
    assert_eq!(
        b.apply(&[stale]).unwrap(),
        vec![Err(Conflict {
            key: "big/1048576".into()
        })]
    );
    let mut exact = Batch::new();
    exact
        .check("big/1048576", Some(value(1 << 20)))
        .put("big/1048576", b"small now".to_vec());
    applied_ok(b, exact);
    assert_eq!(b.get("big/1048576").unwrap(), Some(b"small now".to_vec()));
    let mut listed = b.list("big/").unwrap();
    listed.sort_unstable();
    assert_eq!(listed.len(), sizes.len(), "a chunked value is one key");
}

fn keys_with_odd_bytes(fixture: &mut impl Fixture) {
    let backend = fixture.open();
    let b = &*backend;
    let long = format!("odd/{}", "x".repeat(2000));
    let keys = [
        "odd/with space",
        "odd/100%",
        "odd/under_score",
        "odd/back\\slash",
        "odd/quote'\"",
        "odd/new\nline",
        "odd/nul\0byte",
        "odd/\u{7f}del",
        "odd/日本",
        "odd/emoji\u{1f511}",
        "odd/\u{ffff}",
        long.as_str(),
    ];
    let mut batch = Batch::new();
    for (i, k) in keys.iter().enumerate() {
        batch.put(*k, vec![i as u8, 0, 255]);
    }
    applied_ok(b, batch);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(b.get(k).unwrap(), Some(vec![i as u8, 0, 255]), "{k:?}");
    }
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    assert_eq!(b.list("odd/").unwrap(), sorted);
    // Characters that are wildcards in SQL `LIKE` or globs match only themselves.
    assert_eq!(b.list("odd/1%").unwrap(), Vec::<String>::new());
    assert_eq!(b.list("odd/100%").unwrap(), ["odd/100%"]);
    assert_eq!(b.list("odd/under_").unwrap(), ["odd/under_score"]);
    assert_eq!(b.list("odd/nul\0").unwrap(), ["odd/nul\0byte"]);
    assert_eq!(b.list("odd/nul").unwrap(), ["odd/nul\0byte"]);
    // A key just past every byte of the prefix is not below it.
    put(b, "odd0", b"");
    assert_eq!(b.list("odd/").unwrap().len(), keys.len());
    let mut cas = Batch::new();
    cas.check("odd/nul\0byte", Some(vec![6, 0, 255]))
        .delete("odd/nul\0byte");
    applied_ok(b, cas);
    assert_eq!(b.get("odd/nul\0byte").unwrap(), None);
}

/// Increments one counter from several threads calling `apply` directly, each with its
/// own read as the condition: the backend serialises them, so each increment is applied
/// exactly once and each refused one changes nothing.
fn concurrent_appliers(fixture: &mut impl Fixture) {
    const THREADS: usize = 6;
    const EACH: usize = 15;
    let backend = fixture.open();
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let backend = backend.clone();
            let refused = &refused;
            s.spawn(move || {
                for i in 0..EACH {
                    loop {
                        let seen = backend.get("n").unwrap();
                        let n = counter(seen.clone());
                        let mut batch = Batch::new();
                        batch
                            .check("n", seen)
                            .put("n", (n + 1).to_le_bytes().to_vec())
                            .put(format!("by/{t}/{i}"), n.to_le_bytes().to_vec());
                        match backend.apply(&[batch]).unwrap().pop() {
                            Some(Ok(())) => break,
                            Some(Err(c)) => {
                                assert_eq!(c.key, "n");
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            None => panic!("apply answered nothing for one batch"),
                        }
                    }
                }
            });
        }
    });
    let total = (THREADS * EACH) as u64;
    assert_eq!(counter(backend.get("n").unwrap()), total);
    // Every value of the counter was taken by exactly one increment.
    let mut seen: Vec<u64> = backend
        .list("by/")
        .unwrap()
        .iter()
        .map(|k| counter(backend.get(k).unwrap()))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..total).collect::<Vec<_>>());
    eprintln!(
        "conformance: concurrent appliers: {} refused and retried",
        refused.load(Ordering::Relaxed)
    );
}

/// Many writers increment one counter through the group commit, each also writing a
/// key of its own in the same transaction: no increment is lost, none is applied twice,
/// and a writer's own key is there exactly when its increment is.
fn concurrent_transactions(fixture: &mut impl Fixture) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a test runtime");
    runtime.block_on(writers_racing_on_one_counter(&[Storage::new(
        fixture.open(),
    )]));
}

/// 24 writers spread over `nodes` (each a `Storage` on one store) increment one counter,
/// each also writing a key of its own in the same transaction, and a writer refused by
/// a conflict gives up: no increment is lost or applied twice, and a writer's own key is
/// there exactly when its increment is.
pub(crate) async fn writers_racing_on_one_counter(nodes: &[Arc<Storage>]) {
    let succeeded = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..24)
        .map(|i| {
            let storage = nodes[i % nodes.len()].clone();
            let succeeded = succeeded.clone();
            tokio::spawn(async move {
                let result = storage
                    .transact(|tx| {
                        let n = counter(tx.get("n")?);
                        tx.put("n", (n + 1).to_le_bytes().to_vec());
                        tx.put(format!("by/{i}"), Vec::new());
                        Ok::<_, StorageError>(())
                    })
                    .await;
                match result {
                    Ok(()) => {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => assert!(e.is_conflict(), "{e}"),
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let succeeded = succeeded.load(Ordering::SeqCst) as u64;
    assert!(succeeded > 0);
    let (first, last) = (&nodes[0], &nodes[nodes.len() - 1]);
    assert_eq!(counter(first.get("n").unwrap()), succeeded);
    assert_eq!(last.list("by/").unwrap().len() as u64, succeeded);
}

fn durable_across_reopen(fixture: &mut impl Fixture) {
    if !fixture.durable() {
        return skipped("durable_across_reopen", "the backend keeps nothing");
    }
    {
        let backend = fixture.open();
        let b = &*backend;
        let mut batch = Batch::new();
        batch
            .put("d/1", b"one".to_vec())
            .put("d/2", b"two".to_vec())
            .put("d/gone", b"x".to_vec());
        applied_ok(b, batch);
        let mut first = Batch::new();
        first.delete("d/gone").put("d/1", b"uno".to_vec());
        let mut refused = Batch::new();
        refused.check("d/2", None).put("d/refused", b"no".to_vec());
        assert_eq!(
            b.apply(&[first, refused]).unwrap(),
            vec![Ok(()), Err(Conflict { key: "d/2".into() })]
        );
    }
    let backend = fixture.open();
    assert_eq!(backend.get("d/1").unwrap(), Some(b"uno".to_vec()));
    assert_eq!(backend.get("d/gone").unwrap(), None);
    // The log holds only what was applied.
    assert_eq!(backend.get("d/refused").unwrap(), None);
    assert_eq!(backend.list("d/").unwrap(), ["d/1", "d/2"]);
}

/// Two handles on one shared store, as two nodes: each sees what the other applied,
/// conditions are checked against the other's writes, and the other's writes are raised
/// as invalidations within the fixture's bound.
fn other_handles_see_writes(fixture: &mut impl Fixture) {
    let Some(bound) = fixture.shared() else {
        return skipped("other_handles_see_writes", "a single-node backend");
    };
    let a = fixture.open();
    let b = fixture.open();
    let heard = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let hub = Arc::new(Invalidations::default());
    hub.subscribe(&heard, |heard, prefix| {
        heard.lock().push(prefix.to_string())
    });
    b.watch(hub.clone());

    let mut batch = Batch::new();
    batch.check("s/k", None).put("s/k", b"from a".to_vec());
    applied_ok(&*a, batch);
    assert_eq!(b.get("s/k").unwrap(), Some(b"from a".to_vec()));
    let mut late = Batch::new();
    late.check("s/k", None).put("s/k", b"from b".to_vec());
    assert_eq!(
        b.apply(&[late]).unwrap(),
        vec![Err(Conflict { key: "s/k".into() })]
    );

    let covers = |key: &str| {
        let key = key.to_string();
        move |heard: &[String]| heard.iter().any(|p| key.starts_with(p.as_str()))
    };
    let started = Instant::now();
    let raised = covers("s/k");
    while !raised(&heard.lock()) {
        let took = started.elapsed();
        assert!(
            took <= bound,
            "a write by another node was not raised within {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counter(v: Option<Vec<u8>>) -> u64 {
    v.map_or(0, |b| {
        u64::from_le_bytes(b.try_into().expect("a counter is 8 bytes"))
    })
}
