//! ACL parameter constraints (`allowed_parameters`, `denied_parameters`,
//! `required_parameters`) enforced by the running daemon, and which capability a write
//! needs (create or update) where Vault's existence check decides it. Everything here but
//! the parts marked otherwise is what OpenBao does (`IRONSEAL_REFERENCE=openbao`).

use serde_json::json;
use softhsm_tests::{reference_mode, Body, Daemon, HttpResponse};

#[track_caller]
fn put_policy(d: &Daemon, name: &str, hcl: &str) {
    let r = d.write_acl_policy(name, hcl);
    assert!(r.status == 204 || r.status == 200, "{r}");
}

/// A token holding `policies` (and `default`).
#[track_caller]
fn token(d: &Daemon, policies: &[&str]) -> String {
    d.create_token_http(&json!({ "policies": policies })).0
}

#[track_caller]
fn assert_written(r: &HttpResponse) {
    assert_eq!(r.status, 200, "{r}");
}

#[track_caller]
fn assert_denied(r: &HttpResponse) {
    r.assert_error(403, "permission denied");
}

/// Whether the root token sees transit key `name`.
fn key_exists(d: &Daemon, name: &str) -> bool {
    let r = d.get(&format!("/v1/transit/keys/{name}"));
    match r.status {
        200 => true,
        404 => false,
        _ => panic!("{r}"),
    }
}

const NO_EXPORT: &str = r#"
path "transit/keys/*" {
  capabilities = ["create", "update", "read"]
  denied_parameters = {
    "exportable" = []
  }
}
"#;

/// `denied_parameters = { "exportable" = [] }` stops an exportable
/// key, whatever the value or its spelling, while a plain key is created.
#[test]
fn a_denied_parameter_stops_an_exportable_transit_key() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    put_policy(&d, "no-export", NO_EXPORT);
    let t = token(&d, &["no-export"]);

    let out = d.bao_as(
        Some(&t),
        &["write", "transit/keys/plain", "type=aes256-gcm96"],
    );
    assert!(out.success(), "{out}");
    assert!(key_exists(&d, "plain"));
    let r = d.http("GET", "/v1/transit/keys/plain", Some(&t), Body::None);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["exportable"], false, "{r}");

    let out = d.bao_as(Some(&t), &["write", "transit/keys/exp1", "exportable=true"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("permission denied"), "{out}");
    assert!(out.stderr.contains("403"), "{out}");
    for body in [
        json!({"exportable": true}),
        json!({"exportable": "true"}),
        json!({"exportable": false}),
        json!({"Exportable": true}),
        json!({"type": "aes256-gcm96", "exportable": true}),
    ] {
        assert_denied(&d.post_json_as(&t, "/v1/transit/keys/exp2", &body));
    }
    assert!(!key_exists(&d, "exp1"));
    assert!(!key_exists(&d, "exp2"));

    // A policy that grants the same path without constraints does not lift them.
    put_policy(
        &d,
        "plain-keys",
        r#"path "transit/keys/*" { capabilities = ["update", "read"] }"#,
    );
    let both = token(&d, &["no-export", "plain-keys"]);
    assert_denied(&d.post_json_as(&both, "/v1/transit/keys/exp3", &json!({"exportable": true})));
    assert_written(&d.post_json_as(&both, "/v1/transit/keys/plain2", &json!({})));
    // A more specific pattern governs alone, its parent's constraints included.
    put_policy(
        &d,
        "one-exportable",
        r#"path "transit/keys/exportable-ok" { capabilities = ["update"] }"#,
    );
    let special = token(&d, &["no-export", "one-exportable"]);
    assert_written(&d.post_json_as(
        &special,
        "/v1/transit/keys/exportable-ok",
        &json!({"exportable": true}),
    ));
    assert!(key_exists(&d, "exportable-ok"));

    // Root is never constrained.
    let r = d.send_json(
        "POST",
        "/v1/transit/keys/root-exp",
        r#"{"exportable":true}"#,
    );
    assert_written(&r);

    if !reference_mode() {
        // Ironseal's handlers also read a write's fields from the query string (OpenBao
        // ignores the query of a write), so the constraint covers it too.
        assert_denied(&d.http(
            "POST",
            "/v1/transit/keys/exp4?exportable=true",
            Some(&t),
            Body::None,
        ));
        assert!(!key_exists(&d, "exp4"));
    }
}

