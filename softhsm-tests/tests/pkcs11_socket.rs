//! The dev server's PKCS#11 socket: printed at start, answering a `Hello`, replaced after
//! a crash and removed at shutdown. (The library's own acceptance tests drive it through
//! PKCS#11 applications.)

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use pkcs11_wire::{frame, Hello, Reply, Welcome, PROTOCOL_VERSION};
use softhsm_tests::{poll_until, reference_mode, Daemon};

fn hello_is_welcomed(socket: &std::path::Path) -> Welcome {
    let mut s = UnixStream::connect(socket).expect("connect to the PKCS#11 socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        instance: [9; 16],
        library: "softhsm-tests".into(),
    };
    frame::write(&mut s, &hello).expect("send the Hello");
    match frame::read(&mut s).expect("an answer to the Hello") {
        Reply::Welcome(welcome) => welcome,
        other => panic!("not a Welcome: {other:?}"),
    }
}

#[test]
fn dev_mode_serves_pkcs11_on_the_socket_it_prints() {
    if reference_mode() {
        return; // OpenBao has no PKCS#11 door.
    }
    let mut d = Daemon::dev(&[]);
    let socket = d
        .pkcs11_socket()
        .expect("dev mode printed its PKCS#11 socket");
    assert_eq!(socket, d.dir().join("pkcs11.sock"));
    assert!(
        d.logs().contains(&format!(
            "export IRONSEAL_PKCS11_SOCKET='{}'",
            socket.display()
        )),
        "{}",
        d.logs()
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    assert_eq!(hello_is_welcomed(&socket).version, PROTOCOL_VERSION);

    // A daemon killed outright leaves its socket file; the next start replaces it.
    d.restart_after_kill9();
    assert_eq!(hello_is_welcomed(&socket).version, PROTOCOL_VERSION);

    // A daemon stopped properly removes it.
    let pid = d.pid().expect("running").to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    poll_until(Duration::from_secs(30), "the socket file to go", || {
        (!socket.exists()).then_some(())
    });
}

#[test]
fn a_second_dev_server_on_a_live_socket_does_not_start() {
    if reference_mode() {
        return;
    }
    let first = Daemon::dev(&[]);
    let socket = first.pkcs11_socket().unwrap();
    let out = Command::new(softhsm_tests::ironseal_bin())
        .args(["server", "-dev", "-dev-listen-address=127.0.0.1:0"])
        .arg(format!("-dev-pkcs11-socket={}", socket.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another daemon is serving PKCS#11"),
        "{stderr}"
    );
    // The first one still answers.
    assert_eq!(hello_is_welcomed(&socket).version, PROTOCOL_VERSION);
}
