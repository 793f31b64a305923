//! Shared storage on PostgreSQL: the backend conformance suite on a real server;
//! daemons on one database seeing each other's writes within the stated bound, across a
//! server restart; three of them racing kv CAS writes, losing one to `kill -9` under
//! write load, running the periodic tasks once between them and each keeping its own
//! audit chain; a stopped server answered as unreachable storage; and a daemon that keeps
//! answering `sys/health` while its database is stalled.
//!
//! OpenBao runs several nodes on one PostgreSQL only as active and standbys (standbys
//! forward to the active node), and the reference daemon runs on its own storage here,
//! so the daemon tests have no reference run; the suite needs no daemon and runs the same
//! in either mode.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use engine::core::PERIODIC_LEASE_TTL;
use engine::storage::conformance::{self, Fixture};
use engine::storage::postgresql::{
    PostgresBackend, PostgresConfig, COHERENCE_BOUND, RECONNECT_FOR,
};
use engine::storage::{Backend, Batch};
use serde_json::{json, Value};
use softhsm_tests::postgres::{Postgres, PASSWORD};
use softhsm_tests::{ironseal_bin, poll_until, reference_mode, Body, Daemon};

struct Table(PostgresConfig);

impl Fixture for Table {
    fn open(&mut self) -> Arc<dyn Backend> {
        Arc::new(PostgresBackend::open(&self.0).expect("open the PostgreSQL backend"))
    }

    fn durable(&self) -> bool {
        true
    }

    fn shared(&self) -> Option<Duration> {
        Some(COHERENCE_BOUND)
    }
}

fn table(pg: &Postgres, name: &str) -> PostgresConfig {
    PostgresConfig {
        connection_url: pg.url(),
        table: Some(name.to_string()),
        tls_ca_file: None,
    }
}

#[test]
fn the_postgresql_backend_conforms() {
    let pg = Postgres::start();
    let mut n = 0;
    conformance::run(|| {
        n += 1;
        Table(table(&pg, &format!("conformance_{n}")))
    });
}

/// A server restart cuts every connection: reads and writes after it reconnect, and
/// the other handle's caches hear the writes made after it (the listener reconnects, or
/// the counter check makes up for what it missed).
#[test]
fn a_backend_survives_a_server_restart() {
    let pg = Postgres::start();
    let config = table(&pg, "restart");
    let a = PostgresBackend::open(&config).unwrap();
    let b = PostgresBackend::open(&config).unwrap();
    let heard = Arc::new(Heard::default());
    let hub = Arc::new(engine::storage::Invalidations::default());
    hub.subscribe(&heard, |h, prefix| h.push(prefix));
    b.watch(hub);
    let mut batch = Batch::new();
    batch.put("k", b"before".to_vec());
    a.apply(&[batch]).unwrap();

    pg.restart();
    let mut batch = Batch::new();
    batch
        .check("k", Some(b"before".to_vec()))
        .put("k", b"after".to_vec());
    assert_eq!(a.apply(&[batch]).unwrap(), vec![Ok(())]);
    assert_eq!(b.get("k").unwrap(), Some(b"after".to_vec()));
    let written = Instant::now();
    poll_until(
        COHERENCE_BOUND,
        "the write after the restart to be raised",
        || heard.covers("k").then_some(()),
    );
    assert!(written.elapsed() <= COHERENCE_BOUND);
    assert_eq!(
        a.figures().reachable,
        Some(true),
        "reachable again after the restart"
    );
}

/// The prefixes a watch raised.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Heard {
    fn push(&self, prefix: &str) {
        self.0.lock().unwrap().push(prefix.to_string());
    }

    fn covers(&self, key: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|p| key.starts_with(p.as_str()))
    }
}

/// Whether the test is skipped: against OpenBao, which has no counterpart to run.
fn skipped_against_openbao() -> bool {
    if reference_mode() {
        eprintln!(
            "SKIPPED against OpenBao: its nodes on one PostgreSQL are active/standby, and the \
             reference daemon runs on its own storage here"
        );
    }
    reference_mode()
}

