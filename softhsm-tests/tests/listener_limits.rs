//! The listener's limits: a client that sends its request head slowly, or holds a
//! kept-alive connection without using it, is disconnected by the configured timeouts;
//! connections past the cap are refused while the open ones keep working; an oversized
//! Content-Length is refused before the body is read; TLS versions, the generated
//! certificate's names, unsupported Vault headers and file modes.
//!
//! Timeouts are set to a second or two in the config so nothing waits long; each check
//! waits for the connection to close (a blocking read with a generous deadline), never
//! for a fixed time.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use softhsm_tests::tools::run_ok;
use softhsm_tests::{files_below, poll_until, reference_mode, Body, Daemon};

/// Far longer than any timeout the tests configure: a read that reaches it means the
/// server did not close the connection.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

fn connect(d: &Daemon) -> TcpStream {
    let s = TcpStream::connect(d.host_port()).expect("connect to the daemon");
    s.set_read_timeout(Some(CLOSE_DEADLINE)).unwrap();
    s
}

/// What the server did with a connection after the test stopped writing to it.
#[derive(Debug, PartialEq)]
enum Ending {
    /// EOF or a reset: the server closed it. Bytes it sent first, if any.
    Closed(String),
    /// Nothing happened before the deadline.
    StillOpen,
}

