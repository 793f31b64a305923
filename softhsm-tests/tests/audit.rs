//! Audit devices driven by the bao CLI: a file device records every request HMAC'd,
//! `ironseal audit verify` finds edited, dropped and swapped lines, and a device that
//! cannot write makes requests fail closed with nothing changed. After a crash the file
//! opens whatever its tail holds (a torn line, a 2 MiB line), the cut is recorded and
//! reported; the chain is keyed, so edits without the key are found, and a tail cut off
//! while the appliance was down is found against the head kept in storage.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use softhsm_tests::{ironseal_bin, poll_until, reference_mode, Daemon};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs an `ironseal audit verify`; its exit code and everything it printed.
fn run_verify(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run ironseal audit verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn verify(path: &Path) -> (i32, String) {
    run_verify(Command::new(ironseal_bin()).args(["audit", "verify", path.to_str().unwrap()]))
}

/// `ironseal audit verify -device=file [-against-storage]` against the running daemon.
fn verify_online(d: &Daemon, against_storage: bool) -> (i32, String) {
    let token = d.token.as_deref().expect("a token");
    let mut cmd = d.client_command(&ironseal_bin(), Some(token));
    cmd.args(["audit", "verify", "-device=file"]);
    if against_storage {
        cmd.arg("-against-storage");
    }
    run_verify(&mut cmd)
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn enable_file_device(d: &Daemon, log: &Path) {
    let out = d
        .bao(&[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", log.display()),
        ])
        .ok();
    assert!(
        out.stdout
            .contains("Success! Enabled the file audit device at: file/"),
        "{out}"
    );
}

/// A configured (persistent, Shamir-sealed) daemon with a file audit device.
fn configured_with_audit() -> (Daemon, std::path::PathBuf) {
    let mut d = Daemon::config(false);
    d.init(1, 1);
    d.unseal();
    d.ensure_secret_kv2();
    let log = d.dir().join("audit.log");
    enable_file_device(&d, &log);
    (d, log)
}

fn start_and_unseal(d: &mut Daemon) {
    d.start();
    d.unseal();
}

fn hangup(d: &Daemon) {
    let pid = d.pid().expect("the daemon runs");
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -HUP {pid} failed");
}

/// A dev daemon with a file audit device at `file/` writing to `<dir>/audit.log`.
fn with_audit() -> (Daemon, std::path::PathBuf) {
    let d = Daemon::dev(&[]);
    let log = d.dir().join("audit.log");
    enable_file_device(&d, &log);
    (d, log)
}

#[test]
fn requests_are_logged_hmacd_and_the_chain_verifies() {
    if reference_mode() {
        return; // `ironseal audit verify` has no OpenBao counterpart.
    }
    let (d, log) = with_audit();
    let listed = d.bao(&["audit", "list", "-format=json"]).ok().json();
    assert_eq!(listed["file/"]["type"], "file", "{listed}");
    assert_eq!(
        listed["file/"]["options"]["file_path"],
        log.display().to_string()
    );

    let password = format!("pw-{}-{}", std::process::id(), d.addr.len() * 7919);
    d.bao(&[
        "kv",
        "put",
        "-mount=secret",
        "app/db",
        &format!("password={password}"),
    ])
    .ok();
    let read = d.bao(&["kv", "get", "-mount=secret", "-field=password", "app/db"]);
    assert_eq!(read.ok().stdout.trim(), password);

    // Both the write and the read appear, as request and response entries.
    let entries = poll_until(
        Duration::from_secs(10),
        "audit lines for the kv read",
        || {
            let all: Vec<serde_json::Value> = lines(&log)
                .iter()
                .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
                .collect();
            let reads = all
                .iter()
                .filter(|e| e["request"]["path"] == "secret/data/app/db")
                .count();
            (reads >= 4).then_some(all)
        },
    );
    let write_response = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "secret/data/app/db"
                && e["request"]["operation"] == "update"
        })
        .expect("a response entry for the write");
    assert_eq!(write_response["response"]["status"], 200);
    assert_eq!(write_response["auth"]["display_name"], "root");
    assert_eq!(write_response["request"]["remote_address"], "127.0.0.1");
    let logged = write_response["request"]["data"]["data"]["password"]
        .as_str()
        .expect("the written value is in the entry, hashed");

    // The operator can match a value to its HMAC, and only in hashed form is it there.
    let hashed = d
        .bao(&[
            "write",
            "-format=json",
            "sys/audit-hash/file",
            &format!("input={password}"),
        ])
        .ok()
        .json();
    assert_eq!(hashed["data"]["hash"].as_str(), Some(logged));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&password), "the secret is in the audit log");
    let token = d.token.clone().expect("the dev root token");
    assert!(!text.contains(&token), "the root token is in the audit log");

    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
}