/// A daemon on `table` of `pg`, named `node` (several nodes on one host each need a name
/// of their own: it names the node's audit file).
fn pg_daemon(pg: &Postgres, table: &str, node: &str) -> Daemon {
    let url = pg.url();
    Daemon::config_with_storage_and_top_level(
        &format!("storage \"postgresql\" {{\n  table = \"{table}\"\n}}"),
        &[("IRONSEAL_PG_URL", url.as_str())],
        &format!("node_name = \"{node}\""),
    )
}

/// `n` daemons on `table`, named `node-0`, `node-1`...: the first initialises the
/// keyspace and mounts kv v2 at `secret/`; each is unsealed with its keys and holds its
/// root token.
fn cluster(pg: &Postgres, table: &str, n: usize) -> Vec<Daemon> {
    let mut first = pg_daemon(pg, table, "node-0");
    first.init(1, 1);
    first.unseal();
    first.ensure_secret_kv2();
    let mut nodes = vec![first];
    for i in 1..n {
        let mut d = pg_daemon(pg, table, &format!("node-{i}"));
        d.init = nodes[0].init.clone();
        d.token = nodes[0].token.clone();
        d.unseal();
        nodes.push(d);
    }
    nodes
}

fn kv_value(d: &Daemon, token: &str, path: &str) -> Option<String> {
    let r = d.http(
        "GET",
        &format!("/v1/secret/data/{path}"),
        Some(token),
        Body::None,
    );
    (r.status == 200).then(|| {
        r.json()["data"]["data"]["v"]
            .as_str()
            .unwrap_or("")
            .to_string()
    })
}

fn kv_put(d: &Daemon, path: &str, v: &str) {
    let r = d.post_json(
        &format!("/v1/secret/data/{path}"),
        &json!({"data": {"v": v}}),
    );
    assert_eq!(r.status, 200, "{r}");
}

/// Polls `node` until `probe` holds, within the stated bound from now.
fn seen_within_bound(what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    poll_until(COHERENCE_BOUND, what, || probe().then_some(()));
    let took = start.elapsed();
    assert!(took <= COHERENCE_BOUND, "{what}: took {took:?}");
}

fn transit_version(d: &Daemon, token: &str) -> Option<String> {
    let r = d.http(
        "POST",
        "/v1/transit/encrypt/shared",
        Some(token),
        Body::Json(&json!({"plaintext": "aGVsbG8="}).to_string()),
    );
    if r.status != 200 {
        return None;
    }
    let ct = r.json()["data"]["ciphertext"].as_str()?.to_string();
    ct.split(':').nth(1).map(String::from)
}

