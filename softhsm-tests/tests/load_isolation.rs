//! CPU-heavy work must not starve the endpoints operators rely on: while several large
//! RSA sign batches run, `sys/health` and `sys/seal-status` keep answering about as fast
//! as on an idle daemon (compared as a ratio against an idle baseline measured the same
//! way, never as an absolute time). And a `batch_input` past the appliance's limit is
//! refused with a 400 that names the limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use softhsm_tests::{reference_mode, Daemon};

/// Concurrent sign batches: more than the cores, so every compute-pool thread is busy.
const LOADERS: usize = 4;
/// Items per batch: enough RSA-2048 signatures to keep a core busy for seconds, and few
/// enough for OpenBao's default JSON limit of 1000 strings per request (two per item).
const ITEMS: usize = 450;
/// Idle samples for the baseline, and the fewest loaded samples to conclude from.
const IDLE_SAMPLES: usize = 40;
const MIN_LOADED_SAMPLES: usize = 9;
/// Loaded median may be this many times the idle one, plus [`NOISE_FLOOR`]: generous,
/// because the machine is shared and has two cores. Starved workers answer in seconds.
const RATIO: u32 = 20;
const NOISE_FLOOR: Duration = Duration::from_millis(50);

/// One unauthenticated GET over a fresh connection, as a load balancer's probe does;
/// returns its round-trip time after checking the status line.
fn timed_get(addr: &str, path: &str) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "GET {path} answered: {}",
        text.lines().next().unwrap_or("")
    );
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The mean: each probe starts when the previous one ended, so a stall shows up as one
/// long sample among many short ones; the mean weighs it by the time it covered, where
/// the median alone would hide it.
fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(u32::MAX).max(1)
}

/// When a loader's batch was in flight.
type Window = (Instant, Instant);

#[test]
fn health_answers_while_rsa_batches_run() {
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    let r = d.post_json("/v1/transit/keys/load", &json!({ "type": "rsa-2048" }));
    assert_eq!(r.status, 200, "{r}");
    let addr = d.host_port();

    // Warm up (first connections, lazily built state), then the idle baseline.
    for _ in 0..5 {
        timed_get(&addr, "/v1/sys/health");
    }
    let idle = median(
        (0..IDLE_SAMPLES)
            .map(|_| timed_get(&addr, "/v1/sys/health"))
            .collect(),
    );

    let batch = json!({
        "batch_input": (0..ITEMS)
            .map(|i| json!({ "input": base64_of(&format!("message {i}")) }))
            .collect::<Vec<_>>()
    })
    .to_string();
    let stop = AtomicBool::new(false);
    let windows: Mutex<Vec<Vec<Window>>> = Mutex::new(vec![Vec::new(); LOADERS]);
    let mut loaded = Vec::new();
    let mut seal_status_loaded = Vec::new();
    std::thread::scope(|scope| {
        for n in 0..LOADERS {
            let (d, batch, stop, windows) = (&d, &batch, &stop, &windows);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let r = d.send_json("POST", "/v1/transit/sign/load", batch);
                    let ended = Instant::now();
                    assert_eq!(
                        r.status,
                        200,
                        "{}: {}",
                        r.request,
                        r.body.chars().take(300).collect::<String>()
                    );
                    let results = r.json()["data"]["batch_results"]
                        .as_array()
                        .map_or(0, Vec::len);
                    assert_eq!(results, ITEMS);
                    windows.lock().unwrap()[n].push((started, ended));
                }
            });
        }
        // Sample until every loader has finished a batch, so the samples span the load;
        // afterwards keep only those taken while at least two batches were in flight.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut samples: Vec<(Instant, Duration)> = Vec::new();
        loop {
            let done = windows.lock().unwrap().iter().all(|w| !w.is_empty());
            if done || Instant::now() > deadline {
                break;
            }
            let at = Instant::now();
            samples.push((at, timed_get(&addr, "/v1/sys/health")));
            let at = Instant::now();
            seal_status_loaded.push((at, timed_get(&addr, "/v1/sys/seal-status")));
        }
        stop.store(true, Ordering::SeqCst);
        let windows = windows.lock().unwrap();
        let busy = |at: Instant| {
            windows
                .iter()
                .flatten()
                .filter(|(s, e)| *s <= at && at <= *e)
                .count()
                >= 2
        };
        loaded = samples
            .iter()
            .filter(|(at, _)| busy(*at))
            .map(|(_, t)| *t)
            .collect();
        seal_status_loaded.retain(|(at, _)| busy(*at));
    });

    assert!(
        loaded.len() >= MIN_LOADED_SAMPLES,
        "only {} health samples were taken while batches ran (idle median {idle:?})",
        loaded.len()
    );
    let loaded_median = median(loaded.clone());
    let loaded_mean = mean(&loaded);
    let bound = idle * RATIO + NOISE_FLOOR;
    eprintln!(
        "sys/health: idle median {idle:?}; under {LOADERS} sign batches of {ITEMS} RSA-2048 items median {loaded_median:?}, mean {loaded_mean:?}, max {:?} ({} samples); bound {bound:?}",
        loaded.iter().max().copied().unwrap_or_default(),
        loaded.len()
    );
    assert!(
        loaded_median <= bound && loaded_mean <= bound,
        "sys/health went from a median of {idle:?} idle to a median of {loaded_median:?} and a mean of {loaded_mean:?} under load (bound {bound:?})"
    );
    if !seal_status_loaded.is_empty() {
        let seal_median = median(seal_status_loaded.iter().map(|(_, t)| *t).collect());
        assert!(
            seal_median <= bound,
            "sys/seal-status median {seal_median:?} under load (bound {bound:?})"
        );
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn batches_past_the_limit_are_refused_with_the_limit() {
    if reference_mode() {
        // OpenBao has no batch size limit: this pins down Ironseal's.
        return;
    }
    let d = Daemon::dev(&[]);
    d.ensure_transit();
    let r = d.post_json("/v1/transit/keys/aes", &json!({}));
    assert_eq!(r.status, 200, "{r}");
    let items = |n: usize| {
        json!({
            "batch_input": (0..n).map(|_| json!({ "plaintext": "aGk=" })).collect::<Vec<_>>()
        })
    };
    let r = d.post_json("/v1/transit/encrypt/aes", &items(1000));
    assert_eq!(r.status, 200, "{r}");
    let r = d.post_json("/v1/transit/encrypt/aes", &items(1001));
    r.assert_error(400, "limit of 1000");
    r.assert_error(400, "max_batch_items");
    let sign_key = d.post_json("/v1/transit/keys/ed", &json!({ "type": "ed25519" }));
    assert_eq!(sign_key.status, 200, "{sign_key}");
    let sign = json!({
        "batch_input": (0..1001).map(|_| json!({ "input": "aGk=" })).collect::<Vec<_>>()
    });
    d.post_json("/v1/transit/sign/ed", &sign)
        .assert_error(400, "limit of 1000");

    // The limit is the server's configuration (a top-level key beside the seal block).
    let mut c = Daemon::config_with_seal("seal \"shamir\" {}\nmax_batch_items = 2\n", &[]);
    c.init(1, 1);
    c.unseal();
    c.ensure_transit();
    let r = c.post_json("/v1/transit/keys/aes", &json!({}));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        c.post_json("/v1/transit/encrypt/aes", &items(2)).status,
        200
    );
    c.post_json("/v1/transit/encrypt/aes", &items(3))
        .assert_error(400, "limit of 2");
}