/// `denied_parameters = { "exportable" = ["true"] }` stops every spelling transit reads
/// as true (`1`, `"1"`, `"t"`, `"TRUE"`), not only `true` and `"true"`.
#[test]
fn a_denied_true_stops_every_spelling_of_true() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    put_policy(
        &d,
        "no-true-export",
        r#"path "transit/keys/*" {
  capabilities = ["create", "update", "read"]
  denied_parameters = { "exportable" = ["true"] }
}"#,
    );
    let t = token(&d, &["no-true-export"]);

    assert_denied(&d.post_json_as(
        &t,
        "/v1/transit/keys/canonical",
        &json!({"exportable": "true"}),
    ));
    assert!(!key_exists(&d, "canonical"));
    let out = d.bao_as(
        Some(&t),
        &["write", "transit/keys/cli-true", "exportable=true"],
    );
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("permission denied"), "{out}");
    assert!(!key_exists(&d, "cli-true"));
    assert_written(&d.post_json_as(
        &t,
        "/v1/transit/keys/not-exportable",
        &json!({"exportable": false}),
    ));
    assert!(key_exists(&d, "not-exportable"));

    // Deliberately stricter than OpenBao, which compares a listed value with the request
    // value's JSON type and text strictly, and so lets `true`, `1`, `"1"` and `"t"`
    // through (checked in reference mode) while its transit handler reads them all as
    // true: a fail-closed difference.
    if reference_mode() {
        return;
    }
    let out = d.bao_as(Some(&t), &["write", "transit/keys/cli-one", "exportable=1"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("permission denied"), "{out}");
    let out = d.bao_as(Some(&t), &["write", "transit/keys/cli-t", "exportable=t"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("permission denied"), "{out}");
    for (i, body) in [
        json!({"exportable": true}),
        json!({"exportable": 1}),
        json!({"exportable": 2}),
        json!({"exportable": "1"}),
        json!({"exportable": "t"}),
        json!({"exportable": "TRUE"}),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("spelling{i}");
        assert_denied(&d.post_json_as(&t, &format!("/v1/transit/keys/{name}"), &body));
        assert!(!key_exists(&d, &name));
    }
    assert!(!key_exists(&d, "cli-one"));
    assert!(!key_exists(&d, "cli-t"));
}

/// Value lists with globs, `"*"`, and required parameters, on writes and on a read's
/// query.
#[test]
fn allowed_values_globs_and_required_parameters() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    d.ensure_secret_kv2();
    put_policy(
        &d,
        "aes-only",
        r#"
path "transit/keys/*" {
  capabilities = ["update"]
  allowed_parameters = {
    "type" = ["aes*", "chacha20-poly1305"]
    "auto_rotate_period" = []
  }
  required_parameters = ["type"]
}
path "transit/keys/bare-*" {
  capabilities = ["update"]
  denied_parameters = {
    "*" = []
  }
}
path "secret/data/pinned" {
  capabilities = ["read"]
  required_parameters = ["version"]
}
"#,
    );
    let t = token(&d, &["aes-only"]);

    for (name, body, ok) in [
        ("a1", json!({"type": "aes128-gcm96"}), true),
        (
            "a2",
            json!({"type": "aes256-gcm96", "auto_rotate_period": "24h"}),
            true,
        ),
        ("a3", json!({"type": "chacha20-poly1305"}), true),
        ("a4", json!({"type": "rsa-2048"}), false),
        ("a5", json!({"type": "xaes256"}), false),
        (
            "a6",
            json!({"type": "aes256-gcm96", "derived": true}),
            false,
        ),
        // required_parameters: no type, no key.
        ("a7", json!({"auto_rotate_period": "24h"}), false),
        ("a8", json!({}), false),
    ] {
        let r = d.post_json_as(&t, &format!("/v1/transit/keys/{name}"), &body.clone());
        if ok {
            assert_written(&r);
        } else {
            assert_denied(&r);
        }
        assert_eq!(key_exists(&d, name), ok, "{name} {body}");
    }
    let out = d.bao_as(
        Some(&t),
        &["write", "transit/keys/cli", "type=aes128-gcm96"],
    );
    assert!(out.success(), "{out}");
    let out = d.bao_as(Some(&t), &["write", "transit/keys/cli2", "type=ecdsa-p256"]);
    assert!(
        !out.success() && out.stderr.contains("permission denied"),
        "{out}"
    );

    // `"*" = []` denies every parameter, and a request carrying none passes.
    assert_denied(&d.post_json_as(
        &t,
        "/v1/transit/keys/bare-1",
        &json!({"type": "aes256-gcm96"}),
    ));
    assert_written(&d.post_json_as(&t, "/v1/transit/keys/bare-2", &json!({})));
    assert!(!key_exists(&d, "bare-1") && key_exists(&d, "bare-2"));

    // A read's parameters are its query.
    d.bao(&["kv", "put", "-mount=secret", "pinned", "k=v"]).ok();
    let get = |path: &str| d.http("GET", path, Some(&t), Body::None);
    assert_denied(&get("/v1/secret/data/pinned"));
    assert_denied(&get("/v1/secret/data/pinned?Version=1"));
    let r = get("/v1/secret/data/pinned?version=1");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["data"]["k"], "v", "{r}");
}

