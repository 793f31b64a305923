use super::*;

fn counter(v: Option<Vec<u8>>) -> u64 {
    v.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

struct Memory(Arc<MemoryBackend>);

impl conformance::Fixture for Memory {
    fn open(&mut self) -> Arc<dyn Backend> {
        self.0.clone()
    }
}

#[test]
fn the_memory_backend_conforms() {
    conformance::run(|| Memory(Arc::new(MemoryBackend::new())));
}

struct Redb(tempfile::TempDir);

impl conformance::Fixture for Redb {
    fn open(&mut self) -> Arc<dyn Backend> {
        Arc::new(RedbBackend::open(&self.0.path().join("db")).unwrap())
    }

    fn durable(&self) -> bool {
        true
    }
}

#[test]
fn the_redb_backend_conforms() {
    conformance::run(|| Redb(tempfile::tempdir().unwrap()));
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

/// A shared store's round trip on the only async worker: the worker's other tasks move to
/// another thread while it waits, so they answer before it does.
#[test]
fn a_storage_wait_leaves_the_worker_to_other_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (entered, waiting) = tokio::sync::oneshot::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocked = tokio::spawn(async move {
            off_the_workers(|| {
                let _ = entered.send(());
                wait.recv()
            })
        });
        waiting.await.unwrap();
        let other = tokio::spawn(async { "answered" });
        let answer = tokio::time::timeout(std::time::Duration::from_secs(30), other).await;
        release.send(()).unwrap();
        assert_eq!(
            answer
                .expect("the other task waited for the blocked one")
                .unwrap(),
            "answered"
        );
        blocked.await.unwrap().unwrap();
    });
}

/// Where tasks cannot move (a current-thread runtime), the wait simply blocks.
#[tokio::test]
async fn a_storage_wait_on_a_current_thread_runtime_just_blocks() {
    assert_eq!(off_the_workers(|| 7), 7);
}

#[test]
fn a_full_or_read_only_volume_is_named_however_deep_the_cause() {
    let io = |errno| StorageError::Io {
        context: "appending to the write-ahead log",
        source: std::io::Error::from_raw_os_error(errno),
    };
    let full = StorageError::Commit(Arc::new(io(28)));
    assert!(full
        .volume_fault()
        .is_some_and(|m| m.starts_with("storage is full")));
    let read_only = StorageError::Inconsistent(Arc::new(io(30)));
    assert!(read_only
        .volume_fault()
        .is_some_and(|m| m.starts_with("storage is read-only")));
    assert_eq!(
        io(5).volume_fault(),
        None,
        "EIO says nothing the operator can fix"
    );
    assert_eq!(
        crate::error::EngineError::Storage(full).public_message(),
        "storage is full: writes are refused until space is freed on the storage volume"
    );
    assert_eq!(
        crate::error::EngineError::Storage(io(5)).public_message(),
        "internal error"
    );
}
