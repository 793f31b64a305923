//! The daemon's crash points (engine/src/failpoint.rs), each in turn: a daemon with
//! acknowledged writes behind it dies at the point (as a power cut would) in the middle
//! of the next write or keyring rotation, and after a restart every acknowledged write is
//! there, the one that was cut off is there whole or not at all, the rotation happened or
//! did not, and the keyring opens. The storage points can also fail instead of dying: the
//! request fails with an error, nothing of it is kept, and nothing acknowledged is lost.
//!
//! Crash points exist in Ironseal's debug builds only: in reference mode
//! (`IRONSEAL_REFERENCE=openbao`) these tests return at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use softhsm_tests::crash::restart_after_abort;
use softhsm_tests::hardware::SoftHsm;
use softhsm_tests::{reference_mode, Body, Daemon};
use tempfile::TempDir;

const CRASH_AT: &str = "IRONSEAL_TEST_CRASH_AT";
const FAIL_AT: &str = "IRONSEAL_TEST_FAIL_AT";
const ARMED_BY: &str = "IRONSEAL_TEST_POINTS_ARMED_BY";

/// The storage points a write meets, in order (see `engine/src/storage/wal.rs` and
/// `redb.rs`); the last two are met by a checkpoint, which follows a write once 100 ms
/// passed since the last one.
const STORAGE_POINTS: &[&str] = &[
    "wal:append",
    "wal:written",
    "wal:synced",
    "redb:committed",
    "checkpoint:committed",
    "wal:truncated",
];
/// The storage points that can fail instead (see `failpoint::io_step`).
const FAILING_POINTS: &[&str] = &[
    "wal:append",
    "wal:written",
    "checkpoint:committed",
    "wal:truncated",
];
/// Writes the test makes before arming a point, all acknowledged.
const BEFORE: usize = 3;
/// How long a test keeps writing for an armed point to be met.
const WRITE_DEADLINE: Duration = Duration::from_secs(60);

/// A daemon that has the point named by `var` armed by a file that does not exist yet:
/// initialised, unsealed, with kv v2 at `secret/`; the daemon, the arming file and the
/// directory holding it.
fn armable(var: &str, point: &str) -> (Daemon, PathBuf, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let armed = dir.path().join("armed");
    let mut d =
        Daemon::config_with_env(false, &[(var, point), (ARMED_BY, armed.to_str().unwrap())]);
    d.init(1, 1);
    d.unseal();
    d.ensure_secret_kv2();
    (d, armed, dir)
}

/// What the write of `i` holds: two fields, so a half write would show.
fn value(i: usize) -> Value {
    json!({"n": i.to_string(), "pad": format!("{i}-").repeat(64)})
}

/// Writes secret `w/<i>`; whether the daemon acknowledged it. `Err` when no answer came
/// (the daemon died).
fn write(d: &Daemon, i: usize) -> Result<bool, String> {
    let token = format!("X-Vault-Token: {}", d.token.as_deref().unwrap());
    let body = json!({ "data": value(i) }).to_string();
    let r = d.http_with(
        "POST",
        &format!("/v1/secret/data/w/{i}"),
        Body::Json(&body),
        &["-H", &token],
    )?;
    match r.status {
        200 => Ok(true),
        500..=599 => {
            assert!(!r.errors().is_empty(), "{r}");
            Ok(false)
        }
        _ => panic!("write {i}: {r}"),
    }
}

/// Secret `w/<i>` as stored now; `None` if absent.
fn read(d: &Daemon, i: usize) -> Option<Value> {
    let r = d.get(&format!("/v1/secret/data/w/{i}"));
    match r.status {
        200 => Some(r.json()["data"]["data"].clone()),
        404 => None,
        _ => panic!("read {i}: {r}"),
    }
}

fn term(d: &Daemon) -> u64 {
    let r = d.get("/v1/sys/key-status");
    assert_eq!(r.status, 200, "{r}");
    r.json()["term"].as_u64().unwrap()
}