#[test]
fn two_daemons_on_one_database_see_each_others_writes() {
    if skipped_against_openbao() {
        return;
    }
    let pg = Postgres::start();
    let nodes = cluster(&pg, "two_nodes", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    a.ensure_transit();
    let r = a.post_json("/v1/transit/keys/shared", &json!({}));
    assert!(r.status == 200 || r.status == 204, "{r}");
    kv_put(a, "shared", "one");
    let root = a.token.clone().unwrap();

    // kv: B reads (and caches) the first version; A's second is seen by B.
    assert_eq!(kv_value(b, &root, "shared").as_deref(), Some("one"));
    kv_put(a, "shared", "two");
    seen_within_bound("B to read A's kv write", || {
        kv_value(b, &root, "shared").as_deref() == Some("two")
    });

    // A policy change on A is enforced by B.
    let r = a.write_acl_policy(
        "reader",
        "path \"secret/data/shared\" { capabilities = [\"read\"] }",
    );
    assert!(r.status == 200 || r.status == 204, "{r}");
    let (token, _) = a.create_token_http(&json!({"policies": ["reader"]}));
    seen_within_bound("B to honour the token created on A", || {
        kv_value(b, &token, "shared").is_some()
    });
    let r = a.write_acl_policy(
        "reader",
        "path \"secret/data/other\" { capabilities = [\"read\"] }",
    );
    assert!(r.status == 200 || r.status == 204, "{r}");
    seen_within_bound("B to apply A's narrowed policy", || {
        b.http("GET", "/v1/secret/data/shared", Some(&token), Body::None)
            .status
            == 403
    });

    // A token revoked on A is refused by B.
    let r = a.post_json("/v1/auth/token/revoke", &json!({"token": token}));
    assert!(r.status == 204 || r.status == 200, "{r}");
    seen_within_bound("B to refuse the token revoked on A", || {
        b.http(
            "GET",
            "/v1/auth/token/lookup-self",
            Some(&token),
            Body::None,
        )
        .status
            == 403
    });

    // A transit key rotated on A encrypts with its new version on B.
    assert_eq!(transit_version(b, &root).as_deref(), Some("v1"));
    let r = a.post_json("/v1/transit/keys/shared/rotate", &json!({}));
    assert!(r.status == 200 || r.status == 204, "{r}");
    seen_within_bound("B to encrypt with the version A rotated to", || {
        transit_version(b, &root).as_deref() == Some("v2")
    });

    // The server restarts under both nodes: they reconnect and stay coherent.
    pg.restart();
    poll_until(
        Duration::from_secs(30),
        "A to take writes after the restart",
        || {
            let r = a.post_json("/v1/secret/data/shared", &json!({"data": {"v": "three"}}));
            (r.status == 200).then_some(())
        },
    );
    seen_within_bound("B to read A's write after the restart", || {
        kv_value(b, &root, "shared").as_deref() == Some("three")
    });
    kv_put(b, "shared", "four");
    seen_within_bound("A to read B's write after the restart", || {
        kv_value(a, &root, "shared").as_deref() == Some("four")
    });

    // Health and metrics name the shared store.
    let status: Value = a.get("/v1/sys/seal-status").json();
    assert_eq!(status["storage_type"], "postgresql", "{status}");
    for d in [a, b] {
        assert!(
            !d.logs().contains(PASSWORD),
            "the database password shows in what the daemon printed"
        );
    }
}

/// Keys written before the stall and again during it, and keys first read during it.
const STALLED_WRITES: usize = 8;
const STALLED_READS: usize = 8;
/// How long `sys/health` and `sys/seal-status` may take while the kv requests wait:
/// generous for a loaded machine, far below the backend's timeout.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// The database stops answering (every server process stopped) with kv requests in
/// flight: the probes operators and load balancers rely on keep answering while those
/// requests wait, the requests fail with a 5xx once the backend's timeout passes, not
/// hang, and once the database resumes the daemon serves again, every key holding one
/// whole version, from before or from during the stall.
#[test]
fn health_answers_while_the_database_is_stalled() {
    if reference_mode() {
        eprintln!(
            "SKIPPED against OpenBao: the reference daemon runs on its own storage here, not on the test's PostgreSQL"
        );
        return;
    }
    let pg = Postgres::start();
    let nodes = cluster(&pg, "stall", 1);
    let d = &nodes[0];
    let root = d.token.clone().expect("the root token");
    for i in 0..STALLED_WRITES {
        kv_put(d, &format!("w{i}"), "before");
        // Read back, so the write during the stall finds what it needs cached and
        // reaches the commit.
        assert_eq!(
            kv_value(d, &root, &format!("w{i}")).as_deref(),
            Some("before")
        );
    }
    for path in ["/v1/sys/health", "/v1/sys/seal-status"] {
        assert_eq!(d.get(path).status, 200, "{path} before the stall");
    }

    let stall = pg.stall();
    let pending = AtomicUsize::new(STALLED_WRITES + STALLED_READS);
    let failures: Mutex<Vec<(String, u16, String, Duration)>> = Mutex::new(Vec::new());
    let mut probes_while_pending = 0;
    std::thread::scope(|scope| {
        for i in 0..STALLED_WRITES + STALLED_READS {
            let (root, pending, failures) = (&root, &pending, &failures);
            scope.spawn(move || {
                let started = Instant::now();
                let (what, r) = if i < STALLED_WRITES {
                    let body = json!({"data": {"v": "during"}}).to_string();
                    (
                        format!("write w{i}"),
                        d.send_json("POST", &format!("/v1/secret/data/w{i}"), &body),
                    )
                } else {
                    (
                        format!("read r{i}"),
                        d.http(
                            "GET",
                            &format!("/v1/secret/data/r{i}"),
                            Some(root),
                            Body::None,
                        ),
                    )
                };
                let took = started.elapsed();
                failures
                    .lock()
                    .unwrap()
                    .push((what, r.status, r.body, took));
                pending.fetch_sub(1, Ordering::SeqCst);
            });
        }
        let deadline = Instant::now() + RECONNECT_FOR * 4;
        while pending.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "kv requests still waiting {:?} into the stall",
                RECONNECT_FOR * 4
            );
            // As a load balancer probes (no token) and as `bao status` asks (a token).
            for (path, token) in [
                ("/v1/sys/health", None),
                ("/v1/sys/seal-status", Some(&root)),
            ] {
                let started = Instant::now();
                let r = d.http("GET", path, token.map(String::as_str), Body::None);
                let took = started.elapsed();
                assert_eq!(r.status, 200, "{path} during the stall: {r}");
                assert!(took < PROBE_LIMIT, "{path} took {took:?} during the stall");
                assert_eq!(r.json()["sealed"], false, "{path}: {r}");
            }
            if pending.load(Ordering::SeqCst) > 0 {
                probes_while_pending += 1;
            }
        }
    });
    assert!(
        probes_while_pending >= 3,
        "only {probes_while_pending} probe rounds answered while kv requests waited"
    );
    for (what, status, body, took) in failures.into_inner().unwrap() {
        assert!(
            (500..600).contains(&status),
            "{what} during the stall answered {status}: {body}"
        );
        assert!(
            took >= RECONNECT_FOR - Duration::from_secs(1) && took < RECONNECT_FOR * 4,
            "{what} failed after {took:?}, not after the backend's timeout: {status} {body}"
        );
        if status == 503 {
            assert!(
                body.contains("did not answer"),
                "{what}: a 503 says the storage did not answer: {body}"
            );
        }
    }

    drop(stall);
    poll_until(
        Duration::from_secs(60),
        "the daemon to take writes once the database resumes",
        || {
            let r = d.post_json("/v1/secret/data/after", &json!({"data": {"v": "after"}}));
            (r.status == 200).then_some(())
        },
    );
    for i in 0..STALLED_WRITES {
        let path = format!("w{i}");
        let r = d.http(
            "GET",
            &format!("/v1/secret/data/{path}"),
            Some(&root),
            Body::None,
        );
        assert_eq!(r.status, 200, "{path} after the stall: {r}");
        let data = r.json();
        let v = data["data"]["data"]["v"].as_str().unwrap_or("");
        assert!(v == "before" || v == "during", "{path} holds {v:?}");
        let meta = d
            .http(
                "GET",
                &format!("/v1/secret/metadata/{path}"),
                Some(&root),
                Body::None,
            )
            .json();
        assert_eq!(
            meta["data"]["current_version"], data["data"]["metadata"]["version"],
            "{path}: the metadata and the version read disagree: {meta}"
        );
        let expected = if v == "before" { 1 } else { 2 };
        assert_eq!(
            data["data"]["metadata"]["version"], expected,
            "{path}: {data}"
        );
    }
}

