use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn counter(v: Option<Vec<u8>>) -> u64 {
    v.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

/// Three batches of one group: the second's condition fails against the first, the
/// third's holds only because the first was applied before it.
fn one_group(backend: &dyn Backend) {
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
    let applied = backend.apply(&[first, second, third]).unwrap();
    assert_eq!(
        applied,
        vec![Ok(()), Err(Conflict { key: "k".into() }), Ok(())]
    );
    assert_eq!(backend.get("k").unwrap(), Some(b"3".to_vec()));
    // Nothing of the batch that failed its condition, not even its other key.
    assert_eq!(backend.get("other").unwrap(), None);
}

#[test]
fn conditions_see_the_earlier_batches_of_their_group_in_memory() {
    one_group(&MemoryBackend::new());
}

#[test]
fn conditions_see_the_earlier_batches_of_their_group_in_redb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    one_group(&RedbBackend::open(&path).unwrap());
    // The log holds only what was applied.
    let reopened = RedbBackend::open(&path).unwrap();
    assert_eq!(reopened.get("k").unwrap(), Some(b"3".to_vec()));
    assert_eq!(reopened.get("other").unwrap(), None);
}

#[tokio::test]
async fn a_conflict_is_typed_and_leaves_out_every_write_of_its_batch() {
    let mem = Arc::new(MemoryBackend::new());
    let storage = Storage::new(mem.clone());
    let mut tx = storage.begin();
    assert_eq!(tx.get("c").unwrap(), None);
    tx.put("a", b"1".to_vec()).put("b", b"2".to_vec());
    assert_eq!(tx.get("a").unwrap(), Some(b"1".to_vec()));
    let mut other = Batch::new();
    other.put("c", b"x".to_vec());
    mem.write_as_other_node(&other);
    let err = storage.commit(tx.into_batch()).await.unwrap_err();
    assert!(matches!(&err, StorageError::Conflict { key } if key == "c"));
    assert!(err.is_conflict());
    assert_eq!(storage.get("a").unwrap(), None);
    assert_eq!(storage.get("b").unwrap(), None);
}

#[tokio::test]
async fn put_if_writes_only_over_the_expected_value() {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let mut tx = storage.begin();
    tx.put_if("k", None, b"1".to_vec());
    storage.commit(tx.into_batch()).await.unwrap();
    let mut tx = storage.begin();
    tx.put_if("k", None, b"2".to_vec());
    assert!(storage
        .commit(tx.into_batch())
        .await
        .unwrap_err()
        .is_conflict());
    let mut tx = storage.begin();
    tx.put_if("k", Some(b"1".to_vec()), b"3".to_vec());
    storage.commit(tx.into_batch()).await.unwrap();
    assert_eq!(storage.get("k").unwrap(), Some(b"3".to_vec()));
}

#[tokio::test]
async fn a_transaction_runs_again_when_what_it_read_changed() {
    let mem = Arc::new(MemoryBackend::new());
    let storage = Storage::new(mem.clone());
    let mut attempts = 0;
    let seen = storage
        .transact(|tx| {
            attempts += 1;
            let n = counter(tx.get("n")?);
            if attempts == 1 {
                let mut other = Batch::new();
                other.put("n", 41u64.to_le_bytes().to_vec());
                mem.write_as_other_node(&other);
            }
            tx.put("n", (n + 1).to_le_bytes().to_vec());
            Ok::<_, StorageError>(n)
        })
        .await
        .unwrap();
    assert_eq!((attempts, seen), (2, 41));
    assert_eq!(counter(storage.get("n").unwrap()), 42);
}

#[tokio::test]
async fn retries_are_bounded() {
    let mem = Arc::new(MemoryBackend::new());
    let storage = Storage::new(mem.clone());
    let mut attempts = 0;
    let result = storage
        .transact(|tx| {
            attempts += 1;
            tx.get("n")?;
            let mut other = Batch::new();
            other.put("n", vec![attempts as u8]);
            mem.write_as_other_node(&other);
            tx.put("n", vec![0]);
            Ok::<_, StorageError>(())
        })
        .await;
    assert!(matches!(result, Err(StorageError::Conflict { .. })));
    assert_eq!(attempts, MAX_ATTEMPTS);
}

/// Many writers increment one counter through the group commit, each also writing a
/// key of its own in the same transaction: no increment is lost, none is applied twice,
/// and a writer's own key is there exactly when its increment is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_writes_under_group_commit_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::new(Arc::new(RedbBackend::open(&dir.path().join("db")).unwrap()));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..24)
        .map(|i| {
            let storage = storage.clone();
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
    assert_eq!(counter(storage.get("n").unwrap()), succeeded);
    assert_eq!(storage.list("by/").unwrap().len() as u64, succeeded);
}

#[test]
fn storage_errors_keep_their_source() {
    use std::error::Error;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/db");
    let Err(err) = RedbBackend::open(&missing) else {
        panic!("opened a database in a missing directory")
    };
    assert!(matches!(err, StorageError::Io { .. }));
    let source = err.source().expect("the I/O error is kept");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
}
