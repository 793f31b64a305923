//! An in-process model of FoundationDB's transactions, for the backend's tests: MVCC
//! snapshots at a read version, read-your-writes, conflicts at commit between this
//! transaction's read ranges and the write ranges of everything committed since its read
//! version, the size limits (key 10 kB, value 100 kB, transaction 10 MB) and the 5 s
//! lifetime, versionstamps, watches, and faults: retryable errors injected at random
//! from a seed, and `commit_unknown_result` with the commit landed or not.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::layout::Range;
use super::super::txn::{Database, KeyValue, Transaction, TxError, Watch};

type Map = BTreeMap<Vec<u8>, Arc<Vec<u8>>>;

const KEY_LIMIT: usize = 10_000;
const VALUE_LIMIT: usize = 100_000;
const TRANSACTION_LIMIT: usize = 10_000_000;
const LIFETIME: Duration = Duration::from_secs(5);
/// Commits whose write ranges are kept for conflict checks; older read versions are
/// `transaction_too_old`, as past FoundationDB's 5 s MVCC window.
const HISTORY: usize = 100_000;

fn error(code: i32) -> TxError {
    let message = match code {
        1007 => "transaction_too_old",
        1009 => "future_version",
        1020 => "not_committed",
        1021 => "commit_unknown_result",
        1037 => "process_behind",
        2101 => "transaction_too_large",
        2102 => "key_too_large",
        2103 => "value_too_large",
        _ => "unknown_error",
    };
    TxError { code, message }
}

/// Retried by FoundationDB's `on_error`.
fn retryable(code: i32) -> bool {
    matches!(code, 1007 | 1009 | 1020 | 1021 | 1037 | 1039)
}

/// What faults to inject, and what happened.
#[derive(Default, Clone, Copy, Debug)]
pub struct Faults {
    /// Chance that a read, or a commit, fails with a retryable error.
    pub retryable: f64,
    /// Chance that a commit answers `commit_unknown_result` (landed half the time).
    pub unknown: f64,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct Counts {
    pub commits: u64,
    pub conflicts: u64,
    pub injected: u64,
    pub unknown_landed: u64,
    pub unknown_lost: u64,
}

struct State {
    data: Arc<Map>,
    version: i64,
    /// (commit version, write conflict ranges), oldest first.
    history: VecDeque<(i64, Vec<Range>)>,
    rng: StdRng,
    faults: Faults,
    /// The next commits' unknown results, in order: `true` landed.
    scripted_unknown: VecDeque<bool>,
    counts: Counts,
}

/// One cluster; every clone is a client of the same one (a node).
#[derive(Clone)]
pub struct Model {
    state: Arc<Mutex<State>>,
    commits: Arc<tokio::sync::watch::Sender<i64>>,
}

impl Model {
    pub fn new(seed: u64, faults: Faults) -> Self {
        Model {
            state: Arc::new(Mutex::new(State {
                data: Arc::new(Map::new()),
                version: 1,
                history: VecDeque::new(),
                rng: StdRng::seed_from_u64(seed),
                faults,
                scripted_unknown: VecDeque::new(),
                counts: Counts::default(),
            })),
            commits: Arc::new(tokio::sync::watch::channel(1).0),
        }
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().counts
    }

    /// The next commit that writes answers `commit_unknown_result`, having landed or not.
    pub fn script_unknown(&self, landed: bool) {
        self.state.lock().scripted_unknown.push_back(landed);
    }

    /// Moves the cluster's version on, as time passing does.
    pub fn advance(&self, versions: i64) {
        self.state.lock().version += versions;
    }

    /// Sets `key` outside any transaction, as the cluster itself sets its special keys.
    pub fn set_special(&self, key: &[u8], value: &[u8]) {
        let mut state = self.state.lock();
        Arc::make_mut(&mut state.data).insert(key.to_vec(), Arc::new(value.to_vec()));
    }

    /// Every pair stored, for tests that look at the raw keyspace.
    pub fn dump(&self) -> Vec<KeyValue> {
        self.state
            .lock()
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.to_vec()))
            .collect()
    }

    /// A fault of chance `p`, counted.
    fn roll(state: &mut State, p: f64) -> bool {
        let hit = p > 0.0 && state.rng.gen_bool(p.min(1.0));
        if hit {
            state.counts.injected += 1;
        }
        hit
    }
}

enum Mutation {
    Set(Vec<u8>, Vec<u8>),
    Clear(Range),
    Add(Vec<u8>, i64),
    Stamped(Vec<u8>, Vec<u8>),
}

