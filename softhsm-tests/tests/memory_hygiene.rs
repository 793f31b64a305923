//! Memory hygiene of a running appliance: once `sys/seal` has answered, the daemon's memory
//! (every writable mapping, read as root through `/proc/PID/mem`) holds no copy of the
//! root key, a barrier (keyring) key, a transit key, or a kv value or transit plaintext
//! written before the seal; and the daemon runs with its memory locked and core dumps off.
//!
//! The barrier keys are recovered the way an operator could: the root key from the unseal
//! keys `operator init` returned, then the keyring it wraps, read from a copy of the
//! storage file and its log taken while the daemon runs. The transit key is created exportable and
//! exported, so its bytes are known too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use engine::storage::{Backend, RedbBackend};
use hsm_bridge::{RootOfTrust, ShamirRoot, UnsealShare};
use serde_json::json;

use softhsm_tests::{
    decode_key, encodings, needles_in_memory, reference_mode, register_secret, Daemon, HttpResponse,
};

/// How long the daemon may take, after `sys/seal` answered, to let go of the last copy.
const SCRUB_DEADLINE: Duration = Duration::from_secs(15);

fn marker(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{nanos:x}-{}", std::process::id())
}

/// True when this process can read another's memory: root (effective uid 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[track_caller]
fn data(r: &HttpResponse) -> serde_json::Value {
    assert_eq!(r.status, 200, "{r}");
    r.json()["data"].clone()
}

/// The field `name` of `/proc/PID/status` (`VmLck:  1234 kB`), in kB.
fn status_kb(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
}

/// The soft and hard limits of `/proc/PID/limits`' row `name`.
fn limits(pid: u32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = text
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/limits:\n{text}"));
    let mut f = row.split_whitespace();
    (
        f.next().unwrap_or_default().to_string(),
        f.next().unwrap_or_default().to_string(),
    )
}

/// The barrier keys of `d`'s keyring, and the root key, from a copy of its storage file
/// and the unseal keys of its init.
fn barrier_and_root_keys(d: &Daemon) -> Vec<(String, Vec<u8>)> {
    let init = d.init.clone().expect("initialised");
    let shares: Vec<UnsealShare> = init.keys_b64[..init.threshold]
        .iter()
        .map(|k| UnsealShare::from_bytes(decode_key(k)).expect("a well-formed share"))
        .collect();
    let root = ShamirRoot::combine(&shares, init.threshold as u8).expect("the shares combine");
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join("ironseal.redb");
    std::fs::copy(d.storage_path(), &file).expect("copy the storage file");
    // Writes since the last checkpoint are in the write-ahead log beside it.
    let wal = |dir: &std::path::Path| dir.join("ironseal.redb.wal");
    if let Some(data) = d.storage_path().parent() {
        if wal(data).exists() {
            std::fs::copy(wal(data), wal(copy.path())).expect("copy the write-ahead log");
        }
    }
    let backend = RedbBackend::open(&file).expect("open the copy of the storage file");
    let blob = backend
        .get(engine::barrier::KEYRING_PATH)
        .expect("read the keyring")
        .expect("a stored keyring");
    let plain = root
        .unwrap(engine::barrier::KEYRING_PATH.as_bytes(), &blob)
        .expect("the root key from the unseal keys opens the stored keyring");
    let keyring = engine::barrier::Keyring::decode(&plain).expect("a keyring");
    let mut needles = encodings("the root key", root.key_bytes());
    for (i, k) in keyring.key_bytes().iter().enumerate() {
        needles.extend(encodings(&format!("barrier key {}", i + 1), k));
    }
    needles
}

#[test]
fn after_seal_no_key_or_secret_written_before_is_left_in_the_daemons_memory() {
    if reference_mode() {
        eprintln!(
            "SKIPPED against OpenBao: it does not claim to scrub its (garbage-collected) heap \
             on seal"
        );
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED: reading the daemon's memory through /proc/PID/mem needs root");
        return;
    }
    let mut d = Daemon::config(false);
    d.init(3, 2);
    d.unseal();
    d.ensure_secret_kv2();
    d.ensure_transit();
    let pid = d.pid().expect("the daemon runs");

    // Hardening of the running daemon: memory locked, core dumps off.
    assert!(
        status_kb(pid, "VmLck:") > 0,
        "the daemon's memory is not locked (VmLck 0 kB)"
    );
    assert_eq!(
        limits(pid, "Max core file size"),
        ("0".to_string(), "0".to_string()),
        "core dumps are not off (RLIMIT_CORE)"
    );

    // A kv secret, written and read back.
    let kv_value = marker("kv-hygiene-value");
    d.kv_put_value("hygiene/secret", &kv_value);
    assert_eq!(d.kv_get_value("hygiene/secret"), kv_value);

    // A transit key, exported so its bytes are known, and a plaintext/ciphertext pair.
    let r = d.post_json("/v1/transit/keys/hygiene", &json!({ "exportable": true }));
    assert!(r.status == 200 || r.status == 204, "{r}");
    let plaintext = marker("transit-hygiene-plaintext");
    register_secret("the transit plaintext", plaintext.as_bytes());
    let ct = data(&d.post_json(
        "/v1/transit/encrypt/hygiene",
        &json!({ "plaintext": STANDARD.encode(&plaintext) }),
    ))["ciphertext"]
        .as_str()
        .expect("a ciphertext")
        .to_string();
    let back = data(&d.post_json("/v1/transit/decrypt/hygiene", &json!({ "ciphertext": ct })))
        ["plaintext"]
        .as_str()
        .expect("a plaintext")
        .to_string();
    assert_eq!(STANDARD.decode(back).unwrap(), plaintext.as_bytes());
    let exported = data(&d.get("/v1/transit/export/encryption-key/hygiene/1"))["keys"]["1"]
        .as_str()
        .expect("the exported key")
        .to_string();
    let transit_key = STANDARD.decode(exported).expect("base64 key material");
    assert_eq!(transit_key.len(), 32, "an aes256-gcm96 key");
    register_secret("the transit key", &transit_key);

    let mut needles = barrier_and_root_keys(&d);
    needles.extend(encodings("the kv value", kv_value.as_bytes()));
    needles.extend(encodings("the transit plaintext", plaintext.as_bytes()));
    needles.extend(encodings("the transit key", &transit_key));

    // The search works: while unsealed, the barrier keys and the transit key are in use,
    // so in memory.
    let before = needles_in_memory(pid, &needles).expect("read the daemon's memory");
    for must in ["barrier key 1 (raw)", "the transit key (raw)"] {
        assert!(
            before.iter().any(|h| h.starts_with(must)),
            "the scan does not find {must} in the unsealed daemon's memory; it found:\n{}",
            before.join("\n")
        );
    }

    d.bao(&["operator", "seal"]).ok();
    assert_eq!(d.seal_status()["sealed"], true);

    // Each scan takes a while; between scans the daemon finishes dropping what it held.
    let start = Instant::now();
    let hits = loop {
        let hits = needles_in_memory(pid, &needles).expect("read the daemon's memory");
        if hits.is_empty() || start.elapsed() > SCRUB_DEADLINE {
            break hits;
        }
    };
    assert!(
        hits.is_empty(),
        "after sys/seal the daemon's memory still holds:\n{}",
        hits.join("\n")
    );
}
