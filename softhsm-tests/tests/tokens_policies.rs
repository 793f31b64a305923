//! Tokens and ACL policies: a token limited to `secret/data/app/*` reads there and gets
//! 403 `permission denied` everywhere else; revoked and expired tokens are refused.

use std::time::{Duration, Instant};

use softhsm_tests::{poll_until, Body, Daemon, HttpResponse};

const APP_READ: &str = r#"
# Read-only access to the application's secrets.
path "secret/data/app/*" {
  capabilities = ["read"]
}
"#;

fn read_as(d: &Daemon, token: &str, path: &str) -> HttpResponse {
    d.http("GET", path, Some(token), Body::None)
}

/// A dev daemon with secret/app/db and secret/other/x written, and the app-read policy.
fn setup() -> Daemon {
    let d = Daemon::dev(&[]);
    d.bao(&["kv", "put", "-mount=secret", "app/db", "password=hunter2"])
        .ok();
    d.bao(&["kv", "put", "-mount=secret", "other/x", "k=v"])
        .ok();
    let out = d.bao_policy_write("app-read", APP_READ);
    assert!(
        out.stdout.contains("Success! Uploaded policy: app-read"),
        "{out}"
    );
    d
}

#[test]
fn policy_grants_read_on_app_and_denies_the_rest() {
    let d = setup();
    let (token, created) = d.bao_token_create(None, &["-policy=app-read"]);
    let policies = created["auth"]["policies"].as_array().unwrap().clone();
    assert!(policies.iter().any(|p| p == "app-read"), "{created}");

    // Reads under secret/data/app/*: raw API, generic read and the kv CLI.
    let r = read_as(&d, &token, "/v1/secret/data/app/db");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["data"]["password"], "hunter2", "{r}");
    let out = d
        .bao_as(
            Some(&token),
            &["read", "-format=json", "secret/data/app/db"],
        )
        .ok();
    assert_eq!(out.json()["data"]["data"]["password"], "hunter2", "{out}");
    let out = d
        .bao_as(
            Some(&token),
            &["kv", "get", "-field=password", "-mount=secret", "app/db"],
        )
        .ok();
    assert_eq!(out.stdout.trim(), "hunter2", "{out}");

    // Write under the same path: 403 permission denied.
    d.http(
        "POST",
        "/v1/secret/data/app/db",
        Some(&token),
        Body::Json(r#"{"data":{"password":"pwned"}}"#),
    )
    .assert_error(403, "permission denied");
    let w = d.bao_as(
        Some(&token),
        &["kv", "put", "-mount=secret", "app/db", "password=pwned"],
    );
    assert_eq!(w.status, 2, "{w}");
    assert!(w.stderr.contains("Code: 403"), "{w}");
    assert!(w.stderr.contains("permission denied"), "{w}");
    // Delete too.
    d.http("DELETE", "/v1/secret/data/app/db", Some(&token), Body::None)
        .assert_error(403, "permission denied");

    // Other paths: 403 permission denied.
    for path in [
        "/v1/secret/data/other/x",
        "/v1/secret/metadata/app/db",
        "/v1/secret/data/application",
        "/v1/sys/policies/acl/app-read",
        "/v1/sys/mounts",
    ] {
        read_as(&d, &token, path).assert_error(403, "permission denied");
    }
    let other = d.bao_as(Some(&token), &["kv", "get", "-mount=secret", "other/x"]);
    assert_eq!(other.status, 2, "{other}");
    assert!(other.stderr.contains("403"), "{other}");

    // Nothing changed underneath.
    let r = d.get("/v1/secret/data/app/db");
    assert_eq!(r.json()["data"]["data"]["password"], "hunter2", "{r}");
    assert_eq!(r.json()["data"]["metadata"]["version"], 1, "{r}");
}

