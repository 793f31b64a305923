//! The keyspace in a PostgreSQL table, shared by every node configured with it.
//!
//! Layout: `<table> (key bytea primary key, value bytea)` holds what the barrier hands
//! down (ciphertext; keys compare bytewise, whatever the database's collation), and
//! `<table>_nodes (node, version, outcome)` holds one commit counter per running node.
//!
//! Writes: each group of batches is one round trip, a call of `<table>_apply`, a
//! function the backend (re)creates at start. It runs as the statement's own
//! `SERIALIZABLE` transaction (the writer connection's default isolation, which the
//! function checks): it checks each batch's conditions against the table as the batches
//! before it left it, writes the batches whose conditions hold, bumps the node's counter
//! to the number the backend gave it, records which batches failed beside the counter,
//! and sends `NOTIFY <table>` with the keys the group writes. A serialization failure
//! (40001) or deadlock (40P01) runs the whole group again after a randomised backoff.
//!
//! A connection lost while the call was in flight leaves the outcome unknown. The
//! backend then reconnects, waits until the old server process is gone (it may still be
//! committing), and reads its node's counter: every call names a number above any
//! earlier call's, so that number being there means the group was applied, and the
//! outcome beside it says which of its batches were. When the server cannot be
//! reached within [`RECONNECT_FOR`], the write fails with
//! [`StorageError::CommitUnknown`] and the group's keys are raised on this node's own
//! caches, so they read back whatever did happen.
//!
//! Coherence across nodes: every node `LISTEN`s on the channel and raises the keys other
//! nodes changed; it also reads every node's counter each [`VERSION_CHECK_EVERY`], and a
//! counter that moved without its notification arriving by the next check drops every
//! cache. So a lost notification (a listener reconnecting after a server restart) delays
//! coherence by at most [`COHERENCE_BOUND`].
//!
//! The [`Backend`] trait is synchronous; the connections live on a small runtime of the
//! backend's own, and each call blocks its caller for a round trip or a few, as a redb
//! read blocks for the disk. A caller on an async worker hands that worker's other tasks
//! to another thread first ([`super::off_the_workers`]), so a stalled database holds up
//! only the requests that wait for it. Every call gives up after [`RECONNECT_FOR`], also
//! when the server accepted the connection but stopped answering (a stopped process, a
//! network that drops packets): the call fails with [`StorageError::Unavailable`], or
//! with [`StorageError::CommitUnknown`] when its write was already on the wire.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Config, Statement};

use super::{
    off_the_workers, Applied, Backend, BackendFigures, Batch, Conflict, Invalidations, Op,
    StorageError,
};

/// How often every node's commit counter is read, to catch lost notifications.
pub const VERSION_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long after another node's commit this node's caches may still serve what that
/// commit replaced, when its notification is lost: two counter checks apart, plus the
/// check's round trip. Notifications normally make it milliseconds.
pub const COHERENCE_BOUND: Duration = Duration::from_secs(2);
/// How long an operation keeps reconnecting to an unreachable server, or waits for one
/// that stopped answering, before it fails.
pub const RECONNECT_FOR: Duration = Duration::from_secs(15);
/// Runs of one group after serialization failures before the write fails.
const MAX_SERIALIZATION_RETRIES: u32 = 12;
/// NOTIFY payloads must stay under 8000 bytes; past this the common prefix is sent.
const MAX_PAYLOAD: usize = 7000;
const DEFAULT_TABLE: &str = "ironseal_store";

/// `storage "postgresql" { ... }`.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://` URL or libpq `key=value` string; holds the password, so it is
    /// never logged or echoed (see [`redact`]).
    pub connection_url: String,
    /// The table holding the keyspace (`ironseal_store` unless set); several appliances
    /// share one database with a table each.
    pub table: Option<String>,
    /// A PEM CA bundle trusted for the server's certificate, besides the system's.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("connection_url", &redact(&self.connection_url))
            .field("table", &self.table)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// `url` with its password replaced by `***` (URL and `key=value` forms).
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => authority.to_string(),
            },
            None => authority.to_string(),
        };
        let tail = tail
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((k, _)) if k.trim_start_matches('?').eq_ignore_ascii_case("password") => {
                    format!("{k}=***")
                }
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
        return format!("{scheme}://{authority}{tail}");
    }
    url.split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table name the backend accepts: a plain SQL identifier, so it can be quoted and
/// suffixed (`_nodes`) without escaping.
fn valid_table(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 40
}

