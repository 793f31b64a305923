use super::*;
use crate::storage::{Applied, Backend, Batch, MemoryBackend, Storage, StorageError};
use hsm_bridge::ShamirRoot;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

async fn engine() -> KvEngine {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let barrier = Arc::new(Barrier::new(storage));
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    barrier.initialize(&root).await.unwrap();
    KvEngine::new(barrier, "logical/test/".into())
}

fn data(v: serde_json::Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn clever_delete_semantics() {
    let kv = engine().await;
    kv.write("u", data(json!({"a": 1})), None).await.unwrap();
    kv.write("u", data(json!({"a": 2})), None).await.unwrap();
    assert_eq!(kv.read("u", None).unwrap().version, 2);
    kv.delete_latest("u").await.unwrap();
    let r = kv.read("u", None).unwrap();
    assert_eq!((r.version, r.data.unwrap()["a"].clone()), (1, json!(1)));
    kv.delete_latest("u").await.unwrap();
    assert!(matches!(kv.read("u", None), Err(EngineError::NotFound(_))));
    kv.undelete("u", &[2]).await.unwrap();
    assert_eq!(kv.read("u", None).unwrap().version, 2);
    assert!(kv.read("u", Some(1)).unwrap().data.is_none());
    kv.destroy("u", &[1]).await.unwrap();
    kv.undelete("u", &[1]).await.unwrap();
    let v1 = kv.read("u", Some(1)).unwrap();
    assert!(v1.data.is_none() && v1.meta.destroyed);
    assert!(kv.read("u", Some(2)).unwrap().data.is_some());
}

#[tokio::test]
async fn cas_and_max_versions() {
    let kv = engine().await;
    kv.write("k", data(json!({"x": 1})), Some(0)).await.unwrap();
    assert!(kv.write("k", data(json!({"x": 2})), Some(0)).await.is_err());
    kv.write("k", data(json!({"x": 2})), Some(1)).await.unwrap();
    kv.write_metadata(
        "k",
        MetadataUpdate {
            max_versions: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    kv.write("k", data(json!({"x": 3})), None).await.unwrap();
    let meta = kv.metadata("k").unwrap();
    assert_eq!(
        meta.versions.keys().copied().collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(meta.oldest_version, 2);
    assert!(kv.read("k", Some(1)).is_err());
}

#[tokio::test]
async fn patch_merges_and_list_shows_folders() {
    let kv = engine().await;
    kv.write("app/db", data(json!({"user": "a", "pw": "b"})), None)
        .await
        .unwrap();
    kv.patch("app/db", data(json!({"pw": null, "host": "h"})), None)
        .await
        .unwrap();
    let d = kv.read("app/db", None).unwrap().data.unwrap();
    assert_eq!(Value::Object(d), json!({"user": "a", "host": "h"}));
    kv.write("top", data(json!({"a": 1})), None).await.unwrap();
    assert_eq!(kv.list("").unwrap(), vec!["app/", "top"]);
    assert_eq!(kv.list("app/").unwrap(), vec!["db"]);
    assert!(kv.patch("missing", Map::new(), None).await.is_err());
}

/// Two engines over one storage stand for two nodes: their per-path locks do not see
/// each other, so only the storage condition keeps a check-and-set honest.
async fn two_engines() -> (KvEngine, KvEngine) {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let barrier = Arc::new(Barrier::new(storage));
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    barrier.initialize(&root).await.unwrap();
    (
        KvEngine::new(barrier.clone(), "logical/test/".into()),
        KvEngine::new(barrier, "logical/test/".into()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_set_holds_across_writers_that_share_no_lock() {
    let (a, b) = two_engines().await;
    for round in 0..20 {
        let path = format!("k{round}");
        let (ra, rb) = tokio::join!(
            a.write(&path, data(json!({"by": "a"})), Some(0)),
            b.write(&path, data(json!({"by": "b"})), Some(0)),
        );
        let oks = [ra.is_ok(), rb.is_ok()];
        assert_eq!(oks.iter().filter(|ok| **ok).count(), 1, "round {round}");
        for r in [ra, rb] {
            if let Err(e) = r {
                assert!(matches!(e, EngineError::BadRequest(_)), "{e}");
            }
        }
        let meta = a.metadata(&path).unwrap();
        assert_eq!(meta.current_version, 1);
        let winner = if oks[0] { "a" } else { "b" };
        let read = b.read(&path, None).unwrap().data.unwrap();
        assert_eq!(read["by"], json!(winner));
    }
}

async fn write_ten(kv: &KvEngine, who: &str) {
    for i in 0..10 {
        kv.write("shared", data(json!({"by": who, "i": i})), None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_that_share_no_lock_lose_no_version() {
    let (a, b) = two_engines().await;
    tokio::join!(write_ten(&a, "a"), write_ten(&b, "b"));
    let meta = a.metadata("shared").unwrap();
    assert_eq!(meta.current_version, 20);
    assert_eq!(meta.versions.len() as u64, DEFAULT_MAX_VERSIONS);
}

#[tokio::test]
async fn undelete_and_destroy_apply_to_what_storage_holds() {
    let (a, b) = two_engines().await;
    a.write("p", data(json!({"x": 1})), None).await.unwrap();
    a.write("p", data(json!({"x": 2})), None).await.unwrap();
    b.delete_versions("p", &[2]).await.unwrap();
    a.destroy("p", &[1]).await.unwrap();
    let meta = b.metadata("p").unwrap();
    assert!(meta.versions[&1].destroyed);
    assert!(meta.versions[&2].deletion_time.is_some());
    b.undelete("p", &[2]).await.unwrap();
    assert_eq!(a.read("p", None).unwrap().version, 2);
    b.delete_metadata("p").await.unwrap();
    assert!(a.metadata("p").is_err());
}

/// A store that counts the reads reaching it.
#[derive(Default)]
struct CountedReads {
    inner: MemoryBackend,
    gets: AtomicUsize,
}

impl Backend for CountedReads {
    fn get(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, StorageError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn list(&self, prefix: &str) -> std::result::Result<Vec<String>, StorageError> {
        self.inner.list(prefix)
    }

    fn apply(&self, batches: &[Batch]) -> std::result::Result<Applied, StorageError> {
        self.inner.apply(batches)
    }

    fn kind(&self) -> &'static str {
        "counted"
    }
}

/// On a shared store every read is a round trip: a write to a new path reads only what
/// its existence check reads (the path's metadata, found absent), as the write's own
/// transaction takes that absence, and the mount's unset configuration, from the cache.
#[tokio::test]
async fn a_write_to_a_new_path_reads_storage_once() {
    let store = Arc::new(CountedReads::default());
    let barrier = Arc::new(Barrier::new(Storage::new(store.clone())));
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    barrier.initialize(&root).await.unwrap();
    let kv = KvEngine::new(barrier, "logical/test/".into());
    kv.write("first", data(json!({"v": 1})), None)
        .await
        .unwrap();
    let before = store.gets.load(Ordering::SeqCst);
    assert!(!kv.exists("second").unwrap());
    kv.write("second", data(json!({"v": 2})), None)
        .await
        .unwrap();
    assert_eq!(store.gets.load(Ordering::SeqCst) - before, 1);
    assert_eq!(
        kv.read("second", None).unwrap().data,
        Some(data(json!({"v": 2})))
    );
}
