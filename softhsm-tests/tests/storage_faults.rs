//! Fail closed when storage fails under the appliance: its redb file and write-ahead log
//! on a small tmpfs of their own. Filled up while the daemon serves, writes are refused
//! with a clear error (nothing acknowledged that was not stored, nothing half-written),
//! reads answer the acknowledged value or an error, and once space is freed writes work
//! again without a restart; after
//! a `kill -9` and restart exactly the acknowledged writes are there. Remounted read-only,
//! the daemon refuses to start, naming the cause, and starts with its data once writable.
//!
//! Mounting needs root (CAP_SYS_ADMIN): without it the tests say SKIPPED and pass.
//! OpenBao's storage cannot be moved onto the mount by the harness (it keeps raft in the
//! daemon's data dir), so these tests pin down Ironseal's behaviour and return at once in
//! reference mode.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use softhsm_tests::{poll_until, reference_mode, Daemon, HttpResponse};

/// How long the daemon may take to accept writes again once the fault is gone.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

/// A tmpfs of fixed size mounted on a fresh directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None when this process may not mount (not root, or no CAP_SYS_ADMIN).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("ironseal-tmpfs-")
            .tempdir()
            .ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -o remount,{mode} failed");
    }

    /// Fills the file system up with `filler` until a write fails for lack of space.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = fs::File::create(&filler).expect("create the filler");
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the tmpfs failed otherwise: {e}"),
            }
        }
        // The last partial blocks, byte by byte.
        while f.write(&[0xa5]).is_ok_and(|n| n == 1) {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn marker(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{nanos:x}-{}", std::process::id())
}

/// A daemon whose storage is on `fs`, initialised, unsealed, with kv v2 at `secret/`.
fn daemon_on(fs: &Tmpfs) -> Daemon {
    let storage = format!(
        "storage \"redb\" {{\n  path = \"{}\"\n}}",
        fs.path().join("ironseal.redb").display()
    );
    let mut d = Daemon::config_with_storage(&storage, &[]);
    d.init(1, 1);
    d.unseal();
    d.ensure_secret_kv2();
    d
}

fn kv_put(d: &Daemon, path: &str, value: &str) -> HttpResponse {
    softhsm_tests::register_secret(&format!("the kv value at {path}"), value.as_bytes());
    d.post_json(
        &format!("/v1/secret/data/{path}"),
        &json!({ "data": { "value": value } }),
    )
}

/// The value at `path`, None if there is none (404).
fn kv_get(d: &Daemon, path: &str) -> Option<String> {
    let r = d.get(&format!("/v1/secret/data/{path}"));
    match r.status {
        200 => Some(
            r.json()["data"]["data"]["value"]
                .as_str()
                .unwrap_or_else(|| panic!("no value: {r}"))
                .to_string(),
        ),
        404 => None,
        _ => panic!("unexpected answer: {r}"),
    }
}

/// The refusal of a write while storage fails: a 5xx Vault error body whose message says
/// what is wrong, never a success.
#[track_caller]
fn assert_refused(d: &Daemon, r: &HttpResponse, words: &str) {
    assert!(
        r.status == 500 || r.status == 503 || r.status == 507,
        "a write on failing storage was not refused with a server error: {r}"
    );
    let errs = r.errors();
    let logs = d.logs();
    let tail: Vec<&str> = logs.lines().rev().take(20).collect();
    assert!(
        errs.iter().any(|e| e.contains(words)),
        "the refusal does not say {words:?}: {r}\nthe daemon's last lines, newest first:\n{}",
        tail.join("\n")
    );
}

/// Writes `path` = `value` until one is acknowledged, within [`RECOVERY_DEADLINE`].
fn write_once_recovered(d: &Daemon, path: &str, value: &str) {
    poll_until(RECOVERY_DEADLINE, "writes to work again", || {
        (kv_put(d, path, value).status == 200).then_some(())
    });
}

fn restart_and_unseal(d: &mut Daemon) {
    d.restart_after_kill9();
    d.unseal();
}

#[test]
fn a_full_storage_volume_refuses_writes_and_recovers_when_space_is_freed() {
    if reference_mode() {
        return;
    }
    let Some(fs) = Tmpfs::mount("24m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let mut d = daemon_on(&fs);
    let before = marker("before-full");
    let r = kv_put(&d, "full/before", &before);
    assert_eq!(r.status, 200, "{r}");

    // A write may still fit in the last page the log already has; it is durable there
    // and acknowledged. Writing on, one is refused.
    let filler = fs.fill();
    let mut acknowledged = Vec::new();
    let (refused, r) = (0..200)
        .find_map(|i| {
            let (path, value) = (format!("full/during{i}"), marker("during-full"));
            let r = kv_put(&d, &path, &value);
            if r.status == 200 {
                acknowledged.push((path, value));
                None
            } else {
                Some((path, r))
            }
        })
        .expect("200 writes were acknowledged on a full volume");
    assert_refused(&d, &r, "storage is full");
    // A new version of an existing secret is refused too (its read of the current
    // version may fail first, once redb has failed an I/O and cannot be opened again
    // yet). Reads answer the acknowledged value or an error: never a refused value.
    assert_refused(&d, &kv_put(&d, "full/before", &marker("overwrite")), "");
    let r = d.get("/v1/secret/data/full/before");
    assert!(
        r.status >= 500 || r.json()["data"]["data"]["value"] == before.as_str(),
        "{r}"
    );
    let r = d.get(&format!("/v1/secret/data/{refused}"));
    assert!(
        r.status == 404 || r.status >= 500,
        "a refused write is readable: {r}"
    );

    fs::remove_file(&filler).expect("free the space");
    let after = marker("after-full");
    write_once_recovered(&d, "full/after", &after);
    assert_eq!(kv_get(&d, "full/after").as_deref(), Some(after.as_str()));

    restart_and_unseal(&mut d);
    assert_eq!(kv_get(&d, "full/before").as_deref(), Some(before.as_str()));
    assert_eq!(kv_get(&d, "full/after").as_deref(), Some(after.as_str()));
    for (path, value) in &acknowledged {
        assert_eq!(kv_get(&d, path).as_deref(), Some(value.as_str()), "{path}");
    }
    assert_eq!(
        kv_get(&d, &refused),
        None,
        "a refused write is there after a restart"
    );
}

#[test]
fn a_read_only_storage_volume_keeps_the_appliance_from_starting_until_writable() {
    if reference_mode() {
        return;
    }
    let Some(fs) = Tmpfs::mount("24m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let mut d = daemon_on(&fs);
    let before = marker("before-ro");
    assert_eq!(kv_put(&d, "ro/before", &before).status, 200);

    // Linux refuses to make a mount read-only while a process has a file on it open for
    // writing, so the volume turns read-only while the daemon is down.
    d.kill9();
    fs.remount("ro");
    let refusal = d.start_refused();
    assert!(
        refusal.contains("Read-only file system"),
        "the refusal to start does not name the read-only volume:\n{refusal}"
    );

    fs.remount("rw");
    d.start();
    d.unseal();
    assert_eq!(kv_get(&d, "ro/before").as_deref(), Some(before.as_str()));
    let after = marker("after-ro");
    assert_eq!(kv_put(&d, "ro/after", &after).status, 200);
    restart_and_unseal(&mut d);
    assert_eq!(kv_get(&d, "ro/after").as_deref(), Some(after.as_str()));
}
