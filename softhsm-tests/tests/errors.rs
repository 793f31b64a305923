//! Errors as Vault answers them (`{"errors":[...]}` with Vault's status codes), the body
//! size limit, the sealed appliance, and dev mode's Vault-compatible flags.

use std::io::Write;

use softhsm_tests::{free_port, reference_mode, Body, Daemon};

const MIB: usize = 1024 * 1024;

#[test]
fn unknown_paths_are_404_with_an_error_body() {
    let d = Daemon::dev(&[]);
    for path in [
        "/v1/no-such-mount/foo",
        "/v1/nothing",
        "/v1/sys/no-such-endpoint",
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 404, "{r}");
        r.errors(); // a Vault error body
    }
    // Outside /v1 too.
    let r = d.http("GET", "/v2/secret/data/x", d.token.as_deref(), Body::None);
    assert_eq!(r.status, 404, "{r}");
    // The CLI reports it as an API error.
    let out = d.bao(&["read", "no-such-mount/foo"]);
    assert_eq!(out.status, 2, "{out}");
}

fn big_body(dir: &std::path::Path, name: &str, size: usize) -> std::path::PathBuf {
    // A syntactically valid kv v2 write whose value fills `size` bytes.
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    let head = br#"{"data":{"blob":""#;
    let tail = br#""}}"#;
    f.write_all(head).unwrap();
    let chunk = vec![b'a'; MIB];
    let mut left = size - head.len() - tail.len();
    while left > 0 {
        let n = left.min(MIB);
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.write_all(tail).unwrap();
    path
}

#[test]
fn bodies_over_32_mib_are_413() {
    let d = Daemon::dev(&[]);
    let token = d.token.clone().unwrap();
    let auth = format!("X-Vault-Token: {token}");

    // A megabyte is accepted.
    let ok = big_body(d.dir(), "ok.json", MIB);
    let r = d
        .http_with(
            "POST",
            "/v1/secret/data/big",
            Body::File(&ok),
            &["-H", &auth],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r}");

    // 33 MiB with a Content-Length: 413.
    let over = big_body(d.dir(), "over.json", 33 * MIB);
    let r = d
        .http_with(
            "POST",
            "/v1/secret/data/big",
            Body::File(&over),
            &["-H", &auth],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 413, "{r}");
    // 33 MiB chunked, without a Content-Length: 413 as well.
    let r = d
        .http_with(
            "POST",
            "/v1/secret/data/big",
            Body::Chunked(&over),
            &["-H", &auth],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 413, "{r}");
    // Unauthenticated and to sys/: the limit holds before anything else.
    let r = d
        .http_with("PUT", "/v1/sys/unseal", Body::File(&over), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 413, "{r}");

    // The daemon is still fine and stored nothing from the rejected writes.
    let r = d.get("/v1/secret/data/big");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["metadata"]["version"], 1, "{r}");
}

