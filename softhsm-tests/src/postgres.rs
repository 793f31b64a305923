//! A throw-away PostgreSQL cluster: `initdb` into a temporary directory, `pg_ctl start` on
//! a free loopback port (no Unix socket outside that directory), stopped and removed when
//! dropped. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user
//! Debian's package creates.
//!
//! Password authentication (SCRAM) on TCP, so the tests can check that the password in
//! the connection URL never shows in what the daemon prints.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::daemon::free_port;

/// The cluster's superuser and its password (they are the tests' own).
pub const USER: &str = "ironseal";
pub const PASSWORD: &str = "pg-secret-8c41f07e";

pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
    /// `Some("postgres")` when running as root.
    run_as: Option<&'static str>,
}

/// Where Debian puts the server binaries (`/usr/lib/postgresql/<major>/bin`), newest first;
/// else whatever `initdb` is on PATH.
fn server_bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    if let Some((_, bin)) = dirs.pop() {
        return bin;
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("no PostgreSQL server binaries: run scripts/install-deps.sh (apt `postgresql`)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// A new cluster, started and accepting connections.
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("ironseal-pg-")
            .tempdir()
            .expect("a temp dir");
        let run_as = is_root().then_some("postgres");
        let pg = Postgres {
            dir,
            bin: server_bin_dir(),
            port: free_port(),
            run_as,
        };
        let pwfile = pg.dir.path().join("pw");
        fs::write(&pwfile, PASSWORD).unwrap();
        if run_as.is_some() {
            fs::set_permissions(pg.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .expect("chown");
            assert!(chown.success(), "cannot hand the cluster dir to postgres");
        }
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-U",
                USER,
                "--pwfile",
                &pwfile.display().to_string(),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    pub fn start_server(&self) {
        // fsync off: the tests' durability is the daemon's contract with the server, not
        // the server's with the disk, and the shared machines' disks are slow.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.path().join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&out),
            self.log()
        );
    }

    /// `pg_ctl stop -m fast`: open connections are cut, as in a server restart.
    pub fn stop_server(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop failed: {}", text(&out));
    }

    /// Stops and starts the server on the same port and data.
    pub fn restart(&self) {
        self.stop_server();
        self.start_server();
    }

    /// Freezes every process of the server (`SIGSTOP`): to its clients it looks like a
    /// hung host or a network that drops packets, connections open and nothing
    /// answering. It resumes (`SIGCONT`) when the guard is dropped.
    pub fn stall(&self) -> Stalled {
        let pid_file = fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("the server's postmaster.pid");
        let postmaster = pid_file.lines().next().unwrap_or("").trim().to_string();
        let mut pids = vec![postmaster.clone()];
        pids.extend(children_of(&postmaster));
        assert!(signal("STOP", &pids), "kill -STOP {pids:?} failed");
        Stalled { pids }
    }

    /// A URL for database `postgres` with the superuser's password.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The server's log, for failed assertions.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// The server frozen by [`Postgres::stall`]; resumes it when dropped.
pub struct Stalled {
    pids: Vec<String>,
}

impl Drop for Stalled {
    fn drop(&mut self) {
        // Also while a failed assertion unwinds, so no panic here.
        if !signal("CONT", &self.pids) {
            eprintln!("kill -CONT {:?} failed", self.pids);
        }
    }
}

/// The processes whose parent is `pid` (the postmaster's backends and workers).
fn children_of(pid: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces, so split after its `)`.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (ppid == pid).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn signal(name: &str, pids: &[String]) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids)
        .status()
        .is_ok_and(|s| s.success())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