/// A failure of the server or of the request as [`StorageError::Remote`]; a lost or
/// refused connection, still so when the backend gives up reconnecting, as
/// [`StorageError::Unreachable`], which callers may retry.
fn remote(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StorageError {
    move |e| {
        if is_connection_error(&e) {
            StorageError::Unreachable {
                backend: "postgresql",
                context,
                source: Box::new(e),
            }
        } else {
            StorageError::Remote {
                backend: "postgresql",
                context,
                source: Box::new(e),
            }
        }
    }
}

/// A connection gone, or a server going away or not yet up: worth reconnecting.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P")
        }
    }
}

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    /// The server process serving it (and when it started, as pids are reused), to tell
    /// when a lost commit can no longer land.
    pid: i32,
    started: String,
    get: Statement,
    list_from: Statement,
    list_range: Statement,
    apply: Statement,
    versions: Statement,
    node_version: Statement,
    alive: Statement,
}

struct Shared {
    config: Config,
    /// `config` with `SERIALIZABLE` as the session's default isolation: each call of
    /// the apply function is a transaction of its own, with no `BEGIN` to name it.
    writer_config: Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    table: String,
    /// This node's row in `<table>_nodes` and the sender named in its notifications.
    node: String,
    /// Reads (pipelined on one connection) and the counter checks.
    reader: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// Transactions, on one connection: held by `turn` for the whole transaction.
    writer: tokio::sync::Mutex<Option<Arc<Conn>>>,
    turn: tokio::sync::Mutex<()>,
    invalidations: Mutex<Option<Arc<Invalidations>>>,
    /// Commit counters of other nodes as last heard (notification or check).
    heard: Mutex<HashMap<String, i64>>,
    /// The counter value the next write sets: above every value an earlier write may
    /// have set, so finding it after a lost connection means that write landed.
    next_version: AtomicI64,
    reachable: AtomicBool,
    last_commit_micros: AtomicU64,
}

pub struct PostgresBackend {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Ends the listener and checker tasks when the backend is dropped.
    _stop: tokio::sync::watch::Sender<()>,
}