#[test]
fn capabilities_self_reports_what_the_policy_grants() {
    let d = setup();
    let (token, _) = d.bao_token_create(None, &["-policy=app-read"]);
    let caps = d
        .bao_as(
            Some(&token),
            &["token", "capabilities", "secret/data/app/db"],
        )
        .ok();
    assert_eq!(caps.stdout.trim(), "read", "{caps}");
    let caps = d
        .bao_as(
            Some(&token),
            &["token", "capabilities", "secret/data/other/x"],
        )
        .ok();
    assert_eq!(caps.stdout.trim(), "deny", "{caps}");
    let root = d
        .bao(&["token", "capabilities", "secret/data/other/x"])
        .ok();
    assert_eq!(root.stdout.trim(), "root", "{root}");

    let r = d.http(
        "POST",
        "/v1/sys/capabilities-self",
        Some(&token),
        Body::Json(r#"{"paths":["secret/data/app/db","secret/data/other/x"]}"#),
    );
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    assert_eq!(v["secret/data/app/db"], serde_json::json!(["read"]), "{r}");
    assert_eq!(v["secret/data/other/x"], serde_json::json!(["deny"]), "{r}");
}

#[test]
fn token_lookup_self_and_lookup() {
    let d = setup();
    let (token, _) = d.bao_token_create(None, &["-policy=app-read", "-ttl=1h"]);
    let me = d.bao_token_lookup(&token);
    let data = &me.data;
    assert!(me.has_policy("app-read"), "{me}");
    let ttl = data["ttl"].as_u64().unwrap_or_else(|| panic!("ttl: {me}"));
    assert!((3500..=3600).contains(&ttl), "ttl about an hour: {me}");

    // Root looks it up by value.
    let other = d.bao(&["token", "lookup", "-format=json", &token]).ok();
    assert_eq!(
        other.json()["data"]["ttl"].as_u64().map(|t| t > 3500),
        Some(true),
        "{other}"
    );
}

#[test]
fn revoked_token_is_refused() {
    let d = setup();
    let (token, _) = d.bao_token_create(None, &["-policy=app-read"]);
    assert_eq!(read_as(&d, &token, "/v1/secret/data/app/db").status, 200);

    let out = d.bao(&["token", "revoke", &token]).ok();
    assert!(out.stdout.contains("Success! Revoked token"), "{out}");
    read_as(&d, &token, "/v1/secret/data/app/db").assert_error(403, "permission denied");
    let me = d.http(
        "GET",
        "/v1/auth/token/lookup-self",
        Some(&token),
        Body::None,
    );
    assert_eq!(me.status, 403, "{me}");
    let cli = d.bao_as(Some(&token), &["token", "lookup"]);
    assert_eq!(cli.status, 2, "{cli}");

    // revoke-self.
    let (token2, _) = d.bao_token_create(None, &["-policy=app-read"]);
    d.bao_as(Some(&token2), &["token", "revoke", "-self"]).ok();
    read_as(&d, &token2, "/v1/secret/data/app/db").assert_error(403, "permission denied");

    // A token that was never issued, and no token at all.
    read_as(&d, "hvs.not-a-real-token", "/v1/secret/data/app/db")
        .assert_error(403, "permission denied");
    d.http("GET", "/v1/secret/data/app/db", None, Body::None)
        .assert_error(403, "permission denied");
}

#[test]
fn revoking_a_parent_revokes_its_children() {
    let d = setup();
    d.bao_policy_write(
        "creator",
        r#"path "auth/token/create" { capabilities = ["update"] }"#,
    );
    let (parent, _) = d.bao_token_create(None, &["-policy=app-read", "-policy=creator"]);
    let (child, _) = d.bao_token_create(Some(&parent), &["-policy=app-read"]);
    assert_eq!(read_as(&d, &child, "/v1/secret/data/app/db").status, 200);
    d.bao(&["token", "revoke", &parent]).ok();
    read_as(&d, &child, "/v1/secret/data/app/db").assert_error(403, "permission denied");
}

#[test]
fn expired_token_is_refused() {
    let d = setup();
    let t0 = Instant::now();
    let (token, created) = d.bao_token_create(None, &["-policy=app-read", "-ttl=3s"]);
    let lease = created["auth"]["lease_duration"].as_u64().unwrap();
    assert!((1..=3).contains(&lease), "lease_duration 3s: {created}");
    let first = read_as(&d, &token, "/v1/secret/data/app/db");
    if t0.elapsed() < Duration::from_secs(2) {
        assert_eq!(first.status, 200, "valid before its TTL: {first}");
    }
    let refused = poll_until(Duration::from_secs(20), "the token to expire", || {
        let r = read_as(&d, &token, "/v1/secret/data/app/db");
        (r.status != 200).then_some(r)
    });
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "refused before its TTL ran out: {refused}"
    );
    refused.assert_error(403, "permission denied");

    // explicit_max_ttl caps the ttl.
    let (_, capped) = d.bao_token_create(
        None,
        &["-policy=app-read", "-ttl=1h", "-explicit-max-ttl=2s"],
    );
    let lease = capped["auth"]["lease_duration"].as_u64().unwrap();
    assert!(lease <= 2, "explicit_max_ttl caps the lease: {capped}");
}