/// Writers on each node racing for the versions of one kv key, and the attempts each
/// makes (read the current version, write with it as `cas`).
const CAS_WRITERS_PER_NODE: usize = 3;
const CAS_ATTEMPTS: usize = 8;
/// Vault's answer (400) to a `cas` that is not the current version.
const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

/// The current version of kv `path` as `d` reads it (0: no version yet).
fn kv_current_version(d: &Daemon, path: &str) -> u64 {
    let r = d.get(&format!("/v1/secret/metadata/{path}"));
    match r.status {
        200 => r.json()["data"]["current_version"]
            .as_u64()
            .unwrap_or_else(|| panic!("no current_version: {r}")),
        404 => 0,
        _ => panic!("reading the metadata of {path}: {r}"),
    }
}

/// Writers on all three nodes race CAS writes to one key: every version has exactly one
/// writer, the one whose `cas` was the version before it; every loser gets Vault's CAS
/// error; and every node ends with the same history, each version holding what its
/// writer wrote.
#[test]
fn three_daemons_accept_one_cas_writer_per_version() {
    if skipped_against_openbao() {
        return;
    }
    let pg = Postgres::start();
    let nodes = cluster(&pg, "cas_race", 3);
    // Every version kept, so the final metadata lists them all.
    let r = nodes[0].post_json("/v1/secret/metadata/race", &json!({"max_versions": 1000}));
    assert!(r.status == 200 || r.status == 204, "{r}");
    for (i, d) in nodes.iter().enumerate() {
        seen_within_bound(&format!("node-{i} to read the key's max_versions"), || {
            d.get("/v1/secret/metadata/race").json()["data"]["max_versions"] == 1000
        });
    }

    let writers = nodes.len() * CAS_WRITERS_PER_NODE;
    let start = Barrier::new(writers);
    let won: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let lost = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (n, d) in nodes.iter().enumerate() {
            for w in 0..CAS_WRITERS_PER_NODE {
                let (start, won, lost) = (&start, &won, &lost);
                scope.spawn(move || {
                    let writer = format!("node-{n}/writer-{w}");
                    start.wait();
                    for attempt in 0..CAS_ATTEMPTS {
                        let cas = kv_current_version(d, "race");
                        let value = format!("{writer}#{attempt}");
                        let body = json!({"options": {"cas": cas}, "data": {"v": value}});
                        let r = d.send_json("POST", "/v1/secret/data/race", &body.to_string());
                        match r.status {
                            200 => {
                                let version = r.json()["data"]["version"].as_u64();
                                assert_eq!(version, Some(cas + 1), "{writer} with cas {cas}: {r}");
                                won.lock().unwrap().push((cas + 1, value));
                            }
                            400 => {
                                assert_eq!(r.errors(), [CAS_MISMATCH], "{writer}: {r}");
                                lost.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => panic!("{writer} with cas {cas}: {r}"),
                        }
                    }
                });
            }
        }
    });

    let mut won = won.into_inner().unwrap();
    won.sort();
    let lost = lost.into_inner();
    let versions: Vec<u64> = won.iter().map(|(v, _)| *v).collect();
    let expected: Vec<u64> = (1..=won.len() as u64).collect();
    assert_eq!(
        versions, expected,
        "each version has exactly one writer, and none is missing"
    );
    assert_eq!(won.len() + lost, writers * CAS_ATTEMPTS);
    assert!(lost > 0, "no writer lost a race: nothing raced");
    eprintln!("{} versions written, {lost} CAS writes refused", won.len());

    let newest = won.len() as u64;
    for (i, d) in nodes.iter().enumerate() {
        seen_within_bound(&format!("node-{i} to list every version"), || {
            let meta = d.get("/v1/secret/metadata/race").json();
            let listed: Option<Vec<u64>> = meta["data"]["versions"]
                .as_object()
                .map(|v| v.keys().filter_map(|k| k.parse().ok()).collect());
            meta["data"]["current_version"] == newest
                && listed.map(|mut l| {
                    l.sort();
                    l
                }) == Some(expected.clone())
        });
        for (version, value) in &won {
            let r = d.get(&format!("/v1/secret/data/race?version={version}"));
            assert_eq!(r.status, 200, "node-{i}, version {version}: {r}");
            assert_eq!(
                r.json()["data"]["data"]["v"],
                *value,
                "node-{i}, version {version} holds another writer's value"
            );
        }
    }
}

