//! Properties of the barrier: whatever is put reads back unchanged, and a stored value
//! altered in any one bit, or moved to another path, never opens.

use std::sync::Arc;

use hsm_bridge::ShamirRoot;
use proptest::prelude::*;

use super::Barrier;
use crate::error::EngineError;
use crate::storage::{Backend, Batch, MemoryBackend, Storage};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An initialised barrier over fresh memory, with the memory to tamper with.
fn barrier(rt: &tokio::runtime::Runtime) -> (Barrier, Arc<MemoryBackend>) {
    let mem = Arc::new(MemoryBackend::new());
    let barrier = Barrier::new(Storage::new(mem.clone()));
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    rt.block_on(barrier.initialize(&root)).unwrap();
    (barrier, mem)
}

/// Storage paths as the engine writes them: segments of printable characters.
fn path() -> impl Strategy<Value = String> {
    "[a-z0-9_.-]{1,12}(/[a-zA-Z0-9_.-]{1,12}){0,3}"
}

/// Replaces what storage holds at `path` behind the barrier's back.
fn store_raw(rt: &tokio::runtime::Runtime, barrier: &Barrier, path: &str, raw: Vec<u8>) {
    let mut batch = Batch::new();
    batch.put(path, raw);
    rt.block_on(barrier.storage().commit(batch)).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_value_reads_back_as_written(
        path in path(),
        value in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let rt = runtime();
        let (barrier, _) = barrier(&rt);
        let mut batch = barrier.batch().unwrap();
        batch.put(&path, &value).unwrap();
        rt.block_on(barrier.commit(batch)).unwrap();
        let read = barrier.get(&path).unwrap().unwrap();
        prop_assert_eq!(read.as_slice(), value.as_slice());
    }

    #[test]
    fn any_bit_flip_is_refused(
        path in path(),
        value in proptest::collection::vec(any::<u8>(), 0..256),
        bit in any::<prop::sample::Index>(),
    ) {
        let rt = runtime();
        let (barrier, mem) = barrier(&rt);
        let mut batch = barrier.batch().unwrap();
        batch.put(&path, &value).unwrap();
        rt.block_on(barrier.commit(batch)).unwrap();
        let mut raw = mem.get(&path).unwrap().unwrap();
        let bit = bit.index(raw.len() * 8);
        raw[bit / 8] ^= 1 << (bit % 8);
        store_raw(&rt, &barrier, &path, raw);
        prop_assert!(matches!(barrier.get(&path), Err(EngineError::Corrupt(_))));
    }

    #[test]
    fn a_value_moved_to_another_path_is_refused(
        from in path(),
        to in path(),
        value in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        prop_assume!(from != to);
        let rt = runtime();
        let (barrier, mem) = barrier(&rt);
        let mut batch = barrier.batch().unwrap();
        batch.put(&from, &value).unwrap();
        rt.block_on(barrier.commit(batch)).unwrap();
        let raw = mem.get(&from).unwrap().unwrap();
        store_raw(&rt, &barrier, &to, raw);
        prop_assert!(matches!(barrier.get(&to), Err(EngineError::Corrupt(_))));
    }
}