fn wait_for_close(s: &mut TcpStream) -> Ending {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ending::Closed(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ending::StillOpen
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Ending::Closed(String::from_utf8_lossy(&got).into_owned())
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) off a kept-alive
/// connection; returns the status and the body.
/// Opens a connection, sends `request` and reads the answer; the connection stays open.
fn send_raw(d: &Daemon, request: &[u8]) -> (TcpStream, u16, String) {
    let mut s = connect(d);
    s.write_all(request).unwrap();
    let (status, body) = read_response(&mut s);
    (s, status, body)
}

fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP response: {head}"));
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while got.len() < end + 4 + len {
                let n = s.read(&mut buf).expect("read the response body");
                assert!(n > 0, "connection closed inside a response");
                got.extend_from_slice(&buf[..n]);
            }
            return (
                status,
                String::from_utf8_lossy(&got[end + 4..end + 4 + len]).into_owned(),
            );
        }
        let n = s.read(&mut buf).expect("read a response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

fn health_request(s: &mut TcpStream) -> (u16, String) {
    s.write_all(
        b"GET /v1/sys/health?uninitcode=200&sealedcode=200 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    read_response(s)
}

/// A daemon with these header and idle timeouts, and a connection it has answered one
/// health request on (kept alive).
fn served_with_timeouts(header: &str, idle: &str) -> (Daemon, TcpStream) {
    let d = Daemon::config_with_listener(
        false,
        &format!("http_read_header_timeout = \"{header}\"\nhttp_idle_timeout = \"{idle}\""),
    );
    let mut s = connect(&d);
    assert_eq!(health_request(&mut s).0, 200);
    (d, s)
}

#[test]
fn a_slow_request_head_is_cut_by_the_header_timeout_not_the_idle_one() {
    // A kept-alive connection, idle from here on.
    let (d, mut idle) = served_with_timeouts("1s", "120s");

    // Half a request line, then silence.
    let mut slow = connect(&d);
    slow.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: loc")
        .unwrap();
    match wait_for_close(&mut slow) {
        Ending::Closed(sent) => assert!(
            !sent.starts_with("HTTP/1.1 2"),
            "an unfinished request was answered: {sent}"
        ),
        Ending::StillOpen => panic!("a slow request head was not cut within {CLOSE_DEADLINE:?}"),
    }
    // The idle connection has waited longer than the slow one, yet is still served: the
    // header timeout did not apply to it.
    assert_eq!(health_request(&mut idle).0, 200);
}

#[test]
fn an_idle_kept_alive_connection_is_closed_by_the_idle_timeout() {
    let (_d, mut s) = served_with_timeouts("120s", "1s");
    assert!(
        matches!(wait_for_close(&mut s), Ending::Closed(ref sent) if sent.is_empty()),
        "an idle connection stayed open past http_idle_timeout"
    );
}

#[test]
fn connections_past_the_cap_are_refused_while_open_ones_keep_working() {
    if reference_mode() {
        return; // `max_connections` is Ironseal's own; Vault has no connection cap.
    }
    let d = Daemon::config_with_listener(false, "max_connections = 2");
    // The harness's readiness probes may still hold a slot for a moment after they hang
    // up (the server notices the close asynchronously): the first two connections are
    // the ones the server serves once those slots are free.
    let served = || {
        poll_until(Duration::from_secs(20), "a served connection", || {
            let mut s = connect(&d);
            (health_request(&mut s).0 == 200).then_some(s)
        })
    };
    let mut a = served();
    let mut b = served();

    let mut c = connect(&d);
    let (status, body) = health_request(&mut c);
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a Vault error body");
    let msg = v["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains("too many open connections"), "{body}");
    assert!(matches!(wait_for_close(&mut c), Ending::Closed(_)));

    // The two served connections were not disturbed.
    assert_eq!(health_request(&mut a).0, 200);
    assert_eq!(health_request(&mut b).0, 200);

    // A freed slot is served again.
    drop(a);
    poll_until(Duration::from_secs(20), "a freed connection slot", || {
        let mut s = connect(&d);
        (health_request(&mut s).0 == 200).then_some(())
    });
}

#[test]
fn an_oversized_content_length_gets_413_before_the_body_is_sent() {
    if reference_mode() {
        return; // Vault reads the body up to the limit before it answers.
    }
    let d = Daemon::config_with_listener(false, "max_request_size = 1024");
    // The head announces 10 MB; not a byte of it follows. Waiting for the body would
    // hang this read until CLOSE_DEADLINE.
    let (_s, status, body) = send_raw(
        &d,
        b"POST /v1/sys/init HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("request body too large"), "{body}");
}

#[test]
fn a_body_over_max_request_size_gets_413() {
    let d = Daemon::config_with_listener(false, "max_request_size = 1024");
    let big = d.dir().join("big.json");
    std::fs::write(&big, format!("{{\"pad\":\"{}\"}}", "x".repeat(4096))).unwrap();
    let r = d.http("POST", "/v1/sys/init", None, Body::File(&big));
    assert_eq!(r.status, 413, "{r}");
    let r = d.http("POST", "/v1/sys/init", None, Body::Chunked(&big));
    assert_eq!(r.status, 413, "{r}");
}

fn s_client(d: &Daemon, version_flag: &str) -> std::process::Output {
    let ca = d.cacert().expect("a TLS daemon");
    Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &d.host_port(),
            version_flag,
            "-CAfile",
        ])
        .arg(ca)
        .args(["-verify_return_error", "-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client")
}

#[test]
fn tls_min_version_tls13_refuses_a_tls12_client() {
    let d = Daemon::config_with_listener(true, "tls_min_version = \"tls13\"");
    let v13 = s_client(&d, "-tls1_3");
    assert!(
        v13.status.success(),
        "TLS 1.3 refused: {}",
        String::from_utf8_lossy(&v13.stderr)
    );
    assert!(String::from_utf8_lossy(&v13.stdout).contains("TLSv1.3"));
    let v12 = s_client(&d, "-tls1_2");
    assert!(
        !v12.status.success(),
        "a TLS 1.2 client was served: {}",
        String::from_utf8_lossy(&v12.stdout)
    );
}

fn cert_text(path: &std::path::Path) -> String {
    run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(path),
    )
}

fn verifies(ca: &std::path::Path, cert: &std::path::Path) -> bool {
    Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca)
        .arg(cert)
        .output()
        .expect("run openssl verify")
        .status
        .success()
}

#[test]
fn tls_san_names_go_into_the_generated_certificate_and_a_change_makes_a_new_ca() {
    if reference_mode() {
        return; // OpenBao does not generate its listener certificate.
    }
    let mut d =
        Daemon::config_with_listener(true, "tls_san = [\"vault.example.org\", \"10.9.8.7\"]");
    let tls = d.data_dir().join("tls");
    let (ca, cert) = (tls.join("ca.pem"), tls.join("cert.pem"));
    let sans = cert_text(&cert);
    for name in [
        "DNS:localhost",
        "DNS:vault.example.org",
        "IP Address:10.9.8.7",
    ] {
        assert!(sans.contains(name), "{name} missing: {sans}");
    }
    assert!(verifies(&ca, &cert));
    let ca_before = std::fs::read(&ca).unwrap();
    assert!(
        d.logs().contains(&fingerprint(&ca)),
        "the CA fingerprint was not printed:\n{}",
        d.logs()
    );

    // The CA's key is not kept: whoever read it could mint certificates for any host.
    let ca_key = tls.join("ca-key.pem");
    assert!(!ca_key.exists(), "the CA key was kept");

    // Other names: the CA cannot sign again, so a new CA and server certificate. A CA
    // key left by an earlier version is deleted.
    d.kill9();
    std::fs::write(&ca_key, b"left by an earlier version").unwrap();
    let old_ca = d.dir().join("old-ca.pem");
    std::fs::copy(&ca, &old_ca).unwrap();
    d.set_listener_hcl("tls_san = [\"kms.example.net\"]");
    d.start();
    assert!(!ca_key.exists(), "an earlier version's CA key was left");
    let sans = cert_text(&cert);
    assert!(sans.contains("DNS:kms.example.net"), "{sans}");
    assert!(!sans.contains("vault.example.org"), "{sans}");
    assert_ne!(
        std::fs::read(&ca).unwrap(),
        ca_before,
        "the CA did not change"
    );
    assert!(verifies(&ca, &cert));
    assert!(
        !verifies(&old_ca, &cert),
        "the old CA still vouches for the new names"
    );
    let logs = d.logs();
    assert!(logs.contains("the CA changed"), "{logs}");
    assert!(logs.contains(&fingerprint(&ca)), "{logs}");
    assert_eq!(
        d.http("GET", "/v1/sys/seal-status", None, Body::None)
            .status,
        200
    );
}

/// `AB:CD:...` as the daemon prints it, computed by openssl.
fn fingerprint(pem: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("run openssl x509");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.trim()
        .split_once('=')
        .map(|(_, f)| f.to_string())
        .unwrap_or_else(|| panic!("no fingerprint in {text}"))
}

/// Headers asking for what the appliance does not implement are refused, never ignored
/// into a plaintext answer; a wrapped read answers with the wrapping token only
/// (`tests/wrapping.rs` has the rest of response wrapping).
#[test]
fn unsupported_headers_are_refused_never_answered_in_plaintext() {
    if reference_mode() {
        return; // OpenBao implements these headers.
    }
    let d = Daemon::dev(&[]);
    let secret = "wrap-me-not-4721";
    d.bao(&["kv", "put", "secret/wrapped", &format!("v={secret}")])
        .ok();
    let out = d.bao(&["kv", "get", "-wrap-ttl=5m", "secret/wrapped"]).ok();
    assert!(out.stdout.contains("wrapping_token:"), "{out}");
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "{out}"
    );

    for header in [
        "X-Vault-Wrap-Format: jwt",
        "X-Vault-Policy-Override: true",
        "X-Vault-MFA: method:123",
        "X-Vault-Index: abc",
        "X-Vault-Inconsistent: forward-active-node",
        "X-Vault-Forward: active-node",
        "X-Vault-Namespace: team-a",
        "X-Vault-Inline-Auth-Parameter-role: YQ",
    ] {
        let r = d
            .http_with(
                "GET",
                "/v1/secret/data/wrapped",
                Body::None,
                &[
                    "-H",
                    header,
                    "-H",
                    &format!("X-Vault-Token: {}", d.token.as_deref().unwrap()),
                ],
            )
            .unwrap();
        assert_eq!(r.status, 400, "{header}: {r}");
        assert!(r.errors()[0].contains("not supported"), "{header}: {r}");
        assert!(!r.body.contains(secret), "{header}: {r}");
    }
    // An empty header asks for nothing, as in Vault.
    let r = d
        .http_with(
            "GET",
            "/v1/secret/data/wrapped",
            Body::None,
            &[
                "-H",
                "X-Vault-Wrap-TTL;",
                "-H",
                &format!("X-Vault-Token: {}", d.token.as_deref().unwrap()),
            ],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn data_files_are_owner_only_whatever_the_umask() {
    if reference_mode() {
        return; // The modes of OpenBao's own files are its business.
    }
    let mut d = Daemon::config(true);
    d.init(1, 1);
    d.unseal();
    // Audit logs may not be created in the data dir (where a new file could be the
    // store's log), so this one is beside it.
    let audit = d.dir().join("audit.log");
    d.bao(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", audit.display()),
    ])
    .ok();
    d.ensure_secret_kv2();
    d.bao(&["kv", "put", "secret/modes", "a=b"]).ok();
    assert!(audit.exists());

    let data = d.data_dir();
    let mut checked = 0;
    for f in files_below(&data).into_iter().chain([audit]) {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", f.display());
        checked += 1;
    }
    assert!(
        checked >= 6,
        "too few files to judge: {:?}",
        files_below(&data)
    );
    // The data directory existed before the daemon (the harness made it, under this
    // process's umask): it may be shared, so its mode is left, with a warning when
    // others can read it. The directories the daemon makes in it are its own.
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let like_harness = d.dir().join("made-like-the-harness");
    std::fs::create_dir_all(&like_harness).unwrap();
    let data_mode = mode_of(&data);
    assert_eq!(
        data_mode,
        mode_of(&like_harness),
        "the existing data directory's mode was changed"
    );
    if data_mode & 0o077 != 0 {
        assert!(d.logs().contains("open to group or others"), "{}", d.logs());
    }
    let mut dirs: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(!dirs.is_empty(), "no directory made by the daemon to judge");
    while let Some(dir) = dirs.pop() {
        let mode = mode_of(&dir);
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
        }
    }
}