#[test]
fn use_limited_token_runs_out() {
    let d = setup();
    let (token, _) = d.bao_token_create(None, &["-policy=app-read", "-use-limit=2"]);
    assert_eq!(read_as(&d, &token, "/v1/secret/data/app/db").status, 200);
    assert_eq!(read_as(&d, &token, "/v1/secret/data/app/db").status, 200);
    read_as(&d, &token, "/v1/secret/data/app/db").assert_error(403, "permission denied");
}

#[test]
fn renew_self_extends_a_renewable_token() {
    let d = setup();
    let (token, _) = d.bao_token_create(None, &["-policy=app-read", "-ttl=30m"]);
    let out = d
        .bao_as(
            Some(&token),
            &["token", "renew", "-format=json", "-increment=2h"],
        )
        .ok();
    let lease = out.json()["auth"]["lease_duration"].as_u64().unwrap();
    assert!(
        lease > 30 * 60 && lease <= 2 * 3600,
        "renewed to about 2h: {out}"
    );

    let (fixed, _) =
        d.bao_token_create(None, &["-policy=app-read", "-ttl=30m", "-renewable=false"]);
    let out = d.bao_as(Some(&fixed), &["token", "renew", "-increment=2h"]);
    assert_ne!(out.status, 0, "a non-renewable token cannot renew: {out}");
}

