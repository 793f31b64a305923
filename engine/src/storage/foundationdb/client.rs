//! The product's FoundationDB: the `foundationdb` crate behind the transaction trait.
//! The trait is synchronous, as [`Backend`] is: each call waits for its future.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};
use foundationdb::options::{MutationType, StreamingMode, TransactionOption};
use foundationdb::{FdbError, RangeOption};
use futures::executor::block_on;
use futures::{FutureExt, TryStreamExt};

use super::layout::Range;
use super::txn::{Database, KeyValue, Transaction, TxError, Watch};
use super::{Backend, FdbStore, StorageError};

/// The API version the bindings are built for (the crate's `fdb-7_3` headers); a cluster
/// file's client library must support it.
pub const HEADER_API_VERSION: i32 = 730;
/// FoundationDB's own limit on a transaction's life; past it a commit cannot succeed.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// `storage "foundationdb" { cluster_file, prefix, api_version }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbConfig {
    /// `None`: the client library's default (`FDB_CLUSTER_FILE`, then
    /// `/etc/foundationdb/fdb.cluster`).
    pub cluster_file: Option<PathBuf>,
    /// This appliance's keyspace in the cluster; others use other prefixes.
    pub prefix: String,
    /// The API version selected at start, at most [`HEADER_API_VERSION`].
    pub api_version: i32,
}

/// The client's network thread can be started once per process only.
static NETWORK_STARTED: AtomicBool = AtomicBool::new(false);

struct Client {
    // Declared first, so dropped before the network it runs on is stopped.
    db: foundationdb::Database,
    _network: NetworkAutoStop,
}

/// A transaction, or one whose commit failed: kept as the crate returns it, so that
/// `on_error` backs off from where that transaction's retries got to.
pub(crate) enum Tx {
    Open(foundationdb::Transaction),
    Failed(foundationdb::TransactionCommitError),
}

impl Tx {
    /// The transaction to use. A failed commit's transaction is used again only after
    /// `on_error`, which the retry loop always calls first.
    fn open(&mut self) -> Result<&foundationdb::Transaction, TxError> {
        match self {
            Tx::Open(tx) => Ok(tx),
            Tx::Failed(e) => Err(tx_error(**e)),
        }
    }
}

fn tx_error(e: FdbError) -> TxError {
    TxError {
        code: e.code(),
        message: e.message(),
    }
}

fn start_network(api_version: i32) -> Result<NetworkAutoStop, StorageError> {
    let failed = super::failed("client start");
    if api_version > HEADER_API_VERSION {
        return Err(StorageError::FoundationDb {
            context: "client start",
            code: 2201,
            message: "api_version is newer than the bindings this build has (730)",
        });
    }
    if NETWORK_STARTED.swap(true, Ordering::SeqCst) {
        return Err(StorageError::FoundationDb {
            context: "client start",
            code: 2009,
            message: "the FoundationDB network was already started in this process",
        });
    }
    let network = FdbApiBuilder::default()
        .set_runtime_version(api_version)
        .build()
        .map_err(|e| failed(tx_error(e)))?;
    boot(network).map_err(|e| super::failed("client start")(tx_error(e)))
}

/// Starts the client's network thread.
// SAFETY: the returned guard stops the network thread when dropped; it is kept in the
// backend, which the daemon holds until it returns from `main`. Should the process exit
// without dropping it (a signal, `exit`), nothing runs after the network thread stops
// uncleanly, which the crate documents as safe only for an abort: a known gap of the
// crate's design, not something the backend can close.
#[allow(unsafe_code)]
fn boot(network: foundationdb::api::NetworkBuilder) -> Result<NetworkAutoStop, FdbError> {
    unsafe { network.boot() }
}

/// Connects to the cluster `config` names, as this appliance's keyspace under its prefix.
pub fn open(config: &FdbConfig) -> Result<Arc<dyn Backend>, StorageError> {
    let cluster = FdbCluster::connect(config.cluster_file.as_deref(), config.api_version)?;
    Ok(cluster.keyspace(&config.prefix))
}

/// A connection to one cluster, which can hold several keyspaces (one per prefix).
#[derive(Clone)]
pub struct FdbCluster(Arc<Client>);

