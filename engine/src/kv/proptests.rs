//! kv v2's version arithmetic against a model small enough to be obviously right:
//! writes number versions from one, `max_versions` keeps the newest, deletes and
//! undeletes toggle a flag that destroy ends for good, and a read without a version
//! returns the newest live one.

use std::collections::BTreeMap;
use std::sync::Arc;

use hsm_bridge::ShamirRoot;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{KvEngine, MetadataUpdate, DEFAULT_MAX_VERSIONS};
use crate::barrier::Barrier;
use crate::error::EngineError;
use crate::storage::{MemoryBackend, Storage};

const PATH: &str = "app/key";

#[derive(Debug, Clone)]
enum Step {
    Write(u32),
    DeleteLatest,
    Delete(Vec<u64>),
    Undelete(Vec<u64>),
    Destroy(Vec<u64>),
    MaxVersions(u64),
}

fn versions() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(1u64..16, 0..4)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<u32>().prop_map(Step::Write),
        1 => Just(Step::DeleteLatest),
        1 => versions().prop_map(Step::Delete),
        1 => versions().prop_map(Step::Undelete),
        1 => versions().prop_map(Step::Destroy),
        1 => (0u64..5).prop_map(Step::MaxVersions),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Version {
    value: u32,
    deleted: bool,
    destroyed: bool,
}

impl Version {
    fn live(&self) -> bool {
        !self.deleted && !self.destroyed
    }
}

#[derive(Debug, Default)]
struct Model {
    current: u64,
    max_versions: u64,
    versions: BTreeMap<u64, Version>,
    exists: bool,
}

impl Model {
    fn trim(&mut self) {
        let max = if self.max_versions > 0 {
            self.max_versions
        } else {
            DEFAULT_MAX_VERSIONS
        };
        while self.versions.len() as u64 > max {
            self.versions.pop_first();
        }
    }

    fn latest_live(&self) -> Option<u64> {
        self.versions
            .iter()
            .rev()
            .find(|(_, v)| v.live())
            .map(|(n, _)| *n)
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Write(value) => {
                self.exists = true;
                self.current += 1;
                self.versions.insert(
                    self.current,
                    Version {
                        value: *value,
                        deleted: false,
                        destroyed: false,
                    },
                );
                self.trim();
            }
            Step::DeleteLatest => {
                if let Some(n) = self.latest_live() {
                    self.versions.entry(n).and_modify(|v| v.deleted = true);
                }
            }
            Step::Delete(ns) => {
                for n in ns {
                    self.versions
                        .entry(*n)
                        .and_modify(|v| v.deleted |= !v.destroyed);
                }
            }
            Step::Undelete(ns) => {
                for n in ns {
                    self.versions
                        .entry(*n)
                        .and_modify(|v| v.deleted &= v.destroyed);
                }
            }
            Step::Destroy(ns) => {
                for n in ns {
                    self.versions.entry(*n).and_modify(|v| v.destroyed = true);
                }
            }
            Step::MaxVersions(m) => {
                self.exists = true;
                self.max_versions = *m;
                self.trim();
            }
        }
    }
}

fn data(value: u32) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("value".into(), json!(value));
    m
}

async fn run(kv: &KvEngine, step: &Step) {
    let done = match step {
        Step::Write(value) => kv.write(PATH, data(*value), None).await.map(|_| ()),
        Step::DeleteLatest => kv.delete_latest(PATH).await,
        Step::Delete(ns) => kv.delete_versions(PATH, ns).await,
        Step::Undelete(ns) => kv.undelete(PATH, ns).await,
        Step::Destroy(ns) => kv.destroy(PATH, ns).await,
        Step::MaxVersions(m) => {
            let update = MetadataUpdate {
                max_versions: Some(*m),
                ..Default::default()
            };
            kv.write_metadata(PATH, update).await
        }
    };
    done.unwrap();
}

/// The engine's metadata and reads agree with the model.
fn check(kv: &KvEngine, model: &Model) -> Result<(), TestCaseError> {
    if !model.exists {
        prop_assert!(matches!(kv.metadata(PATH), Err(EngineError::NotFound(_))));
        return Ok(());
    }
    let meta = kv.metadata(PATH).unwrap();
    prop_assert_eq!(meta.current_version, model.current);
    prop_assert_eq!(
        meta.versions.keys().copied().collect::<Vec<_>>(),
        model.versions.keys().copied().collect::<Vec<_>>()
    );
    if let Some(&oldest) = model.versions.keys().next() {
        prop_assert_eq!(meta.oldest_version, oldest);
    }
    for (n, v) in &model.versions {
        let read = kv.read(PATH, Some(*n)).unwrap();
        prop_assert_eq!(read.meta.destroyed, v.destroyed, "version {}", n);
        prop_assert_eq!(
            read.meta.deletion_time.is_some(),
            v.deleted,
            "version {}",
            n
        );
        let expected = v.live().then(|| data(v.value));
        prop_assert_eq!(read.data, expected, "version {}", n);
    }
    match model.latest_live() {
        Some(n) => {
            let read = kv.read(PATH, None).unwrap();
            prop_assert_eq!(read.version, n);
            prop_assert_eq!(read.data, Some(data(model.versions[&n].value)));
        }
        None => prop_assert!(matches!(kv.read(PATH, None), Err(EngineError::NotFound(_)))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn versions_follow_the_model(steps in proptest::collection::vec(step(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let storage = Storage::new(Arc::new(MemoryBackend::new()));
        let barrier = Arc::new(Barrier::new(storage));
        let (root, _) = ShamirRoot::generate(1, 1).unwrap();
        rt.block_on(barrier.initialize(&root)).unwrap();
        let kv = KvEngine::new(barrier, "logical/prop/".into());
        let mut model = Model::default();
        for step in &steps {
            rt.block_on(run(&kv, step));
            model.apply(step);
            check(&kv, &model)?;
        }
    }
}
