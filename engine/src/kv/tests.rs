use super::*;
use crate::storage::{MemoryBackend, Storage};
use hsm_bridge::ShamirRoot;
use serde_json::json;

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