#[test]
fn verify_names_the_first_edited_dropped_or_swapped_line() {
    if reference_mode() {
        return;
    }
    let (d, log) = with_audit();
    for i in 0..4 {
        d.bao(&["kv", "put", "-mount=secret", &format!("k{i}"), "v=1"])
            .ok();
    }
    let original = poll_until(Duration::from_secs(10), "eight audit lines", || {
        let l = lines(&log);
        (l.len() >= 8).then_some(l)
    });
    let dir = d.dir();
    let check = |name: &str, content: Vec<String>| -> String {
        let p = dir.join(name);
        std::fs::write(&p, content.join("\n") + "\n").unwrap();
        let (code, out) = verify(&p);
        assert_eq!(code, 1, "{name} should fail verification: {out}");
        out
    };

    // Offline, an edit that keeps the line's MAC cannot be seen: the output says so.
    let mut edited = original.clone();
    edited[4] = edited[4].replacen("\"time\":\"2", "\"time\":\"1", 1);
    assert_ne!(edited[4], original[4], "the edit changed the line");
    let p = dir.join("edited.log");
    std::fs::write(&p, edited.join("\n") + "\n").unwrap();
    let (code, out) = verify(&p);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("were NOT"),
        "offline mode must say what it did not check: {out}"
    );

    let mut dropped = original.clone();
    dropped.remove(2);
    assert!(check("dropped.log", dropped).contains("line 3:"));

    let mut swapped = original.clone();
    swapped.swap(1, 5);
    assert!(check("swapped.log", swapped).contains("line 2:"));

    let (code, out) = verify(&log);
    assert_eq!(code, 0, "the real file is untouched: {out}");
}

#[test]
fn an_audit_device_that_cannot_write_fails_requests_closed() {
    if reference_mode() {
        return;
    }
    let (d, log) = with_audit();
    d.bao(&["kv", "put", "-mount=secret", "app/db", "v=before"])
        .ok();

    // Log rotation gone wrong: the file's place is taken by a directory, then SIGHUP.
    let rotated = d.dir().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    std::fs::create_dir(&log).unwrap();
    hangup(&d);
    let refused = poll_until(Duration::from_secs(10), "writes refused", || {
        let r = d.send_json(
            "POST",
            "/v1/secret/data/app/db",
            r#"{"data":{"v":"during"}}"#,
        );
        (r.status == 500).then_some(r)
    });
    refused.assert_error(500, "could not be audited");
    d.get("/v1/secret/data/app/db")
        .assert_error(500, "could not be audited");

    // Put the file back: requests flow again, and the refused write never happened.
    std::fs::remove_dir(&log).unwrap();
    std::fs::rename(&rotated, &log).unwrap();
    hangup(&d);
    let back = poll_until(Duration::from_secs(10), "reads accepted again", || {
        let r = d.get("/v1/secret/data/app/db");
        (r.status == 200).then_some(r)
    });
    let v = back.json();
    assert_eq!(v["data"]["data"]["v"], "before", "{v}");
    assert_eq!(v["data"]["metadata"]["version"], 1, "{v}");
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "the chain continues across the reopen: {out}");
}

/// `bao audit enable file file_path=<path>`, expected to be refused and to leave no
/// device; gives the error.
fn refused_enable(d: &Daemon, path: &Path) -> String {
    let out = d.bao(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", path.display()),
    ]);
    assert!(!out.success(), "{out}");
    let listed = d.bao(&["audit", "list", "-format=json"]);
    assert!(
        !listed.stdout.contains("file/"),
        "a refused enable left a device: {listed}"
    );
    out.stderr
}

#[test]
fn enabling_a_device_that_cannot_open_its_file_is_refused() {
    let d = Daemon::dev(&[]);
    let dir = d.dir().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    refused_enable(&d, &dir);
}