#[test]
fn an_unknown_config_key_stops_the_daemon_with_its_line() {
    if reference_mode() {
        return; // Vault warns about unknown keys and starts anyway.
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ironseal.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"redb\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n  http_read_header_timout = \"5s\"\n}}\n",
            dir.path().join("db.redb").display()
        ),
    )
    .unwrap();
    let out = Command::new(softhsm_tests::ironseal_bin())
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:7: unknown key `http_read_header_timout`",
            config.display()
        )),
        "{err}"
    );
}

#[test]
fn a_stalled_body_is_cut_by_the_read_timeout_and_huge_headers_are_refused() {
    if reference_mode() {
        return; // Go closes without an answer on a read timeout; the 408 is Ironseal's.
    }
    let d = Daemon::config_with_listener(false, "http_read_timeout = \"1s\"");
    let (mut s, status, body) = send_raw(
        &d,
        b"POST /v1/sys/init HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"secret_sh",
    );
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("http_read_timeout"), "{body}");
    assert!(matches!(wait_for_close(&mut s), Ending::Closed(_)));

    // A header block past the listener's 64 KiB is refused before anything runs.
    let mut s = connect(&d);
    let huge = format!(
        "GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nX-Vault-Token: {}\r\n\r\n",
        "a".repeat(80 << 10)
    );
    let _ = s.write_all(huge.as_bytes());
    let (status, _) = read_response(&mut s);
    assert_eq!(status, 431);
}

