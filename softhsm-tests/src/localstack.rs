//! LocalStack's KMS, the AWS stand-in of the cloud-export tests: a real third-party
//! emulator from the venv `scripts/install-deps.sh` makes at
//! `$IRONSEAL_CACHE/localstack-venv` (`IRONSEAL_LOCALSTACK_PYTHON` overrides its Python),
//! started on a free loopback port with its state in a temporary directory, and killed
//! (with anything it started) when the handle is dropped.
//!
//! It speaks AWS's JSON protocol and accepts any SigV4 credentials; its import is real
//! (`GetPublicKey` returns the imported key, `Sign` uses it) but lax: it takes key
//! material of the wrong type, import tokens of another key or used before, and answers
//! material it cannot unwrap with a 500.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long LocalStack may take to answer its health check (about 2 s on an idle machine).
pub const LOCALSTACK_STARTUP_DEADLINE: Duration = Duration::from_secs(90);

/// Credentials LocalStack accepts (it accepts any; these name its default account).
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";
pub const REGION: &str = "us-east-1";

/// The venv's Python with `localstack-core` installed.
pub fn localstack_python() -> PathBuf {
    if let Some(p) = std::env::var_os("IRONSEAL_LOCALSTACK_PYTHON") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("IRONSEAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ironseal"));
    cache.join("localstack-venv/bin/python")
}

/// A running LocalStack with KMS only.
pub struct LocalStack {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl LocalStack {
    /// Starts LocalStack and waits until its KMS answers.
    pub fn start() -> LocalStack {
        let python = localstack_python();
        assert!(
            python.exists(),
            "{} is missing: run scripts/install-deps.sh",
            python.display()
        );
        let dir = tempfile::tempdir().expect("a temporary directory for LocalStack");
        let log = std::fs::File::create(dir.path().join("localstack.log"))
            .expect("LocalStack's log file");
        let port = free_port();
        let child = Command::new(&python)
            .args(["-m", "localstack.runtime.main"])
            .env("SERVICES", "kms")
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEWAY_SERVER", "hypercorn")
            .env("DNS_ADDRESS", "0")
            .env("FILESYSTEM_ROOT", dir.path().join("fs"))
            // Nothing leaves the machine: no usage events, no certificate download.
            .env("DISABLE_EVENTS", "1")
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("LocalStack's log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let mut localstack = LocalStack {
            child: Some(child),
            port,
            dir,
        };
        localstack.wait_ready();
        localstack
    }

    /// `http://127.0.0.1:<port>`, the endpoint to give the SDK (`providerMetadata.endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What LocalStack has written so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("localstack.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("LocalStack exited with {status}:\n{}", self.log());
                }
            }
            if self.kms_available() {
                return;
            }
            assert!(
                start.elapsed() < LOCALSTACK_STARTUP_DEADLINE,
                "LocalStack did not answer within {LOCALSTACK_STARTUP_DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether `/_localstack/health` lists KMS as available (or already running).
    fn kms_available(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "GET /_localstack/health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        if stream.read_to_string(&mut answer).is_err() {
            return false;
        }
        let Some((head, body)) = answer.split_once("\r\n\r\n") else {
            return false;
        };
        let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
        let health: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        ok && matches!(
            health["services"]["kms"].as_str(),
            Some("available" | "running")
        )
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The process group: LocalStack and whatever it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