#[test]
fn enabling_a_device_on_a_file_that_is_not_an_audit_log_is_refused_untouched() {
    if reference_mode() {
        return; // Vault appends to whatever file it is given
    }
    let mut d = Daemon::config(false);
    d.init(1, 1);
    d.unseal();
    // Bytes that hold no newline and no chain line, outside the data dir.
    let other = d.dir().join("some.bin");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8 | 0x80).collect();
    std::fs::write(&other, &bytes).unwrap();
    let err = refused_enable(&d, &other);
    assert!(err.contains("Code: 400"), "{err}");
    assert!(err.contains(&other.display().to_string()), "{err}");
    assert!(err.contains("does not end with an audit line"), "{err}");
    assert_eq!(
        std::fs::read(&other).unwrap(),
        bytes,
        "the file was changed"
    );

    // The daemon's own store, and a new file beside it, are refused too. The store's
    // bytes change on their own (the periodic-task lease is renewed), so the check is
    // that no chain line landed in it: the store holds only ciphertext, and every
    // audit line carries `"prev_hash":` in the clear.
    let redb = d.storage_path();
    refused_enable(&d, &redb);
    let store = std::fs::read(&redb).unwrap();
    assert!(
        !store.windows(12).any(|w| w == b"\"prev_hash\":"),
        "an audit line was written into the store"
    );
    let beside = d.data_dir().join("audit.log");
    let err = refused_enable(&d, &beside);
    assert!(err.contains("Code: 400"), "{err}");
    assert!(err.contains("data directory"), "{err}");
    assert!(!beside.exists(), "a refused enable created {beside:?}");

    // An empty file, and a new one, are taken.
    let empty = d.dir().join("empty.log");
    std::fs::write(&empty, b"").unwrap();
    enable_file_device(&d, &empty);
    d.bao(&["secrets", "list"]).ok();
    assert!(!lines(&empty).is_empty(), "nothing was logged");
    d.bao(&["audit", "disable", "file"]).ok();
    let fresh = d.dir().join("fresh.log");
    enable_file_device(&d, &fresh);
    d.bao(&["audit", "disable", "file"]).ok();
    // So is an audit log this appliance wrote, enabled again: its chain goes on.
    let logged = lines(&empty).len();
    enable_file_device(&d, &empty);
    d.bao(&["secrets", "list"]).ok();
    assert!(lines(&empty).len() > logged, "nothing more was logged");
    let (code, out) = verify(&empty);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn key_api_requests_and_key_destruction_are_audited() {
    if reference_mode() {
        return; // no /api/v1 on OpenBao
    }
    let (d, log) = with_audit();
    let created = d.send_json(
        "POST",
        "/api/v1/keys",
        r#"{"name":"audited-key","algorithm":"EC_P256"}"#,
    );
    assert!(
        created.status == 200 || created.status == 201,
        "{}",
        created.body
    );
    let id = created.json()["id"].as_str().expect("a key id").to_string();
    let scheduled = d.send_json(
        "POST",
        &format!("/api/v1/keys/{id}/schedule-destruction"),
        r#"{"pendingWindowSeconds":1}"#,
    );
    assert!(scheduled.status < 300, "{}", scheduled.body);

    let entries = poll_until(Duration::from_secs(20), "a key-destroyed event", || {
        let all: Vec<serde_json::Value> = lines(&log)
            .iter()
            .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
            .collect();
        all.iter()
            .any(|e| e["type"] == "event" && e["event"] == "key-destroyed")
            .then_some(all)
    });
    let event = entries
        .iter()
        .find(|e| e["event"] == "key-destroyed")
        .expect("the event");
    assert_eq!(event["data"]["id"], id.as_str());
    let create = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "api/v1/keys")
        .expect("the key creation is audited");
    assert!(
        create["response"]["status"] == 201 || create["response"]["status"] == 200,
        "{create}"
    );
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_torn_tail_is_recorded_and_requests_keep_working() {
    if reference_mode() {
        return; // the chain and its cut records are Ironseal's
    }
    let (mut d, log) = configured_with_audit();
    d.bao(&["kv", "put", "-mount=secret", "before", "v=1"]).ok();
    d.kill9();
    // A write cut by the crash: the start of a line, no line end.
    let offset = std::fs::metadata(&log).unwrap().len();
    let torn = b"{\"auth\":{\"client_token\":\"hmac-sha256:00\"},\"requ";
    append(&log, torn);
    let (code, out) = verify(&log);
    assert_eq!(code, 1, "an unrecorded torn tail fails: {out}");
    assert!(out.contains(&format!("offset {offset}")), "{out}");

    start_and_unseal(&mut d);
    d.bao(&["kv", "put", "-mount=secret", "after", "v=2"]).ok();
    let read = d.bao(&["kv", "get", "-mount=secret", "-field=v", "before"]);
    assert_eq!(read.ok().stdout.trim(), "1");

    // Both modes report the cut at the offset where the torn line starts.
    let cut = format!(
        "offset {offset}, {} bytes): cut (a write torn by a crash)",
        torn.len() + 1
    );
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&cut), "{out}");
    let (code, out) = verify_online(&d, true);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&cut), "{out}");
    assert!(out.contains("MACs checked with the chain key"), "{out}");

    // The device can still be disabled.
    d.bao(&["audit", "disable", "file"]).ok();
    let listed = d.bao(&["audit", "list", "-format=json"]);
    assert!(!listed.stdout.contains("file/"), "{listed}");
}