pub struct ModelTx {
    model: Model,
    started: Instant,
    /// Read version and the snapshot there, from the first read on.
    snapshot: Option<(i64, Arc<Map>)>,
    /// The snapshot with this transaction's own writes (read-your-writes).
    view: Option<Map>,
    mutations: Vec<Mutation>,
    reads: Vec<Range>,
    writes: Vec<Range>,
    bytes: usize,
    /// A limit broken by a write: the commit fails with it.
    broken: Option<TxError>,
}

fn point(key: &[u8]) -> Range {
    let mut end = key.to_vec();
    end.push(0);
    (key.to_vec(), end)
}

fn overlaps(a: &Range, b: &Range) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn apply(map: &mut Map, mutation: &Mutation, version: i64) {
    match mutation {
        Mutation::Set(k, v) => {
            map.insert(k.clone(), Arc::new(v.clone()));
        }
        Mutation::Clear((begin, end)) => {
            let doomed: Vec<_> = map
                .range::<Vec<u8>, _>((Bound::Included(begin), Bound::Excluded(end)))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                map.remove(&k);
            }
        }
        Mutation::Add(k, by) => {
            let mut bytes = [0u8; 8];
            if let Some(old) = map.get(k) {
                for (b, o) in bytes.iter_mut().zip(old.iter()) {
                    *b = *o;
                }
            }
            let sum = i64::from_le_bytes(bytes).wrapping_add(*by);
            map.insert(k.clone(), Arc::new(sum.to_le_bytes().to_vec()));
        }
        Mutation::Stamped(prefix, v) => {
            let mut key = prefix.clone();
            key.extend_from_slice(&version.to_be_bytes());
            key.extend_from_slice(&0u16.to_be_bytes());
            map.insert(key, Arc::new(v.clone()));
        }
    }
}

impl ModelTx {
    fn new(model: Model) -> Self {
        ModelTx {
            model,
            started: Instant::now(),
            snapshot: None,
            view: None,
            mutations: Vec::new(),
            reads: Vec::new(),
            writes: Vec::new(),
            bytes: 0,
            broken: None,
        }
    }

    /// Takes the read version on the first read; may fail as a read can.
    fn start_read(&mut self) -> Result<(), TxError> {
        if self.started.elapsed() > LIFETIME {
            return Err(error(1007));
        }
        let mut state = self.model.state.lock();
        let p = state.faults.retryable / 2.0;
        if Model::roll(&mut state, p) {
            let code = [1007, 1009, 1037][state.rng.gen_range(0..3)];
            return Err(error(code));
        }
        if self.snapshot.is_none() {
            let snapshot = state.data.clone();
            let mut view = (*snapshot).clone();
            for m in &self.mutations {
                if !matches!(m, Mutation::Stamped(..)) {
                    apply(&mut view, m, 0);
                }
            }
            self.snapshot = Some((state.version, snapshot));
            self.view = Some(view);
        }
        Ok(())
    }

    fn view(&self) -> &Map {
        static EMPTY: Map = Map::new();
        self.view.as_ref().unwrap_or(&EMPTY)
    }

    fn mutate(&mut self, mutation: Mutation, conflict: Range, bytes: usize) {
        self.bytes += bytes + conflict.0.len() + conflict.1.len();
        self.writes.push(conflict);
        if let Some(view) = &mut self.view {
            if !matches!(mutation, Mutation::Stamped(..)) {
                apply(view, &mutation, 0);
            }
        }
        self.mutations.push(mutation);
    }

    fn limit_key(&mut self, key: &[u8]) {
        if key.len() > KEY_LIMIT {
            self.broken.get_or_insert(error(2102));
        }
    }
}

impl Database for Model {
    type Tx = ModelTx;

    fn begin(&self) -> Result<ModelTx, TxError> {
        Ok(ModelTx::new(self.clone()))
    }
}

