//! Shared storage on PostgreSQL: the backend conformance suite on a real server, two
//! `ironseal` daemons on one database seeing each other's writes within the stated bound,
//! across a server restart, and a daemon that keeps answering `sys/health` while its
//! database is stalled.
//!
//! OpenBao runs several nodes on one PostgreSQL only as active and standbys (standbys
//! forward to the active node), so the two-node test has no reference run; the suite
//! needs no daemon and runs the same in either mode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::storage::conformance::{self, Fixture};
use engine::storage::postgresql::{
    PostgresBackend, PostgresConfig, COHERENCE_BOUND, RECONNECT_FOR,
};
use engine::storage::{Backend, Batch};
use serde_json::{json, Value};
use softhsm_tests::postgres::{Postgres, PASSWORD};
use softhsm_tests::{poll_until, reference_mode, Body, Daemon};

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

fn pg_daemon(pg: &Postgres) -> Daemon {
    let url = pg.url();
    Daemon::config_with_storage(
        "storage \"postgresql\" {\n  table = \"two_nodes\"\n}",
        &[("IRONSEAL_PG_URL", url.as_str())],
    )
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
    if reference_mode() {
        eprintln!("SKIPPED against OpenBao: its nodes on one PostgreSQL are active/standby");
        return;
    }
    let pg = Postgres::start();
    let mut a = pg_daemon(&pg);
    a.init(1, 1);
    a.unseal();
    a.ensure_secret_kv2();
    a.ensure_transit();
    let r = a.post_json("/v1/transit/keys/shared", &json!({}));
    assert!(r.status == 200 || r.status == 204, "{r}");
    kv_put(&a, "shared", "one");

    let mut b = pg_daemon(&pg);
    b.init = a.init.clone();
    b.token = a.token.clone();
    b.unseal();
    let root = a.token.clone().unwrap();

    // kv: B reads (and caches) the first version; A's second is seen by B.
    assert_eq!(kv_value(&b, &root, "shared").as_deref(), Some("one"));
    kv_put(&a, "shared", "two");
    seen_within_bound("B to read A's kv write", || {
        kv_value(&b, &root, "shared").as_deref() == Some("two")
    });

    // A policy change on A is enforced by B.
    let r = a.write_acl_policy(
        "reader",
        "path \"secret/data/shared\" { capabilities = [\"read\"] }",
    );
    assert!(r.status == 200 || r.status == 204, "{r}");
    let (token, _) = a.create_token_http(&json!({"policies": ["reader"]}));
    seen_within_bound("B to honour the token created on A", || {
        kv_value(&b, &token, "shared").is_some()
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
    assert_eq!(transit_version(&b, &root).as_deref(), Some("v1"));
    let r = a.post_json("/v1/transit/keys/shared/rotate", &json!({}));
    assert!(r.status == 200 || r.status == 204, "{r}");
    seen_within_bound("B to encrypt with the version A rotated to", || {
        transit_version(&b, &root).as_deref() == Some("v2")
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
        kv_value(&b, &root, "shared").as_deref() == Some("three")
    });
    kv_put(&b, "shared", "four");
    seen_within_bound("A to read B's write after the restart", || {
        kv_value(&a, &root, "shared").as_deref() == Some("four")
    });

    // Health and metrics name the shared store.
    let status: Value = a.get("/v1/sys/seal-status").json();
    assert_eq!(status["storage_type"], "postgresql", "{status}");
    for d in [&a, &b] {
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
    let url = pg.url();
    let mut d = Daemon::config_with_storage(
        "storage \"postgresql\" {\n  table = \"stall\"\n}",
        &[("IRONSEAL_PG_URL", url.as_str())],
    );
    d.init(1, 1);
    d.unseal();
    d.ensure_secret_kv2();
    let root = d.token.clone().expect("the root token");
    for i in 0..STALLED_WRITES {
        kv_put(&d, &format!("w{i}"), "before");
        // Read back, so the write during the stall finds what it needs cached and
        // reaches the commit.
        assert_eq!(
            kv_value(&d, &root, &format!("w{i}")).as_deref(),
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
            let (d, root, pending, failures) = (&d, &root, &pending, &failures);
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