impl FdbCluster {
    /// Starts the client (once per process) and opens the cluster: `cluster_file`, or
    /// the client's default.
    pub fn connect(
        cluster_file: Option<&std::path::Path>,
        api_version: i32,
    ) -> Result<Self, StorageError> {
        let network = start_network(api_version)?;
        let path = cluster_file.map(|p| p.to_string_lossy().into_owned());
        let db = foundationdb::Database::new(path.as_deref())
            .map_err(|e| super::failed("open")(tx_error(e)))?;
        Ok(FdbCluster(Arc::new(Client {
            db,
            _network: network,
        })))
    }

    /// The keyspace under `prefix`, as a storage backend.
    pub fn keyspace(&self, prefix: &str) -> Arc<dyn Backend> {
        Arc::new(FdbStore::new(self.clone(), prefix))
    }
}

impl Database for FdbCluster {
    type Tx = Tx;

    fn begin(&self) -> Result<Tx, TxError> {
        self.0.begin()
    }
}

impl Client {
    fn begin(&self) -> Result<Tx, TxError> {
        let tx = self.db.create_trx().map_err(tx_error)?;
        tx.set_option(TransactionOption::Timeout(
            TRANSACTION_TIMEOUT.as_millis() as i32
        ))
        .map_err(tx_error)?;
        Ok(Tx::Open(tx))
    }
}

impl Transaction for Tx {
    fn get(&mut self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>, TxError> {
        block_on(self.open()?.get(key, snapshot))
            .map(|v| v.map(|s| s.to_vec()))
            .map_err(tx_error)
    }

    fn get_ranges(
        &mut self,
        ranges: &[Range],
        snapshot: bool,
    ) -> Result<Vec<Vec<KeyValue>>, TxError> {
        let tx = self.open()?;
        let reads = ranges.iter().map(|(begin, end)| {
            let option = RangeOption {
                mode: StreamingMode::WantAll,
                ..RangeOption::from((begin.as_slice(), end.as_slice()))
            };
            tx.get_ranges_keyvalues(option, snapshot)
                .map_ok(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                .try_collect::<Vec<_>>()
        });
        block_on(futures::future::try_join_all(reads)).map_err(tx_error)
    }

    fn read_version(&mut self) -> Result<i64, TxError> {
        block_on(self.open()?.get_read_version()).map_err(tx_error)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        if let Tx::Open(tx) = self {
            tx.set(key, value);
        }
    }

    fn clear(&mut self, key: &[u8]) {
        if let Tx::Open(tx) = self {
            tx.clear(key);
        }
    }

    fn clear_range(&mut self, (begin, end): &Range) {
        if let Tx::Open(tx) = self {
            tx.clear_range(begin, end);
        }
    }

    fn add(&mut self, key: &[u8], by: i64) {
        if let Tx::Open(tx) = self {
            tx.atomic_op(key, &by.to_le_bytes(), MutationType::Add);
        }
    }

    fn set_versionstamped_key(&mut self, prefix: &[u8], value: &[u8]) {
        // The placeholder for the stamp, then where it starts (API version 520 on).
        let mut key = prefix.to_vec();
        key.extend_from_slice(&[0xff; 10]);
        key.extend_from_slice(&(prefix.len() as u32).to_le_bytes());
        if let Tx::Open(tx) = self {
            tx.atomic_op(&key, value, MutationType::SetVersionstampedKey);
        }
    }

    fn watch(&mut self, key: &[u8]) -> Watch {
        match self.open() {
            Ok(tx) => Box::pin(tx.watch(key).map(|r| r.map_err(tx_error))),
            Err(e) => Box::pin(futures::future::ready(Err(e))),
        }
    }

    fn commit(self) -> Result<(), (Self, TxError)> {
        match self {
            Tx::Open(tx) => match block_on(tx.commit()) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let error = tx_error(*e);
                    Err((Tx::Failed(e), error))
                }
            },
            Tx::Failed(e) => {
                let error = tx_error(*e);
                Err((Tx::Failed(e), error))
            }
        }
    }

    fn on_error(self, error: TxError) -> Result<Self, TxError> {
        let retried = match self {
            Tx::Open(tx) => block_on(tx.on_error(FdbError::from_code(error.code))),
            Tx::Failed(e) => block_on(e.on_error()),
        };
        retried.map(Tx::Open).map_err(tx_error)
    }
}
