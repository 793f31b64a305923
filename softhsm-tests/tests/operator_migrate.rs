//! `ironseal operator migrate -from a.hcl -to b.hcl` with the firmware binary, redb to
//! redb: refused while a daemon holds the source; cut short midway (the process dies
//! after its second batch), run again, it continues and completes; then a daemon on the
//! target unseals with the source's keys and serves every secret. And redb to
//! PostgreSQL and back, on a throw-away server: refused while a node serves the shared
//! store. Ironseal's own command (OpenBao's `operator migrate` takes one config with two
//! storage blocks), so not run against the reference.

use std::process::{Command, Output};

use serde_json::json;
use softhsm_tests::postgres::Postgres;
use softhsm_tests::{ironseal_bin, reference_mode, Body, Daemon};

fn migrate(source: &Daemon, target: &Daemon, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(ironseal_bin());
    cmd.args(["operator", "migrate", "-from"])
        .arg(source.config_path())
        .arg("-to")
        .arg(target.config_path())
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running ironseal operator migrate")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_migration_cut_short_resumes_and_the_target_serves_the_data() {
    if reference_mode() {
        eprintln!("skipped: `ironseal operator migrate` is Ironseal's own command");
        return;
    }
    let mut source = Daemon::config(false);
    source.init(3, 2);
    source.unseal();
    source.ensure_secret_kv2();
    // Enough secrets for several batches of the copy (each is a metadata and a version key).
    const SECRETS: usize = 400;
    for i in 0..SECRETS {
        let r = source.post_json(
            &format!("/v1/secret/data/mig/s{i:04}"),
            &json!({"data": {"value": format!("value-{i}")}}),
        );
        assert_eq!(r.status, 200, "write {i}: {}", r.body);
    }
    // The target: a daemon's own config and data dir, stopped before it ever initialised.
    let mut target = Daemon::config(false);
    target.kill9();

    let refused = migrate(&source, &target, &[], &[]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop it first"),
        "{}",
        text(&refused)
    );
    source.kill9();

    let cut = migrate(
        &source,
        &target,
        &[],
        &[("IRONSEAL_TEST_CRASH_AT", "migrate:batch-2")],
    );
    assert!(!cut.status.success(), "{}", text(&cut));
    assert!(
        String::from_utf8_lossy(&cut.stderr).contains("aborting here"),
        "{}",
        text(&cut)
    );

    let resumed = migrate(&source, &target, &[], &[]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        stdout.contains("by an earlier, interrupted run"),
        "{}",
        text(&resumed)
    );
    // Not a terminal here: plain progress lines.
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("keys copied and verified"),
        "{}",
        text(&resumed)
    );

    // A complete target is no longer empty: copying again needs -force.
    let again = migrate(&source, &target, &[], &[]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        text(&again)
    );

    target.init = source.init.clone();
    target.token = source.token.clone();
    target.start();
    target.unseal();
    for i in (0..SECRETS).step_by(37).chain([SECRETS - 1]) {
        assert_eq!(
            target.kv_get_value(&format!("mig/s{i:04}")),
            format!("value-{i}")
        );
    }
}

/// Writes `count` secrets below `prefix`, each holding `value-<prefix>-<i>`.
fn write_secrets(d: &Daemon, prefix: &str, count: usize) {
    for i in 0..count {
        let r = d.post_json(
            &format!("/v1/secret/data/{prefix}/s{i}"),
            &json!({"data": {"value": format!("value-{prefix}-{i}")}}),
        );
        assert_eq!(r.status, 200, "write {prefix}/{i}: {}", r.body);
    }
}

fn assert_secrets(d: &Daemon, prefix: &str, count: usize) {
    for i in 0..count {
        assert_eq!(
            d.kv_get_value(&format!("{prefix}/s{i}")),
            format!("value-{prefix}-{i}")
        );
    }
}

/// Starts `target` on the keyspace migrated from `source` and unseals it with the
/// source's keys.
fn serve_migrated(target: &mut Daemon, source: &Daemon) {
    target.init = source.init.clone();
    target.token = source.token.clone();
    target.start();
    target.unseal();
}

#[test]
fn a_keyspace_moves_from_redb_to_postgresql_and_back() {
    if reference_mode() {
        eprintln!("skipped: `ironseal operator migrate` is Ironseal's own command");
        return;
    }
    let pg = Postgres::start();
    let url = pg.url();
    let pg_env = [("IRONSEAL_PG_URL", url.as_str())];
    let on_pg = |table: &str| {
        Daemon::config_with_storage(
            &format!("storage \"postgresql\" {{\n  table = \"{table}\"\n}}"),
            &pg_env,
        )
    };

    let mut redb = Daemon::config(false);
    redb.init(3, 2);
    redb.unseal();
    redb.ensure_secret_kv2();
    write_secrets(&redb, "redb", 50);
    redb.kill9();

    // A node on the database, stopped before it ever initialised; the copy lands there.
    let mut pg_node = on_pg("migrated");
    pg_node.kill9();
    let out = migrate(&redb, &pg_node, &[], &pg_env);
    assert!(out.status.success(), "{}", text(&out));
    serve_migrated(&mut pg_node, &redb);
    assert_secrets(&pg_node, "redb", 50);
    write_secrets(&pg_node, "pg", 20);

    // While a node serves the shared store, it is not copied from.
    let mut back = Daemon::config(false);
    back.kill9();
    let refused = migrate(&pg_node, &back, &[], &pg_env);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use by a running node"),
        "{}",
        text(&refused)
    );
    // Sealing gives the store up at once (a killed node's lease would expire first).
    let root = pg_node.token.clone().expect("the root token");
    let r = pg_node.http("PUT", "/v1/sys/seal", Some(&root), Body::None);
    assert!(r.status == 200 || r.status == 204, "{r}");
    pg_node.kill9();

    let out = migrate(&pg_node, &back, &[], &pg_env);
    assert!(out.status.success(), "{}", text(&out));
    serve_migrated(&mut back, &redb);
    assert_secrets(&back, "redb", 50);
    assert_secrets(&back, "pg", 20);
}
