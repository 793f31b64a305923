//! Durations from requests are bounded: a huge `delete_version_after`,
//! `auto_rotate_period` or destruction window is a 400 that says why, never a panic, a
//! wrapped-around time or a deletion in the past. Vault refuses the same values (Go's
//! durations end at about 292 years), so the `/v1` part also runs against OpenBao.

use serde_json::json;

use softhsm_tests::{reference_mode, Body, Daemon, HttpResponse};

/// 2^64 - 1 seconds, and hours past any clock.
const HUGE: [&str; 2] = ["999999999999h", "18446744073709551615"];

#[track_caller]
fn refused(r: HttpResponse) {
    assert_eq!(r.status, 400, "{r}");
    assert!(!r.errors().is_empty(), "{r}");
}

#[test]
fn huge_request_durations_are_refused() {
    let d = Daemon::dev(&[]);
    d.ensure_secret_kv2();
    d.ensure_transit();

    for huge in HUGE {
        refused(d.post_json(
            "/v1/secret/metadata/dva",
            &json!({ "delete_version_after": huge }),
        ));
        refused(d.post_json(
            "/v1/secret/config",
            &json!({ "delete_version_after": huge }),
        ));
        refused(d.post_json(
            "/v1/transit/keys/rotating",
            &json!({ "auto_rotate_period": huge }),
        ));
    }
    // The same as JSON numbers, where the parser sees an integer rather than text.
    refused(d.send_json(
        "POST",
        "/v1/secret/metadata/dva",
        r#"{"delete_version_after": 18446744073709551615}"#,
    ));
    refused(d.send_json(
        "POST",
        "/v1/transit/keys/rotating",
        r#"{"auto_rotate_period": 18446744073709551615}"#,
    ));
    // Nothing was half-written: the key does not exist.
    assert_eq!(d.get("/v1/transit/keys/rotating").status, 404);

    // The longest accepted setting works end to end: a write computes its deletion time.
    let r = d.post_json(
        "/v1/secret/metadata/dva",
        &json!({ "delete_version_after": "2562047h" }),
    );
    assert!(r.status == 204 || r.status == 200, "{r}");
    let r = d.post_json("/v1/secret/data/dva", &json!({ "data": { "k": "v" } }));
    assert_eq!(r.status, 200, "{r}");
    let r = d.get("/v1/secret/data/dva");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["data"]["k"], "v", "{r}");

    // A transit key's config refuses it too and keeps its period.
    let r = d.post_json(
        "/v1/transit/keys/rotating",
        &json!({ "auto_rotate_period": "24h" }),
    );
    assert_eq!(r.status, 200, "{r}");
    for huge in HUGE {
        refused(d.post_json(
            "/v1/transit/keys/rotating/config",
            &json!({ "auto_rotate_period": huge }),
        ));
    }
    let r = d.get("/v1/transit/keys/rotating");
    assert_eq!(r.json()["data"]["auto_rotate_period"], 86400, "{r}");

    // Still serving: nothing panicked.
    assert_eq!(d.get("/v1/sys/health").status, 200);
}

#[test]
fn huge_destruction_windows_are_refused() {
    if reference_mode() {
        // `/api/v1` is Ironseal's own.
        return;
    }
    let d = Daemon::dev(&[]);
    let token = d.token.clone().expect("dev root token");
    let api = |method: &str, path: &str, body: &str| {
        d.http(
            method,
            &format!("/api/v1/{path}"),
            Some(&token),
            Body::Json(body),
        )
    };
    let r = api("POST", "keys", r#"{"name":"doomed","algorithm":"EC_P256"}"#);
    assert!((200..300).contains(&r.status), "{r}");
    let id = r.json()["id"].as_str().expect("id").to_string();
    for window in ["18446744073709551615", "1e30", "9223372036854775807"] {
        let r = api(
            "POST",
            &format!("keys/{id}/schedule-destruction"),
            &format!(r#"{{"pendingWindowSeconds": {window}}}"#),
        );
        assert_eq!(r.status, 400, "{r}");
    }
    let r = api("GET", &format!("keys/{id}"), "");
    assert_eq!(r.json()["state"], "ENABLED", "{r}");
}
