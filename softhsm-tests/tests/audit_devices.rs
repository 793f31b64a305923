//! The `socket` and `syslog` audit devices, enabled with the bao CLI: a TCP receiver and
//! a syslog receiver (a Unix datagram socket) made by the test get every request's lines,
//! hash-chained as the file device writes them, and a receiver that goes away makes
//! requests fail closed.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use softhsm_tests::{ironseal_bin, poll_until, reference_mode, Daemon};

/// Reads the lines of the device's connection on a thread of its own, as they come.
fn receive(stream: TcpStream) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (rx, handle)
}

fn entries_until(
    rx: &mpsc::Receiver<String>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Vec<String> {
    let mut got = Vec::new();
    poll_until(Duration::from_secs(30), what, || {
        while let Ok(line) = rx.try_recv() {
            got.push(line);
        }
        got.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| pred(&v))
            .then_some(())
    });
    got
}

#[test]
fn a_socket_device_gets_every_request_and_a_dead_one_fails_requests_closed() {
    if reference_mode() {
        // OpenBao 2.7 refuses audit devices through the API ("use declarative,
        // config-based audit device management").
        return;
    }
    let d = Daemon::dev(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let out = d
        .bao(&[
            "audit",
            "enable",
            "socket",
            &format!("address={address}"),
            "socket_type=tcp",
        ])
        .ok();
    assert!(
        out.stdout
            .contains("Success! Enabled the socket audit device"),
        "{out}"
    );
    // The device connected while being enabled (it delivers a line then).
    let (stream, _) = listener.accept().unwrap();
    let (rx, receiver) = receive(stream.try_clone().unwrap());
    d.kv_put_value("audited", "s3cret");
    let lines = entries_until(&rx, "the kv write's response line", |v| {
        v["type"] == "response" && v["request"]["path"] == "secret/data/audited"
    });
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(!text.contains("s3cret"), "a secret in the clear: {text}");
    {
        // The same chain as a file: `ironseal audit verify` checks what the receiver got.
        let file = d.dir().join("received.log");
        std::fs::write(&file, &text).unwrap();
        let out = std::process::Command::new(ironseal_bin())
            .args(["audit", "verify", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The receiver goes away: requests fail (once the kernel notices), nothing served.
    drop(listener);
    stream.shutdown(Shutdown::Both).unwrap();
    receiver.join().unwrap();
    drop(rx);
    let failed = poll_until(
        Duration::from_secs(30),
        "a request refused for audit",
        || {
            let r = d.get("/v1/secret/data/audited");
            (r.status != 200).then_some(r)
        },
    );
    assert_eq!(failed.status, 500, "{failed}");
    assert!(!failed.body.contains("s3cret"), "{failed}");

    // Even disabling the device is refused while nothing can record it; a receiver back
    // at the address takes the lines again (the device reconnects) and requests pass.
    let out = d.bao(&["audit", "disable", "socket/"]);
    assert!(!out.success(), "{out}");
    let listener = TcpListener::bind(&address).unwrap();
    let back = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (rx, reader) = receive(stream);
        reader.join().unwrap();
        rx.try_iter().count()
    });
    assert_eq!(d.kv_get_value("audited"), "s3cret");
    d.bao(&["audit", "disable", "socket/"]).ok();
    assert!(
        back.join().unwrap() >= 2,
        "the lines of the read and the disable"
    );
}

#[test]
fn a_syslog_device_sends_chained_lines_with_its_facility_and_tag() {
    if reference_mode() {
        // OpenBao's syslog device writes to the local syslog only (`address` is
        // Ironseal's), and is enabled from its configuration file, not the API.
        return;
    }
    let d = Daemon::dev(&[]);
    let path = d.dir().join("syslog.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let out = d
        .bao(&[
            "audit",
            "enable",
            "syslog",
            "tag=kms",
            "facility=LOCAL4",
            &format!("address={}", path.display()),
        ])
        .ok();
    assert!(
        out.stdout
            .contains("Success! Enabled the syslog audit device"),
        "{out}"
    );
    d.kv_put_value("logged", "v");
    let mut chain = String::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = receiver.recv(&mut buf).expect("a syslog message");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        // LOCAL4 (20) * 8 + info (6) = 166.
        assert!(msg.starts_with("<166>"), "{msg}");
        let (_, line) = msg
            .split_once(" kms[")
            .and_then(|(_, r)| r.split_once("]: "))
            .unwrap_or_else(|| panic!("no tag: {msg}"));
        chain.push_str(line);
        let v: Value = serde_json::from_str(line.trim_end()).unwrap();
        if v["type"] == "response" && v["request"]["path"] == "secret/data/logged" {
            break;
        }
    }
    let file = d.dir().join("syslog.log");
    std::fs::write(&file, &chain).unwrap();
    let out = std::process::Command::new(ironseal_bin())
        .args(["audit", "verify", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A receiver that is gone: fail closed.
    drop(receiver);
    std::fs::remove_file(&path).unwrap();
    let r = d.get("/v1/secret/data/logged");
    assert_eq!(r.status, 500, "{r}");
    // A device that cannot deliver is never enabled.
    let out = d.bao(&[
        "audit",
        "enable",
        "-path=syslog2",
        "syslog",
        &format!("address={}", d.dir().join("nobody.sock").display()),
    ]);
    assert!(!out.success(), "{out}");
}