/// Writers per node in the kill test; the acknowledged writes made before the kill, and
/// by each survivor's writer after it.
const LOAD_WRITERS_PER_NODE: usize = 2;
const ACKED_BEFORE_KILL: usize = 30;
const ACKED_AFTER_KILL: usize = 5;

/// Sets the flag when dropped, so writer threads stop also when the test fails.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One node of three is killed (`SIGKILL`) while writers on every node write new keys:
/// the survivors answer every request, before, during and after the kill, and every
/// acknowledged write, the killed node's included, reads back on the survivors and on
/// the killed node once it is started and unsealed again.
#[test]
fn a_node_killed_under_write_load_loses_no_acknowledged_write() {
    if skipped_against_openbao() {
        return;
    }
    let pg = Postgres::start();
    let mut nodes = cluster(&pg, "kill_load", 3);
    let victim = nodes.len() - 1;
    let pid = nodes[victim].pid().expect("the victim runs");
    let root = nodes[0].token.clone().expect("the root token");
    let header = format!("X-Vault-Token: {root}");

    let acked: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let after_kill: Vec<AtomicUsize> = (0..nodes.len() * LOAD_WRITERS_PER_NODE)
        .map(|_| AtomicUsize::new(0))
        .collect();
    let (killed, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|scope| {
        let _stop = SetOnDrop(&stop);
        for (n, d) in nodes.iter().enumerate() {
            for w in 0..LOAD_WRITERS_PER_NODE {
                let (acked, failures, after_kill, killed, stop, header) =
                    (&acked, &failures, &after_kill, &killed, &stop, &header);
                scope.spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let path = format!("load/node-{n}/writer-{w}/{i}");
                        let value = format!("{n}.{w}.{i}");
                        let body = json!({"data": {"v": value}}).to_string();
                        let during_kill = killed.load(Ordering::SeqCst);
                        let r = d.http_with(
                            "POST",
                            &format!("/v1/secret/data/{path}"),
                            Body::Json(&body),
                            &["-H", header.as_str()],
                        );
                        match r {
                            Ok(r) if r.status == 200 => {
                                acked.lock().unwrap().push((path, value));
                                if during_kill {
                                    after_kill[n * LOAD_WRITERS_PER_NODE + w]
                                        .fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            _ if n == victim && killed.load(Ordering::SeqCst) => break,
                            other => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("node-{n}: {other:?}"));
                                break;
                            }
                        }
                        i += 1;
                    }
                });
            }
        }
        poll_until(
            Duration::from_secs(60),
            "writes acknowledged before the kill",
            || (acked.lock().unwrap().len() >= ACKED_BEFORE_KILL).then_some(()),
        );
        killed.store(true, Ordering::SeqCst);
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {pid} failed");
        poll_until(
            Duration::from_secs(60),
            "each survivor's writers to be acknowledged after the kill",
            || {
                let failed = !failures.lock().unwrap().is_empty();
                let done = after_kill[..victim * LOAD_WRITERS_PER_NODE]
                    .iter()
                    .all(|n| n.load(Ordering::SeqCst) >= ACKED_AFTER_KILL);
                (failed || done).then_some(())
            },
        );
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "the survivors refused writes: {failures:?}"
    );
    let acked = acked.into_inner().unwrap();
    eprintln!("{} writes acknowledged", acked.len());

    let all_read_back = |d: &Daemon, node: usize| {
        for (path, value) in &acked {
            assert_eq!(
                kv_value(d, &root, path).as_deref(),
                Some(value.as_str()),
                "node-{node} reading the acknowledged write to {path}"
            );
        }
    };
    for (n, d) in nodes[..victim].iter().enumerate() {
        all_read_back(d, n);
    }
    // Reaps the process the test killed, and starts it again on the same storage.
    nodes[victim].kill9();
    nodes[victim].start();
    nodes[victim].unseal();
    all_read_back(&nodes[victim], victim);
}

