//! The published API document (`api/openapi.json`), served at Vault's
//! `sys/internal/specs/openapi` and at `/api/v1/openapi.json`, and Schemathesis (from
//! the venv scripts/install-deps.sh makes) run with it against a dev daemon holding the
//! root token: no 5xx, every status code and body as documented, within a time budget.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use softhsm_tests::tools::python;
use softhsm_tests::{reference_mode, Daemon};

/// Operations the run leaves out: they end the run's own session (sealing, revoking the
/// root token) or write files where the request says (a file audit device).
const EXCLUDED: &[&str] = &["sysSeal", "tokenRevokeSelf", "sysAuditEnable"];

/// The auth methods the document describes, besides the token store.
const AUTH_METHODS: &[&str] = &["approle", "userpass", "jwt", "cert"];

/// The whole Schemathesis run, at most: it stops generating when this is spent.
const BUDGET: Duration = Duration::from_secs(120);

#[test]
fn the_document_is_served_at_both_paths_without_a_token() {
    if reference_mode() {
        return; // OpenBao serves its own generated document, not this one.
    }
    let d = Daemon::dev(&[]);
    let vault = d.http(
        "GET",
        "/v1/sys/internal/specs/openapi",
        None,
        softhsm_tests::Body::None,
    );
    assert_eq!(vault.status, 200, "{vault}");
    let kms = d.http(
        "GET",
        "/api/v1/openapi.json",
        None,
        softhsm_tests::Body::None,
    );
    assert_eq!(kms.status, 200, "{kms}");
    let doc: Value = vault.json();
    assert_eq!(doc, kms.json());
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/keys"]["post"].is_object(), "{doc}");
    for login in [
        "/v1/auth/approle/login",
        "/v1/auth/userpass/login/{username}",
        "/v1/auth/jwt/login",
        "/v1/auth/cert/login",
    ] {
        assert!(
            doc["paths"][login]["post"].is_object(),
            "{login} is not documented"
        );
    }
    // What Vault does not take here is refused, not ignored.
    let r = d.http(
        "GET",
        "/v1/sys/internal/specs/openapi?generic_mount_paths=true",
        None,
        softhsm_tests::Body::None,
    );
    assert_eq!(r.status, 400, "{r}");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    if reference_mode() {
        return; // The document describes this appliance; OpenBao's answers differ.
    }
    let d = Daemon::dev(&[]);
    let token = d.token.clone().expect("dev root token");
    // The document shows the auth methods where `bao auth enable <type>` puts them.
    for method in AUTH_METHODS {
        d.bao(&["auth", "enable", method]).ok();
    }
    let report = d.dir().join("schemathesis");
    let st = python().with_file_name("st");
    let mut cmd = Command::new(&st);
    cmd.arg("run")
        .arg(format!("{}/v1/sys/internal/specs/openapi", d.addr))
        .args(["--url", &d.addr])
        .args(["-H", &format!("X-Vault-Token: {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "coverage,fuzzing"])
        .args(["--max-examples", "25"])
        .args(["--max-time", &BUDGET.as_secs().to_string()])
        .args(["--request-timeout", "60"])
        // One worker: with two, Schemathesis's threads share Hypothesis's strategy cache,
        // which is not thread-safe (a `KeyError` in `internal/cache.py`, twice in CI).
        .args(["--workers", "1"])
        .args(["--seed", "18"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--no-color", "--output-truncate", "false"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        // Its cache (`.schemathesis/`) goes where it runs: the test's directory.
        .current_dir(d.dir())
        .env("NO_PROXY", "*");
    for id in EXCLUDED {
        cmd.args(["--exclude-operation-id", id]);
    }
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} (scripts/install-deps.sh installs it): {e}",
            st.display()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Generation stops at the budget; the last requests and the report take a little more.
    assert!(
        started.elapsed() < BUDGET + Duration::from_secs(90),
        "the run took {:?}",
        started.elapsed()
    );
    let log = d.logs();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
}