/// Sends a request head announcing `len` body bytes, and only the first of them.
fn start_post(d: &Daemon, len: usize) -> TcpStream {
    let mut s = connect(d);
    s.write_all(
        format!("POST /v1/sys/init HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{{").as_bytes(),
    )
    .unwrap();
    s
}

#[test]
fn request_bodies_past_the_global_budget_get_503_until_one_finishes() {
    if reference_mode() {
        return; // `max_request_bytes_in_flight` is Ironseal's own.
    }
    let d = Daemon::config_with_listener(
        false,
        "http_read_timeout = 0\nmax_request_size = 4096\nmax_request_bytes_in_flight = 8192",
    );
    // Two stalled bodies of 4 KiB take the whole 8 KiB budget.
    let mut held = [start_post(&d, 4096), start_post(&d, 4096)];
    // Once the server reads them (it takes their bytes from the budget before the
    // first byte), a third is refused. Until then a third may be accepted and wait for
    // its body: such a probe is dropped, giving its share back, and tried again. A probe
    // read first can also be the one holding the budget when a held body arrives, which
    // is then refused: a held body that got an answer is sent again, or every later
    // probe would find room. Each probe that wins a race costs two seconds, and on a
    // loaded machine several can in a row: the deadline leaves room for that.
    let (status, body) = poll_until(Duration::from_secs(60), "the budget to fill", || {
        for h in held.iter_mut() {
            if has_answer(h) {
                *h = start_post(&d, 4096);
            }
        }
        answered(start_post(&d, 4096)).filter(|(status, _)| *status == 503)
    });
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).expect("a Vault error body");
    let msg = v["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains("server is busy"), "{body}");
    assert!(msg.contains("max_request_bytes_in_flight"), "{body}");
    // A request without a body needs nothing from the budget.
    let mut s = connect(&d);
    assert_eq!(health_request(&mut s).0, 200);

    // A client that goes away gives its share back: a whole body is served again.
    let [a, _b] = held;
    drop(a);
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096 - 10));
    let (status, answer) = poll_until(Duration::from_secs(20), "a share given back", || {
        let mut c = connect(&d);
        c.write_all(
            format!("POST /v1/sys/init HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
        )
        .unwrap();
        Some(read_response(&mut c)).filter(|(status, _)| *status != 503)
    });
    assert!(!answer.contains("busy"), "{status} {answer}");
}