/// The periodic task that runs at every housekeeping tick (once a second).
const EVERY_TICK_TASK: &str = "managed-key-destruction";

/// How many times `d` has run [`EVERY_TICK_TASK`], from `sys/metrics`.
fn periodic_runs(d: &Daemon) -> u64 {
    let r = d.get("/v1/sys/metrics?format=prometheus");
    assert_eq!(r.status, 200, "{r}");
    let sample = format!("ironseal_periodic_task_runs_total{{task=\"{EVERY_TICK_TASK}\"}} ");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&sample))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample}in {r}"))
}

/// This node's id and the node it sees running the periodic tasks, from `sys/appliance`.
fn cluster_view(d: &Daemon) -> (String, Option<String>) {
    let r = d.get("/v1/sys/appliance");
    assert_eq!(r.status, 200, "{r}");
    let cluster = &r.json()["data"]["cluster"];
    let id = cluster["node_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no node_id: {r}"))
        .to_string();
    (id, cluster["periodic_runner"].as_str().map(String::from))
}

/// The node of `live` that all of `live` name as running the periodic tasks, once they
/// agree on one of themselves.
fn agreed_runner(nodes: &[Daemon], ids: &[String], live: &[usize], within: Duration) -> usize {
    poll_until(
        within,
        "the live nodes to agree on one of them running the periodic tasks",
        || {
            let seen: Vec<Option<String>> =
                live.iter().map(|&i| cluster_view(&nodes[i]).1).collect();
            let first = seen[0].clone()?;
            if seen.iter().any(|s| s.as_deref() != Some(first.as_str())) {
                return None;
            }
            live.iter().copied().find(|&i| ids[i] == first)
        },
    )
}