impl Transaction for ModelTx {
    fn get(&mut self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>, TxError> {
        self.start_read()?;
        if !snapshot {
            self.reads.push(point(key));
        }
        Ok(self.view().get(key).map(|v| v.to_vec()))
    }

    fn get_ranges(
        &mut self,
        ranges: &[Range],
        snapshot: bool,
    ) -> Result<Vec<Vec<KeyValue>>, TxError> {
        self.start_read()?;
        if !snapshot {
            self.reads.extend(ranges.iter().cloned());
        }
        Ok(ranges
            .iter()
            .map(|(begin, end)| {
                self.view()
                    .range::<Vec<u8>, _>((Bound::Included(begin), Bound::Excluded(end)))
                    .map(|(k, v)| (k.clone(), v.to_vec()))
                    .collect()
            })
            .collect())
    }

    fn read_version(&mut self) -> Result<i64, TxError> {
        self.start_read()?;
        Ok(self.snapshot.as_ref().map_or(0, |(v, _)| *v))
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.limit_key(key);
        if value.len() > VALUE_LIMIT {
            self.broken.get_or_insert(error(2103));
        }
        let bytes = key.len() + value.len();
        self.mutate(
            Mutation::Set(key.to_vec(), value.to_vec()),
            point(key),
            bytes,
        );
    }

    fn clear(&mut self, key: &[u8]) {
        self.limit_key(key);
        self.mutate(Mutation::Clear(point(key)), point(key), key.len());
    }

    fn clear_range(&mut self, range: &Range) {
        let bytes = range.0.len() + range.1.len();
        self.mutate(Mutation::Clear(range.clone()), range.clone(), bytes);
    }

    fn add(&mut self, key: &[u8], by: i64) {
        self.limit_key(key);
        self.mutate(Mutation::Add(key.to_vec(), by), point(key), key.len() + 8);
    }

    fn set_versionstamped_key(&mut self, prefix: &[u8], value: &[u8]) {
        self.limit_key(prefix);
        // The stamped key is not known before the commit; its conflict range is added then.
        let bytes = prefix.len() + 10 + value.len();
        self.bytes += bytes;
        self.mutations
            .push(Mutation::Stamped(prefix.to_vec(), value.to_vec()));
    }

    fn watch(&mut self, key: &[u8]) -> Watch {
        let model = self.model.clone();
        let key = key.to_vec();
        let at_read = self
            .snapshot
            .as_ref()
            .and_then(|(_, snap)| snap.get(&key).cloned());
        let mut commits = model.commits.subscribe();
        Box::pin(async move {
            loop {
                let changed = model.state.lock().data.get(&key) != at_read.as_ref();
                if changed {
                    return Ok(());
                }
                if commits.changed().await.is_err() {
                    return Err(error(1101));
                }
            }
        })
    }

    fn commit(mut self) -> Result<(), (Self, TxError)> {
        if let Some(e) = self.broken {
            return Err((self, e));
        }
        if self.started.elapsed() > LIFETIME {
            return Err((self, error(1007)));
        }
        if self.mutations.is_empty() {
            // Read-only: nothing to check or write.
            return Ok(());
        }
        let conflict_bytes: usize = self.reads.iter().map(|r| r.0.len() + r.1.len()).sum();
        if self.bytes + conflict_bytes > TRANSACTION_LIMIT {
            return Err((self, error(2101)));
        }
        let model = self.model.clone();
        let mut state = model.state.lock();
        let read_version = match &self.snapshot {
            Some((v, _)) => *v,
            // Blind writes take their read version at commit: nothing to conflict with.
            None => state.version,
        };
        if state
            .history
            .front()
            .is_some_and(|(oldest, _)| read_version < *oldest - 1)
            && state.history.len() >= HISTORY
        {
            return Err((self, error(1007)));
        }
        let conflicted = state.history.iter().any(|(version, writes)| {
            *version > read_version
                && writes
                    .iter()
                    .any(|w| self.reads.iter().any(|r| overlaps(w, r)))
        });
        if conflicted {
            state.counts.conflicts += 1;
            return Err((self, error(1020)));
        }
        let p = state.faults.retryable / 2.0;
        if Model::roll(&mut state, p) {
            return Err((self, error(1020)));
        }
        let unknown = match state.scripted_unknown.pop_front() {
            Some(landed) => Some(landed),
            None => {
                let p = state.faults.unknown;
                Model::roll(&mut state, p).then(|| state.rng.gen_bool(0.5))
            }
        };
        if unknown == Some(false) {
            state.counts.unknown_lost += 1;
            return Err((self, error(1021)));
        }
        state.version += 1;
        let version = state.version;
        let mut writes = std::mem::take(&mut self.writes);
        let data = Arc::make_mut(&mut state.data);
        for m in &self.mutations {
            apply(data, m, version);
            if let Mutation::Stamped(prefix, _) = m {
                let mut key = prefix.clone();
                key.extend_from_slice(&version.to_be_bytes());
                key.extend_from_slice(&0u16.to_be_bytes());
                writes.push(point(&key));
            }
        }
        state.history.push_back((version, writes));
        if state.history.len() > HISTORY {
            state.history.pop_front();
        }
        state.counts.commits += 1;
        if unknown == Some(true) {
            state.counts.unknown_landed += 1;
        }
        drop(state);
        model.commits.send_replace(version);
        match unknown {
            Some(_) => Err((self, error(1021))),
            None => Ok(()),
        }
    }

    fn on_error(self, e: TxError) -> Result<Self, TxError> {
        if retryable(e.code) {
            Ok(ModelTx::new(self.model))
        } else {
            Err(e)
        }
    }
}
