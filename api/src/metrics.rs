//! What the listener counts of the requests it answers, and `sys/metrics`'s two
//! renderings of it with the engine's own figures: the Prometheus text format (encoded by
//! `prometheus-client`) and Vault's JSON (go-metrics' in-memory sink's shape).
//!
//! Requests are counted by path family (a `sys/` endpoint family, an auth method, a
//! secrets engine's mount, or the key API's resource), method and status. The family is
//! taken from what the appliance serves, never from the raw path, so a client sending
//! random paths cannot grow the label sets without bound.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use engine::ops::sys::metrics::EngineFigures;
use engine::Core;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

/// Upper bounds of the latency histogram's buckets, in seconds: from a cached kv read
/// to an HSM-bound RSA operation under load.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `sys/` endpoint families this appliance serves; any other `sys/` path counts as
/// `sys/other`.
pub(crate) const SYS_FAMILIES: &[&str] = &[
    "audit",
    "audit-hash",
    "audit-verify",
    "auth",
    "capabilities",
    "capabilities-accessor",
    "capabilities-self",
    "generate-root",
    "generate-root-token",
    "health",
    "host-info",
    "init",
    "internal",
    "key-status",
    "leader",
    "metrics",
    "mounts",
    "policies",
    "policy",
    "rotate",
    "seal",
    "seal-policy",
    "seal-status",
    "unseal",
];

/// The key API's resources; anything else counts as `api/v1/other`.
const API_FAMILIES: &[&str] = &["keys", "cloud-exports", "tokens"];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    family: String,
    method: String,
    code: u16,
}

#[derive(Debug, Clone, Default)]
struct Stat {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Observations at or below each of [`BUCKETS`] (not cumulative).
    buckets: [u64; BUCKETS.len()],
}

impl Stat {
    fn observe(&mut self, seconds: f64) {
        if self.count == 0 || seconds < self.min {
            self.min = seconds;
        }
        if seconds > self.max {
            self.max = seconds;
        }
        self.count += 1;
        self.sum += seconds;
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
    }
}

/// The requests answered since start.
#[derive(Debug, Default)]
pub struct RequestStats {
    by_key: Mutex<BTreeMap<Key, Stat>>,
}

static REQUESTS: LazyLock<RequestStats> = LazyLock::new(RequestStats::default);

/// Counts one answered request; `path` is the URL path, `/v1/...` or `/api/v1/...`.
pub fn record(core: &Core, method: &hyper::Method, path: &str, code: u16, elapsed: Duration) {
    let key = Key {
        family: family(core, path),
        method: method_label(method),
        code,
    };
    REQUESTS
        .by_key
        .lock()
        .entry(key)
        .or_default()
        .observe(elapsed.as_secs_f64());
}

/// Vault's verbs are HTTP methods plus LIST; anything else is one label.
fn method_label(method: &hyper::Method) -> String {
    match method.as_str() {
        m @ ("GET" | "PUT" | "POST" | "DELETE" | "PATCH" | "HEAD" | "LIST" | "OPTIONS") => {
            m.to_string()
        }
        _ => "OTHER".to_string(),
    }
}

/// The family a request path belongs to, from a bounded set.
fn family(core: &Core, path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        let first = rest.split('/').next().unwrap_or_default();
        return match API_FAMILIES.iter().find(|f| **f == first) {
            Some(f) => format!("api/v1/{f}"),
            None => "api/v1/other".into(),
        };
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return "other".into();
    };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next()) {
        (Some("sys"), Some(second)) => match SYS_FAMILIES.iter().find(|f| **f == second) {
            Some(f) => format!("sys/{f}"),
            None => "sys/other".into(),
        },
        (Some("auth"), Some("token")) => "auth/token".into(),
        (Some("auth"), _) => "auth/other".into(),
        _ => match core.route(rest) {
            Some((mount, _)) => mount.path().trim_end_matches('/').to_string(),
            None => "unrouted".into(),
        },
    }
}

/// A snapshot of the request stats and the engine's figures, encoded on scrape.
#[derive(Debug)]
struct Snapshot {
    requests: BTreeMap<Key, Stat>,
    engine: EngineFigures,
}

fn snapshot(engine: EngineFigures) -> Snapshot {
    Snapshot {
        requests: REQUESTS.by_key.lock().clone(),
        engine,
    }
}