/// After a restart: the keyring opens with the same unseal key, every acknowledged write
/// is there whole, every refused one is absent, a cut-off one is whole or absent, and
/// the appliance takes a new write that survives another restart.
fn check_after_restart(d: &mut Daemon, point: &str, acked: &[usize], refused: &[usize]) {
    d.unseal();
    for &i in acked {
        assert_eq!(
            read(d, i),
            Some(value(i)),
            "{point}: acknowledged write {i}"
        );
    }
    for &i in refused {
        assert_eq!(read(d, i), None, "{point}: refused write {i} is there");
    }
    let next = acked.iter().chain(refused).max().map_or(0, |m| m + 1);
    let cut = read(d, next);
    if let Some(cut) = &cut {
        assert_eq!(
            *cut,
            value(next),
            "{point}: the cut-off write is half there"
        );
    }
    eprintln!(
        "{point}: {} acknowledged writes kept, {} refused ones absent, the cut-off one {}",
        acked.len(),
        refused.len(),
        if cut.is_some() { "there" } else { "absent" }
    );
    let after = next + 1;
    assert_eq!(
        write(d, after),
        Ok(true),
        "{point}: a write after the restart"
    );
    d.restart_after_kill9();
    d.unseal();
    assert_eq!(read(d, after), Some(value(after)), "{point}");
    for &i in acked {
        assert_eq!(
            read(d, i),
            Some(value(i)),
            "{point}: acknowledged write {i}"
        );
    }
}

#[test]
fn a_crash_at_each_storage_point_loses_no_acknowledged_write() {
    if reference_mode() {
        return;
    }
    for point in STORAGE_POINTS {
        let (mut d, armed, _dir) = armable(CRASH_AT, point);
        let mut acked: Vec<usize> = (0..BEFORE).collect();
        for &i in &acked {
            assert_eq!(write(&d, i), Ok(true), "{point}: before arming");
        }
        std::fs::write(&armed, b"").unwrap();
        // Every write now may be the one that meets the point; a checkpoint's points are
        // met only once its interval passed, so keep writing until the daemon dies.
        let started = Instant::now();
        let mut i = BEFORE;
        loop {
            match write(&d, i) {
                Ok(true) => acked.push(i),
                Ok(false) => panic!("{point}: write {i} failed without the daemon dying"),
                Err(_) => break,
            }
            assert!(
                started.elapsed() < WRITE_DEADLINE,
                "{point}: never met by {i} writes"
            );
            i += 1;
        }
        restart_after_abort(&mut d, point);
        check_after_restart(&mut d, point, &acked, &[]);
    }
}

#[test]
fn a_crash_around_a_keyring_rotation_leaves_one_keyring_that_opens() {
    if reference_mode() {
        return;
    }
    for point in ["keyring:rotate", "keyring:stored", "wal:written"] {
        let (mut d, armed, _dir) = armable(CRASH_AT, point);
        let acked: Vec<usize> = (0..BEFORE).collect();
        for &i in &acked {
            assert_eq!(write(&d, i), Ok(true), "{point}: before arming");
        }
        let before = term(&d);
        std::fs::write(&armed, b"").unwrap();
        let token = format!("X-Vault-Token: {}", d.token.as_deref().unwrap());
        let rotated = d.http_with("POST", "/v1/sys/rotate", Body::None, &["-H", &token]);
        assert!(
            rotated.is_err(),
            "{point}: the rotation answered: {rotated:?}"
        );
        restart_after_abort(&mut d, point);
        d.unseal();
        let after = term(&d);
        assert!(
            after == before || after == before + 1,
            "{point}: term {before} became {after}"
        );
        eprintln!("{point}: keyring term {before} before the crash, {after} after");
        // A rotation after the restart adds one term to whichever keyring was kept.
        let r = d.http("POST", "/v1/sys/rotate", d.token.as_deref(), Body::None);
        assert!(r.status < 300, "{point}: {r}");
        assert_eq!(term(&d), after + 1, "{point}");
        check_after_restart(&mut d, point, &acked, &[]);
        assert_eq!(term(&d), after + 1, "{point}");
    }
}

