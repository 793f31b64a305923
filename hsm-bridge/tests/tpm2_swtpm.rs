//! The TPM 2.0 backend against swtpm on a temporary state dir.
#![cfg(feature = "tpm2")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hsm_bridge::tpm2::{Tpm2Config, Tpm2Device};
use hsm_bridge::{BridgeError, SealDevice};

struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn two_free_ports() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports");
}

fn swtpm() -> Swtpm {
    let state = tempfile::tempdir().unwrap();
    let port = two_free_ports();
    let child = Command::new("swtpm")
        .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.path().display()))
        .args([
            "--server",
            &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
        ])
        .args([
            "--ctrl",
            &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start swtpm ({e}): run scripts/install-deps.sh"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "swtpm did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Swtpm {
        child,
        port,
        _state: state,
    }
}

fn device(tpm: &Swtpm, dir: &std::path::Path, pcrs: Vec<u8>) -> Tpm2Device {
    Tpm2Device::new(Tpm2Config {
        tcti: format!("swtpm:host=127.0.0.1,port={}", tpm.port),
        pcrs,
        dir: dir.to_path_buf(),
    })
    .unwrap()
}

#[test]
fn seals_reopens_and_refuses_another_tpm() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let dev = device(&tpm, dir.path(), vec![]);
    assert!(matches!(
        dev.open(false),
        Err(BridgeError::Unavailable { .. })
    ));
    let root = dev.open(true).unwrap();
    let blob = root.wrap(b"core/keyring", b"ring").unwrap();
    drop(root);
    let again = dev.open(false).unwrap();
    assert_eq!(&*again.unwrap(b"core/keyring", &blob).unwrap(), b"ring");
    let mut r = [0u8; 40];
    again.random(&mut r).unwrap();

    // The same blobs next to a fresh TPM do not open, and the error says why.
    let other = swtpm();
    let e = device(&other, dir.path(), vec![])
        .open(false)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::ForeignKeyring(_)), "{e}");
    assert!(e.to_string().contains("another TPM"), "{e}");

    // TPM down: unavailable, with what to check.
    drop(tpm);
    let e = dev.open(false).err().unwrap();
    assert!(matches!(e, BridgeError::Unavailable { .. }), "{e}");
}

#[test]
fn pcr_policy_binds_the_secret() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let dev = device(&tpm, dir.path(), vec![16, 23]);
    let root = dev.open(true).unwrap();
    let blob = root.wrap(b"k", b"v").unwrap();
    drop(root);
    assert_eq!(
        &*dev.open(false).unwrap().unwrap(b"k", &blob).unwrap(),
        b"v"
    );
    // Extend PCR 16: the policy no longer holds.
    let out = Command::new("tpm2_pcrextend")
        .arg("16:sha256=0000000000000000000000000000000000000000000000000000000000000001")
        .env(
            "TPM2TOOLS_TCTI",
            format!("swtpm:host=127.0.0.1,port={}", tpm.port),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = dev.open(false).err().unwrap();
    assert!(e.to_string().contains("PCR"), "{e}");
}