impl PostgresBackend {
    /// Connects, creates the tables when missing, and starts listening for other nodes'
    /// commits.
    pub fn open(settings: &PostgresConfig) -> Result<Self, StorageError> {
        let mut config: Config =
            settings
                .connection_url
                .parse()
                .map_err(|_| StorageError::InvalidConfig {
                    message: format!(
                        "connection_url {} is neither a postgres:// URL nor a key=value string",
                        redact(&settings.connection_url)
                    ),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let table = settings
            .table
            .as_deref()
            .unwrap_or(DEFAULT_TABLE)
            .to_string();
        if !valid_table(&table) {
            return Err(StorageError::InvalidConfig {
                message: format!(
                    "table {table:?} must be a lowercase SQL identifier (letters, digits, _; at most 40)"
                ),
            });
        }
        let mut writer_config = config.clone();
        let serializable = "-c default_transaction_isolation=serializable";
        match config.get_options() {
            Some(options) => writer_config.options(format!("{options} {serializable}")),
            None => writer_config.options(serializable),
        };
        let tls = tls_connector(settings.tls_ca_file.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgresql")
            .enable_all()
            .build()
            .map_err(StorageError::io("starting the PostgreSQL client runtime"))?;
        let node = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let shared = Arc::new(Shared {
            config,
            writer_config,
            tls,
            table,
            node,
            reader: tokio::sync::Mutex::new(None),
            writer: tokio::sync::Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
            invalidations: Mutex::new(None),
            heard: Mutex::new(HashMap::new()),
            next_version: AtomicI64::new(1),
            reachable: AtomicBool::new(false),
            last_commit_micros: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::watch::channel(());
        let backend = PostgresBackend {
            shared: shared.clone(),
            runtime: Some(runtime),
            _stop: stop,
        };
        backend.block({
            let shared = shared.clone();
            async move { shared.create_tables().await }
        })?;
        // Start from every node's counter as it is, so the first check raises nothing.
        let versions = backend.block({
            let shared = shared.clone();
            async move { shared.versions().await }
        })?;
        shared.heard.lock().extend(versions);
        if let Some(rt) = &backend.runtime {
            rt.spawn(listen(shared.clone(), stopped.clone()));
            rt.spawn(check_versions(shared, stopped));
        }
        Ok(backend)
    }

    /// Runs `work` on the backend's runtime and waits for it: the caller may be on
    /// another runtime's worker thread, where blocking on a runtime is not allowed.
    fn block<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let Some(rt) = &self.runtime else {
            return Err(StorageError::WriterGone);
        };
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = done.send(work.await);
        });
        off_the_workers(|| wait.recv()).map_err(|_| StorageError::WriterGone)?
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Dropping a runtime blocks; the caller may be async.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StorageError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(StorageError::io("reading tls_ca_file"))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(StorageError::io("parsing tls_ca_file"))?;
            roots.add(cert).map_err(|_| StorageError::InvalidConfig {
                message: format!(
                    "tls_ca_file {} holds an unusable certificate",
                    path.display()
                ),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| StorageError::InvalidConfig {
        message: "no TLS protocol version available for PostgreSQL".into(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `CREATE OR REPLACE FUNCTION "<table>_apply"`: one group commit in one statement.
///
/// Takes the group's conditions and writes flattened, each batch's share ending at its
/// entry of `check_ends` and `op_ends` (1-based, inclusive); a `NULL` expected value is
/// an absent key, a `NULL` written value a delete. Answers, per batch, `NULL` when it
/// was applied or the 0-based index of the condition that failed, and the counter it
/// set (`NULL` when nothing was written, and then nothing is bumped or notified). The
/// serializable isolation it insists on is what makes a check and the writes after it
/// one step for every other node's writes; under a weaker one it refuses to run.
fn apply_function(t: &str) -> String {
    format!(
        r#"CREATE OR REPLACE FUNCTION "{t}_apply"(
    check_keys bytea[], check_values bytea[], check_ends int[],
    op_keys bytea[], op_values bytea[], op_ends int[],
    writer text, next_version bigint, changed text,
    OUT failed int[], OUT set_version bigint)
LANGUAGE plpgsql AS $apply$
DECLARE
    c int := 1;
    o int := 1;
    bad int;
    held bytea;
    wrote boolean := false;
BEGIN
    IF current_setting('transaction_isolation') <> 'serializable' THEN
        RAISE EXCEPTION '"{t}_apply" needs a serializable transaction';
    END IF;
    failed := '{{}}';
    FOR b IN 1 .. coalesce(array_length(check_ends, 1), 0) LOOP
        bad := NULL;
        WHILE c <= check_ends[b] LOOP
            IF bad IS NULL THEN
                SELECT s.value INTO held FROM "{t}" s WHERE s.key = check_keys[c];
                IF held IS DISTINCT FROM check_values[c] THEN
                    bad := c - 1;
                END IF;
            END IF;
            c := c + 1;
        END LOOP;
        failed := array_append(failed, bad);
        IF bad IS NULL THEN
            WHILE o <= op_ends[b] LOOP
                IF op_values[o] IS NULL THEN
                    DELETE FROM "{t}" s WHERE s.key = op_keys[o];
                ELSE
                    INSERT INTO "{t}" AS s (key, value) VALUES (op_keys[o], op_values[o])
                        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
                END IF;
                wrote := true;
                o := o + 1;
            END LOOP;
        END IF;
        o := op_ends[b] + 1;
    END LOOP;
    IF wrote THEN
        INSERT INTO "{t}_nodes" AS n (node, version, outcome) VALUES (writer, next_version, failed)
            ON CONFLICT (node) DO UPDATE
            SET version = greatest(n.version + 1, next_version), outcome = failed, updated_at = now()
            RETURNING n.version INTO set_version;
        PERFORM pg_notify('{t}', writer || ' ' || set_version || ' ' || changed);
    END IF;
END
$apply$"#
    )
}

/// The smallest key past every key that starts with `prefix`; `None`: no such bound.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// `work`, failed as [`StorageError::Unavailable`] when it has not finished by `deadline`.
async fn bounded<T>(
    context: &'static str,
    deadline: Instant,
    work: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    tokio::time::timeout_at(deadline.into(), work)
        .await
        .unwrap_or(Err(StorageError::Unavailable {
            backend: "postgresql",
            context,
            waited: RECONNECT_FOR,
        }))
}

fn key_string(bytes: Vec<u8>) -> Result<String, StorageError> {
    String::from_utf8(bytes).map_err(|_| StorageError::ForeignData {
        context: "a key in the PostgreSQL table is not UTF-8: is the table another program's?",
    })
}

impl Shared {
    async fn connect(&self, config: &Config) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            // Ends when the connection does; the client then reports it closed.
            let _ = connection.await;
        });
        self.prepare(client).await
    }

    async fn prepare(&self, client: Client) -> Result<Conn, tokio_postgres::Error> {
        let t = &self.table;
        let me = client
            .query_one(
                "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(Conn {
            pid: me.try_get(0)?,
            started: me.try_get(1)?,
            get: client
                .prepare(&format!("SELECT value FROM \"{t}\" WHERE key = $1"))
                .await?,
            list_from: client
                .prepare(&format!(
                    "SELECT key FROM \"{t}\" WHERE key >= $1 ORDER BY key"
                ))
                .await?,
            list_range: client
                .prepare(&format!(
                    "SELECT key FROM \"{t}\" WHERE key >= $1 AND key < $2 ORDER BY key"
                ))
                .await?,
            apply: client
                .prepare(&format!(
                    "SELECT failed, set_version FROM \"{t}_apply\"($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .await?,
            versions: client
                .prepare(&format!("SELECT node, version FROM \"{t}_nodes\""))
                .await?,
            node_version: client
                .prepare(&format!(
                    "SELECT version, outcome FROM \"{t}_nodes\" WHERE node = $1"
                ))
                .await?,
            alive: client
                .prepare(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2",
                )
                .await?,
            client,
        })
    }

    /// The connection in `slot`, (re)connecting while the server is unreachable, up to
    /// `deadline`.
    async fn conn(
        &self,
        slot: &tokio::sync::Mutex<Option<Arc<Conn>>>,
        deadline: Instant,
    ) -> Result<Arc<Conn>, StorageError> {
        let mut current = slot.lock().await;
        if let Some(c) = current.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(c.clone());
        }
        *current = None;
        let config = if std::ptr::eq(slot, &self.writer) {
            &self.writer_config
        } else {
            &self.config
        };
        let mut pause = Duration::from_millis(20);
        loop {
            match self.connect(config).await {
                Ok(c) => {
                    self.reachable.store(true, Ordering::Relaxed);
                    let c = Arc::new(c);
                    *current = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    self.reachable.store(false, Ordering::Relaxed);
                    if Instant::now() + pause > deadline
                        || (!is_connection_error(&e) && e.as_db_error().is_some())
                    {
                        return Err(remote("connecting to PostgreSQL")(e));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Drops `conn` from `slot` (when it is still there), so the next use reconnects:
    /// a server going away may answer with an error before the socket closes.
    async fn forget(&self, slot: &tokio::sync::Mutex<Option<Arc<Conn>>>, conn: &Arc<Conn>) {
        let mut current = slot.lock().await;
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *current = None;
        }
        // Give a restarting server a moment before the next attempt.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// After a call gave up waiting on `conn`: the server stopped answering on it, and
    /// a path that drops packets never recovers, so the next call connects afresh. When
    /// the slot is busy it is being refilled, without `conn`.
    fn discard(&self, slot: &tokio::sync::Mutex<Option<Arc<Conn>>>, conn: Option<Arc<Conn>>) {
        self.reachable.store(false, Ordering::Relaxed);
        if let (Some(conn), Ok(mut current)) = (conn, slot.try_lock()) {
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                *current = None;
            }
        }
    }

    /// Runs a read on the reader connection, again on a new one when the connection
    /// was lost (a read has no effect to repeat), for at most [`RECONNECT_FOR`].
    async fn read<T, F, Fut>(&self, context: &'static str, op: F) -> Result<T, StorageError>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let deadline = Instant::now() + RECONNECT_FOR;
        let mut used = None;
        let outcome = bounded(context, deadline, async {
            loop {
                let conn = self.conn(&self.reader, deadline).await?;
                used = Some(conn.clone());
                match op(conn.clone()).await {
                    Ok(v) => return Ok(v),
                    Err(e) if is_connection_error(&e) && Instant::now() < deadline => {
                        self.reachable.store(false, Ordering::Relaxed);
                        self.forget(&self.reader, &conn).await;
                    }
                    Err(e) => return Err(remote(context)(e)),
                }
            }
        })
        .await;
        if matches!(outcome, Err(StorageError::Unavailable { .. })) {
            self.discard(&self.reader, used);
        }
        outcome
    }

    /// Creates the tables when missing and (re)creates the apply function, under a lock
    /// so that nodes starting together take turns.
    async fn create_tables(&self) -> Result<(), StorageError> {
        let t = &self.table;
        let sql = format!(
            "SELECT pg_advisory_xact_lock(hashtext('ironseal:{t}')); \
             CREATE TABLE IF NOT EXISTS \"{t}\" (key bytea PRIMARY KEY, value bytea NOT NULL); \
             CREATE TABLE IF NOT EXISTS \"{t}_nodes\" (node text PRIMARY KEY, version bigint NOT NULL, \
               updated_at timestamptz NOT NULL DEFAULT now()); \
             ALTER TABLE \"{t}_nodes\" ADD COLUMN IF NOT EXISTS outcome int[]; \
             {apply}; \
             DELETE FROM \"{t}_nodes\" WHERE updated_at < now() - interval '30 days'",
            apply = apply_function(t),
        );
        let deadline = Instant::now() + RECONNECT_FOR;
        bounded("creating the PostgreSQL tables", deadline, async {
            let (client, connection) = loop {
                match self.config.connect(self.tls.clone()).await {
                    Ok(c) => break c,
                    Err(e) if is_connection_error(&e) && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(remote("connecting to PostgreSQL")(e)),
                }
            };
            tokio::spawn(async move {
                let _ = connection.await;
            });
            // Two nodes starting together may both create: the loser's error is a unique
            // violation on the catalog, and the tables exist when it runs again.
            let mut result = client.batch_execute(&sql).await;
            if matches!(&result, Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION)) {
                result = client.batch_execute(&sql).await;
            }
            result.map_err(remote("creating the PostgreSQL tables"))?;
            self.reachable.store(true, Ordering::Relaxed);
            Ok(())
        })
        .await
    }

    async fn versions(&self) -> Result<HashMap<String, i64>, StorageError> {
        self.read("reading the node counters", |c| async move {
            let rows = c.client.query(&c.versions, &[]).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)))
                .collect()
        })
        .await
    }

    /// Commits the group, for at most [`RECONNECT_FOR`]. Given up before its call was
    /// sent, nothing of it is applied; given up after, its outcome is unknown.
    async fn apply(self: Arc<Self>, batches: Vec<Batch>) -> Result<Applied, StorageError> {
        let _turn = self.turn.lock().await;
        let deadline = Instant::now() + RECONNECT_FOR;
        let mut used = None;
        let mut commit_sent = false;
        let outcome = tokio::time::timeout_at(
            deadline.into(),
            self.apply_until(&batches, deadline, &mut used, &mut commit_sent),
        )
        .await;
        match outcome {
            Ok(outcome) => outcome,
            Err(elapsed) => {
                self.discard(&self.writer, used);
                if commit_sent {
                    self.raise_own(&batches);
                    Err(StorageError::CommitUnknown {
                        source: Box::new(elapsed),
                    })
                } else {
                    Err(StorageError::Unavailable {
                        backend: "postgresql",
                        context: "writing",
                        waited: RECONNECT_FOR,
                    })
                }
            }
        }
    }

    async fn apply_until(
        &self,
        batches: &[Batch],
        deadline: Instant,
        used: &mut Option<Arc<Conn>>,
        commit_sent: &mut bool,
    ) -> Result<Applied, StorageError> {
        let group = Group::new(batches)?;
        let mut serialization_failures = 0;
        loop {
            let conn = self.conn(&self.writer, deadline).await?;
            *used = Some(conn.clone());
            let started = Instant::now();
            // Past every number an earlier call was given, landed or not.
            let version = self.next_version.fetch_add(1, Ordering::Relaxed);
            match self.try_apply(&conn, &group, version, commit_sent).await {
                Ok(failed) => {
                    self.last_commit_micros
                        .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    return group.outcome(failed);
                }
                Err(Attempt::Failed(e)) if is_retryable(&e) => {
                    serialization_failures += 1;
                    if serialization_failures > MAX_SERIALIZATION_RETRIES {
                        return Err(remote("committing (serialization failures persist)")(e));
                    }
                    let cap = 2u64 << serialization_failures.min(7);
                    let pause = rand::thread_rng().gen_range(1..=cap);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(Attempt::Failed(e)) => return Err(remote("writing to PostgreSQL")(e)),
                Err(Attempt::CommitLost(source)) => {
                    self.reachable.store(false, Ordering::Relaxed);
                    // A server going away may answer before the socket closes: the
                    // question goes out on a new connection.
                    self.forget(&self.writer, &conn).await;
                    match self.resolve(&conn, version).await {
                        Landed::Yes(failed) => return group.outcome(failed),
                        // Not applied: running it again is safe.
                        Landed::No if Instant::now() < deadline => *commit_sent = false,
                        Landed::No => return Err(remote("committing to PostgreSQL")(source)),
                        Landed::Unknown => {
                            self.raise_own(batches);
                            return Err(StorageError::CommitUnknown {
                                source: Box::new(source),
                            });
                        }
                    }
                }
            }
        }
    }

    /// One call of the apply function; `commit_sent` tells whether it may have been
    /// applied without an answer. Answers what the function answered per batch.
    async fn try_apply(
        &self,
        conn: &Conn,
        group: &Group<'_>,
        version: i64,
        commit_sent: &mut bool,
    ) -> Result<Vec<Option<i32>>, Attempt> {
        *commit_sent = true;
        let called = conn
            .client
            .query_one(
                &conn.apply,
                &[
                    &group.check_keys,
                    &group.check_values,
                    &group.check_ends,
                    &group.op_keys,
                    &group.op_values,
                    &group.op_ends,
                    &self.node,
                    &version,
                    &group.changed,
                ],
            )
            .await;
        let row = match called {
            Ok(row) => row,
            Err(e) if is_connection_error(&e) => return Err(Attempt::CommitLost(e)),
            Err(e) => {
                *commit_sent = false;
                return Err(Attempt::Failed(e));
            }
        };
        let failed: Vec<Option<i32>> = row.try_get(0).map_err(Attempt::Failed)?;
        if let Some(set) = row.try_get::<_, Option<i64>>(1).map_err(Attempt::Failed)? {
            self.next_version.fetch_max(set + 1, Ordering::Relaxed);
        }
        Ok(failed)
    }

    /// After a connection was lost with a call in flight: whether that call landed,
    /// known once the server process that ran it is gone, and if it did, its answer.
    async fn resolve(&self, lost: &Conn, version: i64) -> Landed {
        let deadline = Instant::now() + RECONNECT_FOR;
        loop {
            let Ok(conn) = self.conn(&self.writer, deadline).await else {
                return Landed::Unknown;
            };
            let alive = conn
                .client
                .query_one(&conn.alive, &[&lost.pid, &lost.started])
                .await;
            match alive.and_then(|row| row.try_get::<_, i64>(0)) {
                Ok(0) => {
                    let Ok(row) = conn
                        .client
                        .query_opt(&conn.node_version, &[&self.node])
                        .await
                    else {
                        return Landed::Unknown;
                    };
                    let Some(row) = row else {
                        return Landed::No;
                    };
                    return match (
                        row.try_get::<_, i64>(0),
                        row.try_get::<_, Option<Vec<Option<i32>>>>(1),
                    ) {
                        (Ok(set), Ok(Some(failed))) if set >= version => Landed::Yes(failed),
                        (Ok(set), Ok(_)) if set < version => Landed::No,
                        _ => Landed::Unknown,
                    };
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) if is_connection_error(&e) => self.forget(&self.writer, &conn).await,
                Err(_) => return Landed::Unknown,
            }
            if Instant::now() >= deadline {
                return Landed::Unknown;
            }
        }
    }

    /// Drops this node's cached copies of what a group of unknown outcome wrote.
    fn raise_own(&self, batches: &[Batch]) {
        if let Some(hub) = self.invalidations.lock().clone() {
            for op in batches.iter().flat_map(|b| &b.ops) {
                let (Op::Put(key, _) | Op::Delete(key)) = op;
                hub.raise(key);
            }
        }
    }

    fn hub(&self) -> Option<Arc<Invalidations>> {
        self.invalidations.lock().clone()
    }

    /// Another node's notification: `<node> <version> <JSON array of keys>`.
    fn heard_notification(&self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        let (Some(node), Some(version), Some(keys)) = (parts.next(), parts.next(), parts.next())
        else {
            tracing::warn!("ignoring a malformed PostgreSQL notification");
            return;
        };
        if node == self.node {
            return;
        }
        let prefixes: Vec<String> =
            serde_json::from_str(keys).unwrap_or_else(|_| vec![String::new()]);
        if let Some(hub) = self.hub() {
            for p in &prefixes {
                hub.raise(p);
            }
        }
        if let Ok(v) = version.parse::<i64>() {
            let mut heard = self.heard.lock();
            let known = heard.entry(node.to_string()).or_insert(0);
            *known = (*known).max(v);
        }
    }
}

/// The keys a commit changed, as a JSON array for its notification: all of them when
/// they fit, else their common prefix (`""`: everything).
fn notification_keys(keys: &[&str]) -> String {
    let json = |keys: &[&str]| serde_json::to_string(keys).unwrap_or_default();
    let all = json(keys);
    if !all.is_empty() && all.len() <= MAX_PAYLOAD {
        return all;
    }
    let mut common = keys.first().copied().unwrap_or("");
    for k in keys {
        let mut n = common
            .bytes()
            .zip(k.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        while !common.is_char_boundary(n) {
            n -= 1;
        }
        common = &common[..n];
    }
    let prefix = json(&[common]);
    if !prefix.is_empty() && prefix.len() <= MAX_PAYLOAD {
        prefix
    } else {
        "[\"\"]".into()
    }
}

enum Attempt {
    /// The server answered with an error: the call's transaction was rolled back.
    Failed(tokio_postgres::Error),
    /// The connection went while the call was in flight: it may have been applied.
    CommitLost(tokio_postgres::Error),
}

/// Whether a call whose answer was lost was applied.
enum Landed {
    /// Yes, and this was its answer per batch.
    Yes(Vec<Option<i32>>),
    No,
    /// The server could not be asked in time.
    Unknown,
}

/// A group of batches as the apply function takes it: the conditions and writes of
/// every batch flattened, each batch's share ending at its entry of the `_ends`.
struct Group<'a> {
    batches: &'a [Batch],
    check_keys: Vec<&'a [u8]>,
    check_values: Vec<Option<&'a [u8]>>,
    check_ends: Vec<i32>,
    op_keys: Vec<&'a [u8]>,
    op_values: Vec<Option<&'a [u8]>>,
    op_ends: Vec<i32>,
    /// The notification's keys: every key the group writes, as a batch whose condition
    /// fails only costs other nodes a needless reload of what it would have written.
    changed: String,
}

impl<'a> Group<'a> {
    fn new(batches: &'a [Batch]) -> Result<Self, StorageError> {
        let mut group = Group {
            batches,
            check_keys: Vec::new(),
            check_values: Vec::new(),
            check_ends: Vec::with_capacity(batches.len()),
            op_keys: Vec::new(),
            op_values: Vec::new(),
            op_ends: Vec::with_capacity(batches.len()),
            changed: String::new(),
        };
        let too_large = |what, bytes| StorageError::TooLarge {
            what,
            bytes,
            limit: i32::MAX as usize,
        };
        for batch in batches {
            for check in &batch.checks {
                group.check_keys.push(check.key.as_bytes());
                group.check_values.push(check.expected.as_deref());
            }
            for op in &batch.ops {
                let (key, value) = match op {
                    Op::Put(k, v) => (k, Some(v.as_slice())),
                    Op::Delete(k) => (k, None),
                };
                group.op_keys.push(key.as_bytes());
                group.op_values.push(value);
            }
            let checks = group.check_keys.len();
            let ops = group.op_keys.len();
            group.check_ends.push(
                i32::try_from(checks).map_err(|_| too_large("a group's conditions", checks))?,
            );
            group
                .op_ends
                .push(i32::try_from(ops).map_err(|_| too_large("a group's writes", ops))?);
        }
        let mut changed: Vec<&str> = batches
            .iter()
            .flat_map(|b| &b.ops)
            .map(|op| match op {
                Op::Put(k, _) | Op::Delete(k) => k.as_str(),
            })
            .collect();
        changed.sort_unstable();
        changed.dedup();
        group.changed = notification_keys(&changed);
        Ok(group)
    }

    /// The function's answer per batch, as [`Backend::apply`] answers.
    fn outcome(&self, failed: Vec<Option<i32>>) -> Result<Applied, StorageError> {
        if failed.len() != self.batches.len() {
            return Err(StorageError::ForeignData {
                context: "the apply function answered for another number of batches: \
                          is it another program's?",
            });
        }
        let checks: Vec<&str> = self
            .batches
            .iter()
            .flat_map(|b| b.checks.iter().map(|c| c.key.as_str()))
            .collect();
        failed
            .into_iter()
            .map(|f| match f {
                None => Ok(Ok(())),
                Some(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| checks.get(i))
                    .map(|key| {
                        Err(Conflict {
                            key: key.to_string(),
                        })
                    })
                    .ok_or(StorageError::ForeignData {
                        context: "the apply function named a condition the group does not \
                                  have: is it another program's?",
                    }),
            })
            .collect()
    }
}

/// Keeps a `LISTEN` connection open (reconnecting after the server restarts) and raises
/// the keys other nodes' commits changed.
async fn listen(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<()>) {
    let mut pause = Duration::from_millis(50);
    loop {
        let connected = tokio::select! {
            c = shared.config.connect(shared.tls.clone()) => c,
            _ = stop.changed() => return,
        };
        let (client, mut connection) = match connected {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "PostgreSQL listener cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        pause = Duration::from_millis(50);
        let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if messages.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if let Err(e) = client
            .batch_execute(&format!("LISTEN \"{}\"", shared.table))
            .await
        {
            tracing::debug!(error = %e, "PostgreSQL LISTEN failed; reconnecting");
            driver.abort();
            continue;
        }
        loop {
            tokio::select! {
                payload = received.recv() => match payload {
                    Some(p) => shared.heard_notification(&p),
                    None => break,
                },
                _ = stop.changed() => {
                    driver.abort();
                    return;
                }
            }
        }
        tracing::warn!("lost the PostgreSQL notification connection; reconnecting");
    }
}

/// Reads every node's counter each [`VERSION_CHECK_EVERY`]; a counter ahead of what its
/// notifications said at two checks in a row means notifications were lost: drop every
/// cache.
async fn check_versions(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<()>) {
    let mut suspect: HashMap<String, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(VERSION_CHECK_EVERY) => {}
            _ = stop.changed() => return,
        }
        let Ok(versions) = shared.versions().await else {
            continue;
        };
        let mut lost = false;
        {
            let mut heard = shared.heard.lock();
            let mut still = HashMap::new();
            for (node, version) in versions {
                if node == shared.node {
                    continue;
                }
                let known = heard.get(&node).copied().unwrap_or(0);
                if version <= known {
                    continue;
                }
                // A commit seen at the previous check is still unheard: its notification
                // is not coming.
                if suspect.get(&node).is_some_and(|s| *s > known) {
                    lost = true;
                    heard.insert(node, version);
                } else {
                    still.insert(node, version);
                }
            }
            suspect = still;
        }
        if lost {
            tracing::info!("a PostgreSQL notification was lost; dropping every cache");
            if let Some(hub) = shared.hub() {
                hub.raise("");
            }
        }
    }
}

impl Backend for PostgresBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let shared = self.shared.clone();
        let key = key.as_bytes().to_vec();
        self.block(async move {
            shared
                .read("reading from PostgreSQL", |c| {
                    let key = key.clone();
                    async move {
                        match c.client.query_opt(&c.get, &[&key]).await? {
                            Some(row) => row.try_get::<_, Vec<u8>>(0).map(Some),
                            None => Ok(None),
                        }
                    }
                })
                .await
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let shared = self.shared.clone();
        let from = prefix.as_bytes().to_vec();
        let to = prefix_end(&from);
        self.block(async move {
            let rows = shared
                .read("listing from PostgreSQL", |c| {
                    let (from, to) = (from.clone(), to.clone());
                    async move {
                        let rows = match &to {
                            Some(to) => c.client.query(&c.list_range, &[&from, to]).await?,
                            None => c.client.query(&c.list_from, &[&from]).await?,
                        };
                        rows.iter()
                            .map(|r| r.try_get::<_, Vec<u8>>(0))
                            .collect::<Result<Vec<_>, _>>()
                    }
                })
                .await?;
            rows.into_iter().map(key_string).collect()
        })
    }

    fn apply(&self, batches: &[Batch]) -> Result<Applied, StorageError> {
        let shared = self.shared.clone();
        let batches = batches.to_vec();
        self.block(async move { shared.apply(batches).await })
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn figures(&self) -> BackendFigures {
        let micros = self.shared.last_commit_micros.load(Ordering::Relaxed);
        BackendFigures {
            reachable: Some(self.shared.reachable.load(Ordering::Relaxed)),
            last_commit_micros: (micros > 0).then_some(micros),
            ..BackendFigures::default()
        }
    }

    fn watch(&self, invalidations: Arc<Invalidations>) {
        *self.shared.invalidations.lock() = Some(invalidations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_both_url_forms() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/ks?sslmode=require",
                "postgres://app:***@db:5432/ks?sslmode=require",
            ),
            ("postgresql://app@db/ks", "postgresql://app@db/ks"),
            (
                "postgres://db/ks?user=app&password=s3cret",
                "postgres://db/ks?user=app&password=***",
            ),
            (
                "host=db user=app password=s3cret dbname=ks",
                "host=db user=app password=*** dbname=ks",
            ),
        ] {
            assert_eq!(redact(url), shown);
        }
        let settings = PostgresConfig {
            connection_url: "postgres://app:s3cret@db/ks".into(),
            table: None,
            tls_ca_file: None,
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn a_prefix_ends_past_every_key_below_it() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn notifications_name_the_keys_or_their_common_prefix() {
        assert_eq!(notification_keys(&["a/1", "a\0b"]), r#"["a/1","a\u0000b"]"#);
        let many: Vec<String> = (0..2000).map(|i| format!("logical/x/é{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(notification_keys(&many), r#"["logical/x/é"]"#);
        let huge = "k".repeat(MAX_PAYLOAD + 1);
        assert_eq!(notification_keys(&[&huge]), r#"[""]"#);
    }

    #[test]
    fn a_group_is_flattened_and_its_answer_mapped_back_per_batch() {
        let mut first = Batch::new();
        first.check("a", None).put("a", b"1".to_vec());
        let mut second = Batch::new();
        second
            .check("a", None)
            .check("b", Some(b"x".to_vec()))
            .delete("b");
        let mut third = Batch::new();
        third.put("a", b"2".to_vec());
        let batches = [first, second, third];
        let group = Group::new(&batches).unwrap();
        assert_eq!(group.check_keys, [&b"a"[..], b"a", b"b"]);
        assert_eq!(group.check_values, [None, None, Some(&b"x"[..])]);
        assert_eq!(group.check_ends, [1, 3, 3]);
        assert_eq!(group.op_keys, [&b"a"[..], b"b", b"a"]);
        assert_eq!(group.op_values, [Some(&b"1"[..]), None, Some(&b"2"[..])]);
        assert_eq!(group.op_ends, [1, 2, 3]);
        assert_eq!(group.changed, r#"["a","b"]"#);
        assert_eq!(
            group.outcome(vec![None, Some(1), None]).unwrap(),
            vec![Ok(()), Err(Conflict { key: "a".into() }), Ok(())]
        );
        for foreign in [
            vec![None, None],
            vec![None, Some(3), None],
            vec![Some(-1), None, None],
        ] {
            assert!(matches!(
                group.outcome(foreign),
                Err(StorageError::ForeignData { .. })
            ));
        }
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(valid_table("ironseal_store"));
        assert!(valid_table("_t2"));
        for bad in ["", "2t", "T", "a-b", "a\"b", "a.b", &"x".repeat(41)] {
            assert!(!valid_table(bad), "{bad:?}");
        }
    }
}