/// While `runner`'s periodic task runs a few more times, no other node of `live` runs it,
/// and the runs across all of them add up to one node's worth.
fn only_the_runner_runs(nodes: &[Daemon], live: &[usize], runner: usize) {
    let started = Instant::now();
    let before: Vec<u64> = live.iter().map(|&i| periodic_runs(&nodes[i])).collect();
    let at = live
        .iter()
        .position(|&i| i == runner)
        .expect("the runner is live");
    poll_until(
        Duration::from_secs(30),
        "the runner to run its periodic tasks",
        || (periodic_runs(&nodes[runner]) >= before[at] + 3).then_some(()),
    );
    let after: Vec<u64> = live.iter().map(|&i| periodic_runs(&nodes[i])).collect();
    let window = started.elapsed();
    let ran: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    for (k, &i) in live.iter().enumerate() {
        if i != runner {
            assert_eq!(
                ran[k], 0,
                "node-{i} ran {EVERY_TICK_TASK} while node-{runner} held the lease (runs: {ran:?})"
            );
        }
    }
    // One node runs it once a second.
    let one_nodes_worth = window.as_secs() + 2;
    assert!(
        ran.iter().sum::<u64>() <= one_nodes_worth,
        "{ran:?} runs in {window:?}: more than one node's worth"
    );
}

/// Of three nodes, one runs the periodic tasks (the others' run counters stand still),
/// all three name it in `sys/appliance`, and when it is killed one of the two others
/// takes the lease over once it expires, and alone runs them from then on.
#[test]
fn periodic_tasks_run_on_one_of_three_nodes_and_move_when_it_is_killed() {
    if skipped_against_openbao() {
        return;
    }
    let pg = Postgres::start();
    let mut nodes = cluster(&pg, "periodic", 3);
    let ids: Vec<String> = nodes.iter().map(|d| cluster_view(d).0).collect();
    let all: Vec<usize> = (0..nodes.len()).collect();
    let runner = agreed_runner(&nodes, &ids, &all, Duration::from_secs(30));
    only_the_runner_runs(&nodes, &all, runner);

    nodes[runner].kill9();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != runner).collect();
    let next = agreed_runner(
        &nodes,
        &ids,
        &survivors,
        PERIODIC_LEASE_TTL + Duration::from_secs(30),
    );
    only_the_runner_runs(&nodes, &survivors, next);
}

/// A file audit device enabled on one node is taken up by the two others; each node
/// writes its own requests to its own file (`audit.<node_name>.log`), every line naming
/// it, and each file's chain verifies, offline and through the node that writes it.
#[test]
fn an_audit_device_enabled_on_one_node_keeps_a_chain_on_each() {
    if skipped_against_openbao() {
        return;
    }
    let pg = Postgres::start();
    let nodes = cluster(&pg, "audit", 3);
    let dir = nodes[0].dir().to_path_buf();
    let log = dir.join("audit.log");
    let r = nodes[0].post_json(
        "/v1/sys/audit/file",
        &json!({"type": "file", "options": {"file_path": log}}),
    );
    assert!(r.status == 200 || r.status == 204, "{r}");
    for (i, d) in nodes.iter().enumerate() {
        seen_within_bound(&format!("node-{i} to take up the audit device"), || {
            d.get("/v1/sys/audit").json()["data"]["file/"]["type"] == "file"
        });
    }
    for (i, d) in nodes.iter().enumerate() {
        kv_put(d, &format!("audited/node-{i}"), "x");
    }

    for (i, d) in nodes.iter().enumerate() {
        let file = dir.join(format!("audit.node-{i}.log"));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("node-{i}'s audit file {}: {e}", file.display()));
        for (j, _) in nodes.iter().enumerate() {
            let request = format!("secret/data/audited/node-{j}");
            assert_eq!(
                text.contains(&request),
                i == j,
                "node-{i}'s file and the write to {request} made on node-{j}:\n{text}"
            );
        }
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("node-{i}: a line that is not JSON ({e}): {line}"));
            assert_eq!(v["node"], format!("node-{i}"), "node-{i}'s file: {line}");
        }

        let out = Command::new(ironseal_bin())
            .args(["audit", "verify"])
            .arg(&file)
            .output()
            .expect("run ironseal audit verify");
        assert!(
            out.status.success(),
            "ironseal audit verify {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let r = d.get("/v1/sys/audit-verify/file");
        assert_eq!(r.status, 200, "node-{i}: {r}");
        let report = &r.json()["data"];
        assert_eq!(
            report["file_path"],
            file.display().to_string(),
            "node-{i}: {r}"
        );
        assert_eq!(report["broken"], Value::Null, "node-{i}: {r}");
        assert_eq!(report["macs_checked"], true, "node-{i}: {r}");
        assert!(report["lines"].as_u64() >= Some(2), "node-{i}: {r}");
    }
}