#[test]
fn deny_and_plus_globs() {
    let d = setup();
    d.bao_policy_write(
        "fine",
        r#"
path "secret/data/app/*" { capabilities = ["read", "create", "update"] }
path "secret/data/app/locked" { capabilities = ["deny"] }
path "secret/data/team/+/config" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["list"] }
"#,
    );
    d.bao(&["kv", "put", "-mount=secret", "app/locked", "k=v"])
        .ok();
    d.bao(&["kv", "put", "-mount=secret", "team/blue/config", "k=v"])
        .ok();
    d.bao(&["kv", "put", "-mount=secret", "team/blue/other", "k=v"])
        .ok();
    d.bao(&["kv", "put", "-mount=secret", "team/blue/x/config", "k=v"])
        .ok();
    let (token, _) = d.bao_token_create(None, &["-policy=fine"]);

    assert_eq!(read_as(&d, &token, "/v1/secret/data/app/db").status, 200);
    read_as(&d, &token, "/v1/secret/data/app/locked").assert_error(403, "permission denied");
    let w = d.http(
        "POST",
        "/v1/secret/data/app/new",
        Some(&token),
        Body::Json(r#"{"data":{"a":"b"}}"#),
    );
    assert_eq!(w.status, 200, "create granted: {w}");
    d.http(
        "POST",
        "/v1/secret/data/app/locked",
        Some(&token),
        Body::Json(r#"{"data":{"a":"b"}}"#),
    )
    .assert_error(403, "permission denied");

    assert_eq!(
        read_as(&d, &token, "/v1/secret/data/team/blue/config").status,
        200
    );
    read_as(&d, &token, "/v1/secret/data/team/blue/other").assert_error(403, "permission denied");
    read_as(&d, &token, "/v1/secret/data/team/blue/x/config")
        .assert_error(403, "permission denied");

    let list = d.http("LIST", "/v1/secret/metadata/app/", Some(&token), Body::None);
    assert_eq!(list.status, 200, "list granted: {list}");
    let keys = list.json()["data"]["keys"].clone();
    assert!(keys.as_array().unwrap().iter().any(|k| k == "db"), "{list}");
}

#[test]
fn sudo_is_needed_for_root_protected_paths() {
    let d = setup();
    d.bao_policy_write("rot", r#"path "sys/rotate" { capabilities = ["update"] }"#);
    d.bao_policy_write(
        "rot-sudo",
        r#"path "sys/rotate" { capabilities = ["update", "sudo"] }"#,
    );
    let (plain, _) = d.bao_token_create(None, &["-policy=rot"]);
    let (sudo, _) = d.bao_token_create(None, &["-policy=rot-sudo"]);
    d.http("PUT", "/v1/sys/rotate", Some(&plain), Body::None)
        .assert_error(403, "permission denied");
    let r = d.http("PUT", "/v1/sys/rotate", Some(&sudo), Body::None);
    assert!(r.status == 200 || r.status == 204, "{r}");
}

#[test]
fn policy_crud_and_effect_of_deleting_a_policy() {
    let d = setup();
    let (token, _) = d.bao_token_create(None, &["-policy=app-read"]);
    let list = d.bao(&["policy", "list", "-format=json"]).ok();
    let names: Vec<String> = serde_json::from_str(&list.stdout).unwrap();
    assert!(names.contains(&"app-read".to_string()), "{list}");
    assert!(names.contains(&"root".to_string()), "{list}");

    let read = d.bao(&["policy", "read", "app-read"]).ok();
    assert!(read.stdout.contains("secret/data/app/*"), "{read}");
    let raw = d.get("/v1/sys/policies/acl/app-read");
    assert_eq!(raw.status, 200, "{raw}");
    assert_eq!(raw.json()["data"]["name"], "app-read", "{raw}");
    assert!(raw.json()["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("capabilities"));

    // Invalid HCL is refused with 400.
    let bad = d.send_json(
        "PUT",
        "/v1/sys/policies/acl/bad",
        r#"{"policy":"path \"x\" { capabilities = [\"fly\"] }"}"#,
    );
    assert_eq!(bad.status, 400, "{bad}");
    let bad = d.send_json("PUT", "/v1/sys/policies/acl/bad", r#"{"policy":"path {"}"#);
    assert_eq!(bad.status, 400, "{bad}");

    assert_eq!(read_as(&d, &token, "/v1/secret/data/app/db").status, 200);
    d.bao(&["policy", "delete", "app-read"]).ok();
    read_as(&d, &token, "/v1/secret/data/app/db").assert_error(403, "permission denied");
    let gone = d.get("/v1/sys/policies/acl/app-read");
    assert_eq!(gone.status, 404, "{gone}");
}

/// A policy the parser would recurse on past a worker's stack (it aborted the daemon:
/// a chain of operators, bare, in a string's interpolation or after a heredoc) is a 400, and the
/// appliance goes on serving. Vault reads policies as HCL 1, which has no operators, and
/// refuses these too.
#[test]
fn a_policy_deep_enough_to_exhaust_the_parser_is_refused_and_the_daemon_lives() {
    let d = Daemon::dev(&[]);
    for policy in [
        format!(
            "path \"x\" {{ capabilities = [\"read\"] }}\na = {}x\n",
            "-".repeat(2000)
        ),
        format!(
            "path \"x{}\" {{ capabilities = [\"read\"] }}\n",
            "${!".repeat(1000)
        ),
        format!(
            "path \"x\" {{ capabilities = [\"read\"] }}\na = {}\n",
            "[".repeat(2000)
        ),
        // `in` ends a word: the minus signs are operators.
        format!(
            "path \"x\" {{ capabilities = [\"read\"] }}\na = [for x in{}y: x]\n",
            "-".repeat(2000)
        ),
        // A line that starts with a heredoc's marker ends it, and expression follows.
        format!(
            "path \"x\" {{ capabilities = [\"read\"] }}\na = <<-e\n\ne{}x\n",
            "-".repeat(2000)
        ),
    ] {
        let body = serde_json::json!({ "policy": policy }).to_string();
        let bad = d.send_json("PUT", "/v1/sys/policies/acl/deep", &body);
        assert_eq!(bad.status, 400, "{bad}");
        let health = d.get("/v1/sys/health");
        assert_eq!(health.status, 200, "{health}");
    }
    let gone = d.get("/v1/sys/policies/acl/deep");
    assert_eq!(gone.status, 404, "{gone}");
}
