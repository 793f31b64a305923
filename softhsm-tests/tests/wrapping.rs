//! Response wrapping, as Vault does it: `X-Vault-Wrap-TTL` on any request answers with a
//! single-use wrapping token in place of the response, and `sys/wrapping/*` unwraps,
//! looks up and rewraps it. Driven by the `bao` CLI and by hvac; every test also runs
//! against OpenBao (`IRONSEAL_REFERENCE=openbao`).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use softhsm_tests::tools::python;
use softhsm_tests::{poll_until, Body, Daemon, HttpResponse, Output};

const INVALID: &str = "wrapping token is not valid or does not exist";

fn wrap_info(out: &Output) -> Value {
    let info = out.json()["wrap_info"].clone();
    assert!(
        info["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{out}"
    );
    info
}

fn token_of(info: &Value) -> String {
    info["token"].as_str().unwrap_or_default().to_string()
}

/// `POST /v1/sys/wrapping/lookup` without a token, as Vault serves it.
fn lookup(d: &Daemon, token: &str) -> HttpResponse {
    d.http(
        "POST",
        "/v1/sys/wrapping/lookup",
        None,
        Body::Json(&json!({ "token": token }).to_string()),
    )
}

#[test]
fn bao_wraps_a_kv_read_which_unwraps_once() {
    let d = Daemon::dev(&[]);
    let secret = "wrapped-kv-3318";
    d.kv_put_value("wrapped", secret);

    let out = d
        .bao(&[
            "kv",
            "get",
            "-wrap-ttl=60s",
            "-format=json",
            "secret/wrapped",
        ])
        .ok();
    assert!(!out.stdout.contains(secret), "{out}");
    let info = wrap_info(&out);
    assert_eq!(info["ttl"], 60, "{out}");
    assert_eq!(info["creation_path"], "secret/data/wrapped", "{out}");
    assert_eq!(info["wrapped_accessor"], "", "{out}");
    let token = token_of(&info);

    let out = d.bao(&["unwrap", "-format=json", &token]).ok();
    assert_eq!(out.json()["data"]["data"]["value"], secret, "{out}");
    let again = d.bao(&["unwrap", &token]);
    assert!(!again.success(), "{again}");
    assert!(again.stderr.contains(INVALID), "{again}");

    // `bao read` wraps too, and the wrapping token unwraps itself (no token of the
    // caller's own), with the TTL as Vault parses durations.
    let out = d
        .bao(&[
            "read",
            "-wrap-ttl=2m",
            "-format=json",
            "secret/data/wrapped",
        ])
        .ok();
    let info = wrap_info(&out);
    assert_eq!(info["ttl"], 120, "{out}");
    let token = token_of(&info);
    let out = d.bao_as(Some(&token), &["unwrap", "-format=json"]).ok();
    assert_eq!(out.json()["data"]["data"]["value"], secret, "{out}");
    lookup(&d, &token).assert_error(400, INVALID);
}

#[test]
fn bao_wraps_a_token_create_and_the_unwrapped_token_works() {
    let d = Daemon::dev(&[]);
    d.kv_put_value("for-the-app", "app-secret-771");
    d.bao_policy_write(
        "app",
        "path \"secret/data/for-the-app\" { capabilities = [\"read\"] }\n",
    );
    let out = d
        .bao(&[
            "token",
            "create",
            "-wrap-ttl=5m",
            "-policy=app",
            "-format=json",
        ])
        .ok();
    assert!(out.json()["auth"].is_null(), "{out}");
    let info = wrap_info(&out);
    assert_eq!(info["creation_path"], "auth/token/create", "{out}");
    let accessor = info["wrapped_accessor"].as_str().unwrap_or_default();
    assert!(!accessor.is_empty(), "{out}");

    let out = d.bao(&["unwrap", "-format=json", &token_of(&info)]).ok();
    let auth = &out.json()["auth"];
    assert_eq!(auth["accessor"], accessor, "{out}");
    let app = auth["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let read = d
        .bao_as(
            Some(&app),
            &["kv", "get", "-field=value", "-mount=secret", "for-the-app"],
        )
        .ok();
    assert_eq!(read.stdout.trim(), "app-secret-771", "{read}");
}

#[test]
fn lookup_rewrap_and_wrapped_data() {
    let d = Daemon::dev(&[]);
    let out = d
        .bao(&[
            "write",
            "-wrap-ttl=5m",
            "-format=json",
            "sys/wrapping/wrap",
            "note=handed-over",
        ])
        .ok();
    let first = token_of(&wrap_info(&out));

    let r = lookup(&d, &first);
    assert_eq!(r.status, 200, "{r}");
    let data = &r.json()["data"];
    assert_eq!(data["creation_path"], "sys/wrapping/wrap", "{r}");
    assert_eq!(data["creation_ttl"], 300, "{r}");
    assert!(data["creation_time"].as_str().is_some(), "{r}");

    // Rewrapped: the old token stops working, the new one keeps the path and TTL.
    let r = d.post_json("/v1/sys/wrapping/rewrap", &json!({ "token": first }));
    assert_eq!(r.status, 200, "{r}");
    let info = r.json()["wrap_info"].clone();
    assert_eq!(info["creation_path"], "sys/wrapping/wrap", "{r}");
    assert_eq!(info["ttl"], 300, "{r}");
    let second = token_of(&info);
    assert_ne!(first, second);
    lookup(&d, &first).assert_error(400, INVALID);
    d.post_json("/v1/sys/wrapping/unwrap", &json!({ "token": first }))
        .assert_error(400, INVALID);
    let r = d.post_json("/v1/sys/wrapping/unwrap", &json!({ "token": second }));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["note"], "handed-over", "{r}");

    // sys/wrapping/wrap only makes sense wrapped.
    d.post_json("/v1/sys/wrapping/wrap", &json!({ "a": "b" }))
        .assert_error(400, "endpoint requires response wrapping to be used");
}

#[test]
fn an_expired_wrapping_token_is_refused() {
    let d = Daemon::dev(&[]);
    let out = d
        .bao(&[
            "write",
            "-wrap-ttl=2s",
            "-format=json",
            "sys/wrapping/wrap",
            "short=lived",
        ])
        .ok();
    let token = token_of(&wrap_info(&out));
    poll_until(
        Duration::from_secs(60),
        "the wrapping token to expire",
        || {
            let r = lookup(&d, &token);
            (r.status != 200).then_some(r)
        },
    )
    .assert_error(400, INVALID);
    d.post_json("/v1/sys/wrapping/unwrap", &json!({ "token": token }))
        .assert_error(400, INVALID);
}

#[test]
fn policy_wrapping_ttl_bounds_are_enforced() {
    let d = Daemon::dev(&[]);
    d.kv_put_value("guarded", "guarded-9051");
    d.bao_policy_write(
        "wrapped-only",
        "path \"secret/data/guarded\" {\n  capabilities = [\"read\"]\n  \
         min_wrapping_ttl = \"30s\"\n  max_wrapping_ttl = \"5m\"\n}\n",
    );
    let (token, _) = d.bao_token_create(None, &["-policy=wrapped-only"]);
    let read = |wrap: Option<&str>| {
        let mut args = vec!["read", "-format=json"];
        let flag = wrap.map(|w| format!("-wrap-ttl={w}"));
        if let Some(f) = &flag {
            args.push(f);
        }
        args.push("secret/data/guarded");
        d.bao_as(Some(&token), &args)
    };
    // A policy with a minimum requires wrapping; outside the bounds is refused too.
    for wrap in [None, Some("10s"), Some("10m")] {
        let out = read(wrap);
        assert!(!out.success(), "{out}");
        assert!(out.stderr.contains("permission denied"), "{out}");
        assert!(!out.stdout.contains("guarded-9051"), "{out}");
    }
    let out = read(Some("1m")).ok();
    let info = wrap_info(&out);
    assert_eq!(info["ttl"], 60, "{out}");
    let out = d.bao(&["unwrap", "-format=json", &token_of(&info)]).ok();
    assert_eq!(out.json()["data"]["data"]["value"], "guarded-9051", "{out}");
}

#[test]
fn hvac_wraps_unwraps_looks_up_and_rewraps() {
    let d = Daemon::dev(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hvac/wrapping.py");
    let out = d
        .client_command(&python(), d.token.as_deref())
        .arg(script)
        .arg("hvac-secret-6120")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "ok", "{stderr}");
}