/// The storage half of `sys/health`, once it names the backend.
fn health_storage(d: &Daemon) -> Value {
    let started = Instant::now();
    let r = d.http("GET", "/v1/sys/health", None, Body::None);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{r}");
    assert!(took < PROBE_LIMIT, "sys/health took {took:?}");
    let health = r.json();
    assert_eq!(health["sealed"], false, "{r}");
    assert_eq!(health["storage"]["type"], "postgresql", "{r}");
    health["storage"].clone()
}

/// With the server stopped (connections refused), reads and writes on kv, sys and auth
/// paths fail with 503 and words naming the storage as unreachable, never the URL's
/// password, once the backend gives up reconnecting; `sys/health` reports the storage
/// unreachable meanwhile; with the server started again, the daemon serves again.
#[test]
fn a_stopped_database_is_answered_as_unreachable_storage() {
    if skipped_against_openbao() {
        return;
    }
    let pg = Postgres::start();
    let nodes = cluster(&pg, "stopped", 1);
    let d = &nodes[0];
    assert_eq!(health_storage(d)["reachable"], true);

    pg.stop_server();
    let requests = [
        ("kv read", "GET", "/v1/secret/data/never-written", None),
        (
            "kv write",
            "POST",
            "/v1/secret/data/written",
            Some(json!({"data": {"v": "x"}})),
        ),
        (
            "sys read",
            "GET",
            "/v1/sys/policies/acl/never-written",
            None,
        ),
        (
            "sys write",
            "POST",
            "/v1/sys/policies/acl/written",
            Some(json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})),
        ),
        (
            "auth read",
            "POST",
            "/v1/auth/token/lookup-accessor",
            Some(json!({"accessor": "never-issued"})),
        ),
        (
            "auth write",
            "POST",
            "/v1/auth/token/create",
            Some(json!({})),
        ),
    ];
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (what, method, path, body) in &requests {
            let answers = &answers;
            scope.spawn(move || {
                let started = Instant::now();
                let body = body.as_ref().map(Value::to_string);
                let r = d.http(
                    method,
                    path,
                    d.token.as_deref(),
                    body.as_deref().map_or(Body::None, Body::Json),
                );
                answers.lock().unwrap().push((*what, r, started.elapsed()));
            });
        }
        poll_until(
            RECONNECT_FOR,
            "sys/health to report the storage unreachable",
            || (health_storage(d)["reachable"] == false).then_some(()),
        );
    });
    for (what, r, took) in answers.into_inner().unwrap() {
        r.assert_error(503, "the postgresql storage is unreachable");
        assert!(!r.body.contains(PASSWORD), "{what}: {r}");
        assert!(
            took < RECONNECT_FOR * 3,
            "{what} answered after {took:?}: {r}"
        );
    }

    pg.start_server();
    poll_until(
        Duration::from_secs(60),
        "the daemon to take writes once the server is back",
        || {
            let r = d.post_json("/v1/secret/data/written", &json!({"data": {"v": "x"}}));
            (r.status == 200).then_some(())
        },
    );
    assert_eq!(
        kv_value(d, &d.token.clone().unwrap(), "written").as_deref(),
        Some("x")
    );
    assert_eq!(d.get("/v1/secret/data/never-written").status, 404);
    let (token, _) = d.create_token_http(&json!({}));
    assert!(!token.is_empty());
    poll_until(
        Duration::from_secs(10),
        "sys/health to report the storage reachable again",
        || (health_storage(d)["reachable"] == true).then_some(()),
    );
    assert!(
        !d.logs().contains(PASSWORD),
        "the database password shows in what the daemon printed"
    );
}