/// The engine's figures as (name, help, value) gauges and counters.
fn engine_gauges(e: &EngineFigures) -> Vec<(&'static str, &'static str, f64)> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut g = vec![
        (
            "ironseal_initialized",
            "1 once the appliance is initialized",
            flag(e.initialized),
        ),
        (
            "ironseal_unsealed",
            "1 while the appliance is unsealed",
            flag(!e.sealed),
        ),
        (
            "ironseal_audit_devices",
            "Audit devices enabled (0 while sealed)",
            e.audit_devices as f64,
        ),
        (
            "ironseal_storage_broken",
            "1 when storage refuses writes until a restart replays its log",
            flag(e.storage.backend.broken),
        ),
    ];
    if let Some(b) = e.storage.backend.wal_bytes {
        g.push((
            "ironseal_storage_wal_bytes",
            "Bytes in the write-ahead log not yet checkpointed",
            b as f64,
        ));
    }
    if let Some(b) = e.storage.backend.file_bytes {
        g.push((
            "ironseal_storage_file_bytes",
            "Size of the database file",
            b as f64,
        ));
    }
    if let Some(up) = e.storage.backend.reachable {
        g.push((
            "ironseal_storage_reachable",
            "1 while the shared storage server answers",
            flag(up),
        ));
    }
    if let Some(us) = e.storage.backend.last_commit_micros {
        g.push((
            "ironseal_storage_last_commit_seconds",
            "How long the last commit to the shared storage server took",
            us as f64 / 1e6,
        ));
    }
    if let Some(d) = e.sync_outbox_depth {
        g.push((
            "ironseal_sync_outbox_depth",
            "Cloud-export sync jobs waiting in the outbox",
            d as f64,
        ));
    }
    if let Some(m) = e.mounts {
        g.push(("ironseal_mounts", "Secrets engines mounted", m as f64));
    }
    g
}

