//! Audit devices driven by the bao CLI: a file device records every request HMAC'd,
//! `ironseal audit verify` finds edited, dropped and swapped lines, and a device that
//! cannot write makes requests fail closed with nothing changed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use softhsm_tests::{ironseal_bin, poll_until, reference_mode, Daemon};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn verify(path: &Path) -> (i32, String) {
    let out = Command::new(ironseal_bin())
        .args(["audit", "verify", path.to_str().unwrap()])
        .output()
        .expect("run ironseal audit verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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

    let mut edited = original.clone();
    edited[4] = edited[4].replacen("\"time\":\"2", "\"time\":\"1", 1);
    assert_ne!(edited[4], original[4], "the edit changed the line");
    assert!(check("edited.log", edited).contains("line 5:"));

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

#[test]
fn enabling_a_device_that_cannot_open_its_file_is_refused() {
    let d = Daemon::dev(&[]);
    let dir = d.dir().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let out = d.bao(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", dir.display()),
    ]);
    assert!(!out.success(), "{out}");
    let listed = d.bao(&["audit", "list", "-format=json"]);
    assert!(
        !listed.stdout.contains("file/"),
        "a failed enable left a device: {listed}"
    );
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