#[test]
fn a_2_mib_last_line_does_not_break_opening() {
    if reference_mode() {
        return;
    }
    let (mut d, log) = configured_with_audit();
    d.bao(&["kv", "put", "-mount=secret", "before", "v=1"]).ok();
    d.kill9();
    let offset = std::fs::metadata(&log).unwrap().len();
    let mut big = b"{\"type\":\"request\",\"blob\":\"".to_vec();
    big.resize(2 << 20, b'x');
    append(&log, &big);

    start_and_unseal(&mut d);
    d.bao(&["kv", "put", "-mount=secret", "after", "v=2"]).ok();
    let (code, out) = verify_online(&d, true);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("offset {offset}, {} bytes)", big.len() + 1)),
        "{out}"
    );

    // And the device reopens again, its last lines now well past 1 MiB from the start.
    d.kill9();
    start_and_unseal(&mut d);
    d.bao(&["kv", "get", "-mount=secret", "after"]).ok();
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn numbers_and_booleans_in_kv_data_are_not_in_clear() {
    // OpenBao enables audit devices through the API only when its config allows it.
    let reference_config = tempfile::tempdir().unwrap();
    let hcl = reference_config.path().join("allow-audit.hcl");
    std::fs::write(&hcl, "unsafe_allow_api_audit_creation = true\n").unwrap();
    let config_flag = format!("-config={}", hcl.display());
    let reference_args = [config_flag.as_str()];
    let d = Daemon::dev(if reference_mode() {
        &reference_args[..]
    } else {
        &[]
    });
    let log = d.dir().join("audit.log");
    enable_file_device(&d, &log);
    let written = d.send_json(
        "POST",
        "/v1/secret/data/typed",
        r#"{"data":{"user":"alice-typed","port":5432123,"enabled":true,"ratio":0.625}}"#,
    );
    assert_eq!(written.status, 200, "{written}");
    let entry = poll_until(Duration::from_secs(10), "the request entry", || {
        lines(&log)
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
            .find(|e| e["type"] == "request" && e["request"]["path"] == "secret/data/typed")
    });
    let hash = |input: &str| -> String {
        d.bao(&[
            "write",
            "-format=json",
            "sys/audit-hash/file",
            &format!("input={input}"),
        ])
        .ok()
        .json()["data"]["hash"]
            .as_str()
            .expect("a hash")
            .to_string()
    };
    let data = &entry["request"]["data"]["data"];
    assert_eq!(
        data["user"].as_str(),
        Some(hash("alice-typed").as_str()),
        "{entry}"
    );
    if reference_mode() {
        // Measured on OpenBao 2.x: numbers and booleans stay in clear in its log. A
        // number or boolean can be as telling as a string (a port, a flag), so Ironseal
        // hashes every leaf and deliberately differs.
        assert_eq!(data["port"], 5432123, "{entry}");
        return;
    }
    // Numbers are hashed as their JSON text, booleans as `true`/`false`, so
    // sys/audit-hash matches them.
    assert_eq!(
        data["port"].as_str(),
        Some(hash("5432123").as_str()),
        "{entry}"
    );
    assert_eq!(
        data["enabled"].as_str(),
        Some(hash("true").as_str()),
        "{entry}"
    );
    assert_eq!(
        data["ratio"].as_str(),
        Some(hash("0.625").as_str()),
        "{entry}"
    );
    let read = d.get("/v1/secret/data/typed");
    assert_eq!(read.json()["data"]["data"]["port"], 5432123, "{read}");
    let text = poll_until(Duration::from_secs(10), "the read's response entry", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let responses = text
            .lines()
            .filter(|l| l.contains("\"type\":\"response\"") && l.contains("secret/data/typed"))
            .count();
        (responses >= 2).then_some(text)
    });
    for clear in ["5432123", "0.625", "\"enabled\":true"] {
        assert!(
            !text.contains(clear),
            "{clear} is in the audit log in clear"
        );
    }
}

