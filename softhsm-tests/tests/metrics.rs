//! `sys/metrics` scraped and parsed with Prometheus's own text-format parser (Python
//! `prometheus_client.parser`), its counters moving after requests; Vault's JSON form;
//! the token it needs unless the listener's telemetry block opens it; `sys/host-info`.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use softhsm_tests::tools::python;
use softhsm_tests::{reference_mode, Body, Daemon};

/// The samples of a text-format page, as `[[name, {labels}, value], ...]`.
fn parse(text: &str) -> Vec<(String, Value, f64)> {
    const SCRIPT: &str = "
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if s.value == s.value:  # summaries with no observation yet say NaN
            out.append([s.name, s.labels, s.value])
print(json.dumps(out))
";
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v.is_empty(), "no samples in:\n{text}");
    v
}

/// The sum of the samples named `name` whose labels include `labels`.
fn total(samples: &[(String, Value, f64)], name: &str, labels: &Value) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| l.get(k) == Some(v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

fn scrape(d: &Daemon) -> Vec<(String, Value, f64)> {
    let r = d.get("/v1/sys/metrics?format=prometheus");
    assert_eq!(r.status, 200, "{r}");
    parse(&r.body)
}

/// The request counter this server keeps for kv requests under `secret/`.
fn kv_requests(samples: &[(String, Value, f64)]) -> f64 {
    if reference_mode() {
        total(samples, "vault_core_handle_request_count", &json!({}))
    } else {
        total(
            samples,
            "ironseal_http_requests_total",
            &json!({"family": "secret"}),
        )
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_counters_move() {
    let d = Daemon::dev(&[]);
    let before = scrape(&d);
    for i in 0..5 {
        d.kv_put_value(&format!("m{i}"), "v");
    }
    let after = scrape(&d);
    assert!(
        kv_requests(&after) >= kv_requests(&before) + 5.0,
        "the request counter did not move: {} -> {}",
        kv_requests(&before),
        kv_requests(&after)
    );
    if !reference_mode() {
        let ok = json!({"family": "secret", "code": "200"});
        assert!(total(&after, "ironseal_http_requests_total", &ok) >= 5.0);
        assert!(
            total(
                &after,
                "ironseal_http_request_duration_seconds_count",
                &json!({"family": "secret"})
            ) >= 5.0
        );
        assert_eq!(total(&after, "ironseal_unsealed", &json!({})), 1.0);
        assert!(total(&after, "ironseal_storage_commits_total", &json!({})) >= 5.0);
        for name in [
            "ironseal_audit_failures_total",
            "ironseal_sync_outbox_depth",
            "ironseal_storage_wal_bytes",
        ] {
            assert!(
                after.iter().any(|(n, _, _)| n == name),
                "{name} missing: {after:?}"
            );
        }
    }

    // Vault's default form is go-metrics' JSON summary.
    let r = d.get("/v1/sys/metrics");
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    for key in ["Gauges", "Counters", "Samples"] {
        assert!(v[key].is_array(), "{key} missing: {r}");
    }
    let r = d.get("/v1/sys/metrics?format=influx");
    assert_eq!(r.status, 400, "{r}");
    assert!(r.body.contains("unknown"), "{r}");

    // A token is needed (OpenBao's dev listener opens metrics to anyone).
    if !reference_mode() {
        let r = d.http("GET", "/v1/sys/metrics?format=prometheus", None, Body::None);
        assert_eq!(r.status, 403, "{r}");
    }
}

#[test]
fn the_listener_telemetry_block_opens_metrics_without_a_token() {
    let d = Daemon::config_with_listener(
        false,
        "  telemetry {\n    unauthenticated_metrics_access = true\n  }\n",
    );
    // Sealed (not even initialised), and no token: Vault serves them all the same.
    let r = d.http("GET", "/v1/sys/metrics", None, Body::None);
    assert_eq!(r.status, 200, "{r}");
    assert!(r.json()["Gauges"].is_array(), "{r}");
    if !reference_mode() {
        // (OpenBao's Prometheus form needs a top-level telemetry block, which the
        // appliance's configuration does not take.)
        let r = d.http("GET", "/v1/sys/metrics?format=prometheus", None, Body::None);
        assert_eq!(r.status, 200, "{r}");
        let samples = parse(&r.body);
        assert_eq!(total(&samples, "ironseal_unsealed", &json!({})), 0.0);
        assert_eq!(total(&samples, "ironseal_initialized", &json!({})), 0.0);
    }
}

#[test]
fn host_info_describes_the_machine_to_sudo_holders() {
    let d = Daemon::dev(&[]);
    let r = d.get("/v1/sys/host-info");
    assert_eq!(r.status, 200, "{r}");
    let data = &r.json()["data"];
    assert!(data["host"]["hostname"].is_string(), "{r}");
    assert!(data["memory"]["total"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(data["cpu"].as_array().is_some_and(|c| !c.is_empty()), "{r}");
    assert!(data["disk"][0]["total"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(data["timestamp"].is_string(), "{r}");

    if !reference_mode() {
        // Root-protected, as Vault documents it: read alone is not enough.
        d.write_acl_policy(
            "hostinfo",
            "path \"sys/host-info\" { capabilities = [\"read\"] }",
        );
        let (token, _) = d.create_token_http(&json!({"policies": ["hostinfo"]}));
        let r = d.http("GET", "/v1/sys/host-info", Some(&token), Body::None);
        assert_eq!(r.status, 403, "{r}");
    }
}

/// The server's `telemetry` block: `prometheus_retention_time` turns the text format on
/// (OpenBao serves none without it) or off with "0", answered as OpenBao does.
#[test]
fn the_server_telemetry_block_turns_the_prometheus_format_on_or_off() {
    for (retention, served) in [("30s", true), ("0", false)] {
        let mut d = Daemon::config_with_top_level(
            false,
            &format!(
                "telemetry {{\n  prometheus_retention_time = \"{retention}\"\n  disable_hostname = true\n}}"
            ),
        );
        d.init(1, 1);
        d.unseal();
        let r = d.get("/v1/sys/metrics?format=prometheus");
        if served {
            assert_eq!(r.status, 200, "{r}");
            assert!(!parse(&r.body).is_empty(), "{r}");
        } else {
            assert_eq!(r.status, 400, "{r}");
            assert!(r.body.contains("prometheus is not enabled"), "{r}");
        }
    }
}