#[test]
fn a_storage_step_that_fails_keeps_nothing_of_the_request() {
    if reference_mode() {
        return;
    }
    for point in FAILING_POINTS {
        let (mut d, armed, _dir) = armable(FAIL_AT, point);
        let mut acked: Vec<usize> = (0..BEFORE).collect();
        for &i in &acked {
            assert_eq!(write(&d, i), Ok(true), "{point}: before arming");
        }
        let before = term(&d);
        std::fs::write(&armed, b"").unwrap();
        // A write's own steps fail it; a checkpoint's fail only the checkpoint, which
        // the write does not wait for. Keep writing until the point was met, and then
        // some, so later writes land after the failure.
        let started = Instant::now();
        let mut refused = Vec::new();
        let mut i = BEFORE;
        let mut met_at = None;
        while met_at.is_none_or(|m| i < m + 5) {
            match write(&d, i) {
                Ok(true) => acked.push(i),
                Ok(false) => refused.push(i),
                Err(e) => panic!("{point}: write {i} got no answer: {e}"),
            }
            if met_at.is_none() && d.logs().contains(&format!("{FAIL_AT}={point}: failing")) {
                met_at = Some(i);
            }
            assert!(
                started.elapsed() < WRITE_DEADLINE,
                "{point}: never met by {i} writes"
            );
            i += 1;
        }
        let rotated = d.http("POST", "/v1/sys/rotate", d.token.as_deref(), Body::None);
        let rotated_ok = rotated.status < 300;
        if point.starts_with("wal:") && *point != "wal:truncated" {
            assert_eq!(refused.len(), i - BEFORE, "{point}: {refused:?}");
            assert!(!rotated_ok, "{point}: the rotation answered: {rotated}");
        }
        // Killed while the fault lasts, as a fault that ends in a power cut.
        d.kill9();
        std::fs::remove_file(&armed).unwrap();
        d.set_env(FAIL_AT, "");
        d.start();
        check_after_restart(&mut d, point, &acked, &refused);
        let expected = if rotated_ok { before + 1 } else { before };
        assert_eq!(term(&d), expected, "{point}");
    }
}

/// The seal migration's one write (the keyring rewrapped under the new root, the new
/// seal configuration): a crash before it leaves the old seal, which migrates again; a
/// crash after it leaves the new seal, which opens by itself.
#[test]
fn a_crash_around_a_seal_migration_leaves_one_seal_that_opens() {
    if reference_mode() {
        return;
    }
    for point in ["seal-migrate:commit", "seal-migrate:committed"] {
        let hsm = SoftHsm::new("ironseal-crash-mig");
        let conf = hsm.conf();
        let mut d = Daemon::config_with_seal(
            "seal \"shamir\" {}",
            &[("SOFTHSM2_CONF", conf.to_str().unwrap()), (CRASH_AT, point)],
        );
        let init = d.init(3, 2);
        d.unseal();
        d.ensure_secret_kv2();
        // Not the point's name alone: the daemon names the point in its log as it dies,
        // and every value written is checked not to reach a log.
        let value = format!("written before {point}");
        d.kv_put_value("mig", &value);
        d.restart_with_seal(&hsm.root_seal_hcl(false));
        d.bao_as(None, &["operator", "unseal", "-migrate", &init.keys_b64[0]])
            .ok();
        let out = d.bao_as(None, &["operator", "unseal", "-migrate", &init.keys_b64[1]]);
        assert!(!out.success(), "{point}: the migration answered: {out}");
        restart_after_abort(&mut d, point);
        if point == "seal-migrate:commit" {
            let s = d.seal_status();
            assert_eq!(
                (s["sealed"].clone(), s["migration"].clone()),
                (true.into(), true.into()),
                "{point}: {s}"
            );
            for key in &init.keys_b64[1..3] {
                d.bao_as(None, &["operator", "unseal", "-migrate", key])
                    .ok();
            }
        }
        let s = d.wait_unsealed();
        assert_eq!(s["type"], "pkcs11", "{point}: {s}");
        assert_eq!(d.kv_get_value("mig"), value);
        d.restart_after_kill9();
        d.wait_unsealed();
        assert_eq!(d.kv_get_value("mig"), value);
    }
}
