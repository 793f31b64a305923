//! The dev server's PKCS#11 socket: printed at start, answering a `Hello`, replaced after
//! a crash and removed at shutdown. (The library's own acceptance tests drive it through
//! PKCS#11 applications.)

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use pkcs11_wire::{frame, Hello, Reply, Welcome, PROTOCOL_VERSION};
use softhsm_tests::{poll_until, reference_mode, Body, Daemon};

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

/// `pkcs11-tool` against a config-mode daemon's socket, with `pin` as the user PIN.
fn pkcs11_tool(socket: &std::path::Path, pin: &str, args: &[&str]) -> softhsm_tests::Output {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module")
        .arg(softhsm_tests::pkcs11::appliance_module())
        .args(["--login", "--pin", pin])
        .args(args)
        .env("IRONSEAL_PKCS11_SOCKET", socket)
        .env_remove("IRONSEAL_PKCS11_CONF");
    softhsm_tests::pkcs11::run(&mut cmd)
}

fn write_secret(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A `pin "name"` entry of the `pkcs11` block: the name logs in as the token in its file,
/// with that token's scopes; a name that is no entry is a wrong PIN.
#[test]
fn a_pin_entry_name_logs_in_as_its_token() {
    if softhsm_tests::pkcs11::skip(true) {
        return;
    }
    softhsm_tests::hardware::require_tool("pkcs11-tool");
    let files = tempfile::Builder::new()
        .prefix("ironseal-pins-")
        .tempdir()
        .unwrap();
    let socket = files.path().join("p11.sock");
    let token_file = files.path().join("billing.token");
    // The daemon reads the entry's file at start: a placeholder until the token exists.
    write_secret(&token_file, "not-yet-a-token\n");
    let seal = format!(
        "seal \"shamir\" {{}}\n\npkcs11 {{\n  socket = \"{}\"\n  pin \"billing\" {{\n    token_file = \"{}\"\n  }}\n}}",
        socket.display(),
        token_file.display()
    );
    let mut d = Daemon::config_with_seal(&seal, &[]);
    let root = d.init(1, 1).root_token;
    d.unseal();

    let made = pkcs11_tool(
        &socket,
        &root,
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "0b",
            "--label",
            "billing-ec",
        ],
    );
    assert!(made.success(), "{made}");
    // The entry's token may read and use keys, not make them.
    let r = d.http(
        "POST",
        "/v1/auth/token/create",
        Some(&root),
        Body::Json(
            &serde_json::json!({"policies": ["default"], "scopes": ["keys:read", "keys:use"]})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 200, "{r}");
    let token = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    write_secret(&token_file, &format!("{token}\n"));
    d.restart_after_kill9();
    d.unseal();

    let listed = pkcs11_tool(&socket, "billing", &["--list-objects", "--type", "privkey"]);
    assert!(listed.success(), "{listed}");
    assert!(listed.stdout.contains("billing-ec"), "{listed}");
    let data = files.path().join("data");
    std::fs::write(&data, b"signed under a PIN name").unwrap();
    let sig = files.path().join("sig");
    let signed = pkcs11_tool(
        &socket,
        "billing",
        &[
            "--sign",
            "--mechanism",
            "ECDSA-SHA256",
            "--id",
            "0b",
            "--input-file",
            data.to_str().unwrap(),
            "--output-file",
            sig.to_str().unwrap(),
        ],
    );
    assert!(signed.success(), "{signed}");
    assert_eq!(std::fs::read(&sig).unwrap().len(), 64);
    // The token's scopes apply: no keys:write, no new key.
    let refused = pkcs11_tool(
        &socket,
        "billing",
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "0c",
            "--label",
            "not-allowed",
        ],
    );
    assert!(!refused.success(), "{refused}");
    // A name that is no entry and no token is a wrong PIN.
    let unknown = pkcs11_tool(&socket, "payroll", &["--list-objects"]);
    assert!(!unknown.success(), "{unknown}");
    assert!(
        format!("{}{}", unknown.stdout, unknown.stderr).contains("CKR_PIN_INCORRECT"),
        "{unknown}"
    );
}