/// Which capability a write needs is decided as in Vault: kv v2 data and metadata writes
/// and a transit encrypt that would create its key run an existence check (create when
/// absent, update when present); `transit/keys/NAME` has none, so creating a key is an
/// update, and `create` alone does not allow it.
#[test]
fn create_or_update_follows_vaults_existence_checks() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    d.ensure_secret_kv2();
    for cap in ["create", "update"] {
        put_policy(
            &d,
            &format!("{cap}-only"),
            &format!(
                r#"
path "transit/keys/*" {{ capabilities = ["{cap}"] }}
path "transit/encrypt/*" {{ capabilities = ["{cap}"] }}
path "secret/data/*" {{ capabilities = ["{cap}"] }}
"#
            ),
        );
    }
    let create = token(&d, &["create-only"]);
    let update = token(&d, &["update-only"]);
    let plaintext = json!({"plaintext": "aGVsbG8="});

    assert_denied(&d.post_json_as(&create, "/v1/transit/keys/k1", &json!({})));
    assert!(!key_exists(&d, "k1"));
    assert_written(&d.post_json_as(&update, "/v1/transit/keys/k1", &json!({})));
    assert!(key_exists(&d, "k1"));

    // Encrypting with a missing key creates it: create is needed, update is not enough.
    assert_denied(&d.post_json_as(&update, "/v1/transit/encrypt/e1", &plaintext.clone()));
    assert!(!key_exists(&d, "e1"));
    let r = d.post_json_as(&create, "/v1/transit/encrypt/e1", &plaintext.clone());
    assert_eq!(r.status, 200, "{r}");
    assert!(key_exists(&d, "e1"));
    // Once it exists, encrypting is an update.
    assert_denied(&d.post_json_as(&create, "/v1/transit/encrypt/e1", &plaintext.clone()));
    let r = d.post_json_as(&update, "/v1/transit/encrypt/e1", &plaintext);
    assert_eq!(r.status, 200, "{r}");

    let secret = json!({"data": {"k": "v"}});
    assert_denied(&d.post_json_as(&update, "/v1/secret/data/s1", &secret.clone()));
    let r = d.post_json_as(&create, "/v1/secret/data/s1", &secret.clone());
    assert_eq!(r.status, 200, "{r}");
    assert_denied(&d.post_json_as(&create, "/v1/secret/data/s1", &secret.clone()));
    let r = d.post_json_as(&update, "/v1/secret/data/s1", &secret);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["version"], 2, "{r}");
}

/// A constraint the appliance cannot enforce makes the policy write fail, and nothing is
/// stored. Ironseal only: OpenBao accepts these keys. (The wrapping TTLs are enforced:
/// `tests/wrapping.rs`.)
#[test]
fn unenforceable_constraints_are_refused_at_write() {
    if reference_mode() {
        return;
    }
    let d = Daemon::dev(&[]);
    for (key, block, needle) in [
        ("mfa_methods", r#"mfa_methods = ["totp"]"#, "MFA"),
        (
            "control_group",
            r#"control_group { ttl = "4h" }"#,
            "control groups",
        ),
        (
            "subscribe_event_types",
            r#"subscribe_event_types = ["kv*"]"#,
            "event subscriptions",
        ),
        (
            "allowed_parameters",
            r#"allowed_parameters = { "*" = ["x"] }"#,
            "takes only []",
        ),
    ] {
        let hcl = format!("path \"secret/*\" {{\n  capabilities = [\"read\"]\n  {block}\n}}\n");
        let r = d.write_acl_policy("bad", &hcl);
        r.assert_error(400, &format!("{key} cannot be enforced"));
        r.assert_error(400, needle);
        let r = d.get("/v1/sys/policies/acl/bad");
        assert_eq!(r.status, 404, "{key}: {r}");
    }
    // Vault's spellings of "no constraint" are accepted.
    put_policy(
        &d,
        "fine",
        "path \"secret/*\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = 0\n  mfa_methods = []\n}\n",
    );
}