#[test]
fn edits_by_a_writer_without_the_key_are_detected() {
    if reference_mode() {
        return;
    }
    let (d, log) = with_audit();
    for i in 0..3 {
        d.bao(&["kv", "put", "-mount=secret", &format!("k{i}"), "v=1"])
            .ok();
    }
    let (code, out) = verify_online(&d, true);
    assert_eq!(code, 0, "{out}");
    let original = lines(&log);

    // An edit that keeps the MAC: only the appliance, holding the key, sees it.
    let mut edited = original.clone();
    edited[2] = edited[2].replacen("\"time\":\"2", "\"time\":\"1", 1);
    assert_ne!(edited[2], original[2]);
    std::fs::write(&log, edited.join("\n") + "\n").unwrap();
    let (code, out) = verify_online(&d, true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 3:") && out.contains("altered"), "{out}");

    // An edit whose tag is recomputed as a plain SHA-256, all a writer without the key
    // can do: found offline too.
    let line = &original[2];
    let body = format!("{}}}", &line[..line.len() - (9 + 64 + 2)]);
    let forged_body = body.replacen("\"time\":\"2", "\"time\":\"1", 1);
    let tag = hex::encode(Sha256::digest(forged_body.as_bytes()));
    let mut forged = original.clone();
    forged[2] = format!(
        "{},\"hash\":\"{tag}\"}}",
        &forged_body[..forged_body.len() - 1]
    );
    std::fs::write(&log, forged.join("\n") + "\n").unwrap();
    let (code, out) = verify(&log);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 3:") && out.contains("without the chain key"),
        "{out}"
    );
    let (code, out) = verify_online(&d, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 3:"), "{out}");
}

#[test]
fn truncating_the_tail_is_detected_against_storage() {
    if reference_mode() {
        return;
    }
    let (mut d, log) = configured_with_audit();
    for i in 0..3 {
        d.bao(&["kv", "put", "-mount=secret", &format!("k{i}"), "v=1"])
            .ok();
    }
    // Wait until the head kept in storage covers every line written so far.
    let written = lines(&log).len() as u64;
    poll_until(Duration::from_secs(20), "the stored chain head", || {
        let v = d
            .bao(&["read", "-format=json", "sys/audit-verify/file"])
            .ok()
            .json();
        (v["data"]["stored_head"]["seq"].as_u64()? >= written).then_some(())
    });
    let (code, out) = verify_online(&d, true);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("reaches the head recorded in storage"),
        "{out}"
    );

    // Stopped, the file loses its last lines, whole lines so nothing looks torn.
    d.kill9();
    let all = lines(&log);
    let kept = &all[..written as usize - 2];
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "offline, a shortened file looks intact: {out}");

    start_and_unseal(&mut d);
    let (code, out) = verify_online(&d, true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("shorter than the chain head"), "{out}");
    let (code, out) = verify(&log);
    assert_eq!(code, 1, "the record of it is in the chain: {out}");
}

#[test]
fn an_acknowledged_requests_audit_line_is_on_disk() {
    if reference_mode() {
        return;
    }
    let (mut d, log) = with_audit();
    let written = d.send_json("POST", "/v1/secret/data/acked", r#"{"data":{"v":"x"}}"#);
    assert_eq!(written.status, 200, "{written}");
    d.kill9();
    let entries: Vec<serde_json::Value> = lines(&log)
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let response = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "secret/data/acked");
    assert!(
        response.is_some(),
        "the acknowledged write has no response line"
    );
    assert_eq!(response.unwrap()["response"]["status"], 200);
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
}