#[test]
fn malformed_requests_are_400() {
    let d = Daemon::dev(&[]);
    let token = d.token.clone();
    for body in ["not json", "{\"data\":", "[1,2,3]"] {
        let r = d.http(
            "POST",
            "/v1/secret/data/x",
            token.as_deref(),
            Body::Json(body),
        );
        assert_eq!(r.status, 400, "{r}");
        assert!(!r.errors().is_empty(), "{r}");
    }
    // kv v2 needs a data object.
    let r = d.send_json("POST", "/v1/secret/data/x", r#"{"data":"string"}"#);
    assert_eq!(r.status, 400, "{r}");
    // A version that is not a number.
    let r = d.get("/v1/secret/data/x?version=abc");
    assert_eq!(r.status, 400, "{r}");
    // init on an initialised appliance.
    let r = d.http(
        "PUT",
        "/v1/sys/init",
        None,
        Body::Json(r#"{"secret_shares":1,"secret_threshold":1}"#),
    );
    r.assert_error(400, "already initialized");
}

#[test]
fn bad_init_parameters_are_400_and_leave_it_uninitialised() {
    let d = Daemon::config(false);
    for body in [
        r#"{"secret_shares":3,"secret_threshold":5}"#,
        r#"{"secret_shares":0,"secret_threshold":0}"#,
        r#"{"secret_shares":1,"secret_threshold":2}"#,
        r#"{"secret_shares":3,"secret_threshold":1}"#,
    ] {
        let r = d.http("PUT", "/v1/sys/init", None, Body::Json(body));
        assert_eq!(r.status, 400, "{r}");
        r.errors();
    }
    let r = d.http("GET", "/v1/sys/init", None, Body::None);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["initialized"], false, "{r}");
}

#[test]
fn a_sealed_appliance_answers_503_outside_sys() {
    let d = Daemon::dev(&[]);
    d.bao(&["kv", "put", "-mount=secret", "x", "a=b"]).ok();
    let out = d.bao(&["operator", "seal"]).ok();
    assert!(out.stdout.contains("Success! Vault is sealed."), "{out}");
    for path in [
        "/v1/secret/data/x",
        "/v1/auth/token/lookup-self",
        "/v1/no-such-mount/x",
    ] {
        d.get(path).assert_error(503, "Vault is sealed");
    }
    let w = d.send_json("POST", "/v1/secret/data/x", r#"{"data":{"a":"c"}}"#);
    w.assert_error(503, "Vault is sealed");
    // sys/ still answers what a sealed appliance can.
    let st = d.http("GET", "/v1/sys/seal-status", None, Body::None);
    assert_eq!(st.status, 200, "{st}");
    assert_eq!(st.json()["sealed"], true, "{st}");
    assert_eq!(st.json()["t"], 1, "{st}");
    assert_eq!(st.json()["n"], 1, "{st}");
    let h = d.http("GET", "/v1/sys/health", None, Body::None);
    assert_eq!(h.status, 503, "{h}");
    // The CLI shows the same.
    let kv = d.bao(&["kv", "get", "-mount=secret", "x"]);
    assert_eq!(kv.status, 2, "{kv}");
    assert!(kv.stderr.contains("Vault is sealed"), "{kv}");

    // The dev unseal key unseals it; the data is intact.
    let key = d.dev_unseal_key.clone().unwrap();
    let u = d
        .bao_as(None, &["operator", "unseal", "-format=json", &key])
        .ok();
    assert_eq!(u.json()["sealed"], false, "{u}");
    let got = d.bao(&["kv", "get", "-field=a", "-mount=secret", "x"]).ok();
    assert_eq!(got.stdout.trim(), "b");
}

#[test]
fn dev_flags_root_token_id_and_listen_address() {
    let port = free_port();
    let d = Daemon::dev(&[
        "-dev-root-token-id=my-root-token",
        &format!("-dev-listen-address=127.0.0.1:{port}"),
    ]);
    assert_eq!(d.addr, format!("http://127.0.0.1:{port}"));
    assert_eq!(d.token.as_deref(), Some("my-root-token"), "{}", d.logs());
    let logs = d.logs();
    assert!(
        logs.contains(&format!("http://127.0.0.1:{port}")),
        "dev mode prints its address:\n{logs}"
    );
    assert!(logs.contains("Unseal Key: "), "{logs}");

    let me = d.bao_token_lookup("my-root-token");
    let data = &me.data;
    assert!(me.has_policy("root"), "{me}");
    assert_eq!(data["id"], "my-root-token", "{me}");
    d.bao_as(
        Some("my-root-token"),
        &["kv", "put", "-mount=secret", "a", "b=c"],
    )
    .ok();
    // A wrong token is refused.
    let wrong = d.bao_as(
        Some("my-root-token-x"),
        &["kv", "get", "-mount=secret", "a"],
    );
    assert_eq!(wrong.status, 2, "{wrong}");

    // The `--flag value` spelling works too.
    let port2 = free_port();
    let d2 = Daemon::dev(&[
        "--dev-root-token-id",
        "other-root",
        "--dev-listen-address",
        &format!("127.0.0.1:{port2}"),
    ]);
    assert_eq!(d2.addr, format!("http://127.0.0.1:{port2}"));
    assert_eq!(d2.token.as_deref(), Some("other-root"));
    d2.bao(&["token", "lookup"]).ok();
    // Two dev servers are independent.
    let cross = d2.bao_as(Some("my-root-token"), &["token", "lookup"]);
    assert_eq!(cross.status, 2, "{cross}");
}

#[test]
fn dev_mode_without_flags_prints_a_working_root_token_and_unseal_key() {
    let d = Daemon::dev(&[]);
    let token = d.token.clone().unwrap();
    assert!(!token.is_empty());
    let key = d.dev_unseal_key.clone().unwrap();
    let raw = softhsm_tests::decode_key(&key);
    if !reference_mode() {
        // (OpenBao prints the bare 32-byte key when there is a single share.)
        assert_eq!(
            raw.len(),
            33,
            "the dev unseal key is one 33-byte share: {key}"
        );
    }
    let st = d.seal_status();
    assert_eq!(st["sealed"], false, "{st}");
    assert_eq!(st["t"], 1, "{st}");
    assert_eq!(st["n"], 1, "{st}");
    assert_eq!(st["type"], "shamir", "{st}");
    d.bao(&["token", "lookup"]).ok();
}