fn engine_counters(e: &EngineFigures) -> Vec<(&'static str, &'static str, u64)> {
    let mut c = vec![
        (
            "ironseal_storage_commits",
            "Group commits applied (one durable transaction each)",
            e.storage.commits,
        ),
        (
            "ironseal_storage_batches",
            "Write batches committed",
            e.storage.batches,
        ),
        (
            "ironseal_storage_failed_batches",
            "Write batches whose commit failed",
            e.storage.failed_batches,
        ),
        (
            "ironseal_audit_failures",
            "Audit lines a device failed to write",
            e.audit_failures,
        ),
    ];
    if let Some(n) = e.storage.backend.checkpoints {
        c.push((
            "ironseal_storage_wal_checkpoints",
            "Write-ahead log checkpoints",
            n,
        ));
    }
    c
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let requests = encoder.encode_descriptor(
            "ironseal_http_requests",
            "HTTP requests answered, by path family, method and status code",
            None,
            MetricType::Counter,
        )?;
        let mut requests = requests;
        for (k, s) in &self.requests {
            let code = k.code.to_string();
            let labels = [
                ("family", k.family.as_str()),
                ("method", k.method.as_str()),
                ("code", code.as_str()),
            ];
            ConstCounter::new(s.count).encode(requests.encode_family(&labels)?)?;
        }
        let mut latency = encoder.encode_descriptor(
            "ironseal_http_request_duration_seconds",
            "Time to answer an HTTP request, by path family",
            None,
            MetricType::Histogram,
        )?;
        let mut by_family: BTreeMap<&str, Stat> = BTreeMap::new();
        for (k, s) in &self.requests {
            let f = by_family.entry(k.family.as_str()).or_default();
            f.count += s.count;
            f.sum += s.sum;
            for (total, n) in f.buckets.iter_mut().zip(s.buckets) {
                *total += n;
            }
        }
        for (family, s) in &by_family {
            // Per-bucket counts: the encoder sums them, and adds `+Inf` as the count.
            let buckets: Vec<(f64, u64)> = BUCKETS.iter().copied().zip(s.buckets).collect();
            let labels = [("family", *family)];
            latency
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    s.sum, s.count, &buckets, None,
                )?;
        }
        let mut runs = encoder.encode_descriptor(
            "ironseal_periodic_task_runs",
            "Periodic task runs on this node since start, by task: only the node holding \
             the periodic-task lease runs them",
            None,
            MetricType::Counter,
        )?;
        for (task, n) in &self.engine.periodic_runs {
            ConstCounter::new(*n).encode(runs.encode_family(&[("task", *task)])?)?;
        }
        for (name, help, value) in engine_gauges(&self.engine) {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        for (name, help, value) in engine_counters(&self.engine) {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The Prometheus text format (version 0.0.4), as `?format=prometheus` answers.
pub fn prometheus_text(engine: EngineFigures) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot(engine)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The content type of [`prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Vault's default answer: go-metrics' in-memory summary, `Gauges`, `Counters` and
/// `Samples` (timings, in milliseconds).
pub fn vault_json(engine: EngineFigures) -> Value {
    let snap = snapshot(engine);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let gauges: Vec<Value> = engine_gauges(&snap.engine)
        .into_iter()
        .map(|(name, _, value)| json!({"Name": name, "Value": value, "Labels": {}}))
        .collect();
    let summary = |name: &str, labels: Value, count: u64, sum: f64, min: f64, max: f64| {
        let mean = if count == 0 { 0.0 } else { sum / count as f64 };
        json!({
            "Name": name, "Count": count, "Rate": sum / 10.0, "Sum": sum, "Min": min,
            "Max": max, "Mean": mean, "Stddev": 0.0, "Labels": labels,
        })
    };
    let mut counters: Vec<Value> = engine_counters(&snap.engine)
        .into_iter()
        .map(|(name, _, v)| {
            let v = v as f64;
            summary(name, json!({}), 1, v, v, v)
        })
        .collect();
    for (task, n) in &snap.engine.periodic_runs {
        let v = *n as f64;
        counters.push(summary(
            "ironseal_periodic_task_runs",
            json!({"task": task}),
            1,
            v,
            v,
            v,
        ));
    }
    let mut samples = Vec::new();
    for (k, s) in &snap.requests {
        let labels = json!({"family": k.family, "method": k.method, "code": k.code.to_string()});
        let n = s.count as f64;
        counters.push(summary(
            "ironseal.http.requests",
            labels.clone(),
            s.count,
            n,
            1.0,
            1.0,
        ));
        let ms = |secs: f64| secs * 1000.0;
        samples.push(summary(
            "ironseal.http.request_duration",
            labels,
            s.count,
            ms(s.sum),
            ms(s.min),
            ms(s.max),
        ));
    }
    json!({
        "Timestamp": now,
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> EngineFigures {
        EngineFigures {
            initialized: true,
            sealed: false,
            storage: Default::default(),
            audit_failures: 3,
            audit_devices: 1,
            sync_outbox_depth: Some(2),
            mounts: Some(1),
            periodic_runs: vec![("token-expiry", 4)],
        }
    }

    #[test]
    fn the_text_format_has_the_families_and_their_samples() {
        let mut stat = Stat::default();
        stat.observe(0.002);
        stat.observe(3.0);
        REQUESTS.by_key.lock().insert(
            Key {
                family: "sys/test".into(),
                method: "GET".into(),
                code: 200,
            },
            stat,
        );
        let text = prometheus_text(figures()).unwrap();
        assert!(
            text.contains("# TYPE ironseal_http_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ironseal_http_requests_total{family="sys/test",method="GET",code="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ironseal_http_request_duration_seconds_bucket{family="sys/test",le="0.0025"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ironseal_http_request_duration_seconds_bucket{family="sys/test",le="+Inf"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("ironseal_audit_failures_total 3"), "{text}");
        assert!(text.contains("ironseal_sync_outbox_depth 2"), "{text}");
        assert!(text.contains("ironseal_unsealed 1"), "{text}");
        assert!(
            text.contains(r#"ironseal_periodic_task_runs_total{task="token-expiry"} 4"#),
            "{text}"
        );
        let j = vault_json(figures());
        assert!(j["Gauges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["Name"] == "ironseal_unsealed"));
        assert!(j["Samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Labels"]["family"] == "sys/test" && s["Count"] == 2));
        assert!(j["Counters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["Name"] == "ironseal_periodic_task_runs"
                && c["Labels"]["task"] == "token-expiry"
                && c["Sum"] == 4.0));
    }
}