/// Whether the server has answered (or closed) `s` already, without waiting.
fn has_answer(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut first = [0u8; 1];
    let answered =
        !matches!(s.peek(&mut first), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    answered
}

/// The response on `s`, or None when none starts within a few seconds.
fn answered(mut s: TcpStream) -> Option<(u16, String)> {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut first = [0u8; 1];
    match s.peek(&mut first) {
        Ok(n) if n > 0 => {
            s.set_read_timeout(Some(CLOSE_DEADLINE)).unwrap();
            Some(read_response(&mut s))
        }
        _ => None,
    }
}

#[test]
fn a_request_past_max_request_duration_gets_503() {
    if reference_mode() {
        return; // Vault's deadline does not cover reading the body, which stalls here.
    }
    // No read timeout: only max_request_duration can end the wait for this body.
    let d = Daemon::config_with_listener(
        false,
        "http_read_timeout = 0\nmax_request_duration = \"1s\"",
    );
    let mut s = connect(&d);
    s.write_all(
        b"POST /v1/sys/init HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_request_duration"), "{body}");
    // The appliance is still uninitialised: nothing ran on a partial request.
    let r = d.http("GET", "/v1/sys/init", None, Body::None);
    assert_eq!(r.json()["initialized"], false, "{r}");
}

#[test]
fn a_tls_client_that_never_finishes_its_handshake_is_cut() {
    let d = Daemon::config_with_listener(
        true,
        "http_read_header_timeout = \"1s\"\nhttp_idle_timeout = \"120s\"",
    );
    // The start of a ClientHello record, then silence.
    let mut s = connect(&d);
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    assert!(
        matches!(wait_for_close(&mut s), Ending::Closed(_)),
        "a stalled TLS handshake was not cut within {CLOSE_DEADLINE:?}"
    );
    // A real client is still served.
    let ca = d.cacert().unwrap();
    run_ok(
        Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--cacert"])
            .arg(ca)
            .arg(format!("{}/v1/sys/seal-status", d.addr)),
    );
}
