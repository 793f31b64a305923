//! `ironseal operator ...`: the hardware seal's platform policy, against a running daemon
//! (the `sys/seal-policy` endpoints; a token with `sudo` on them, e.g. the root token).
//!
//! Reached like the `bao` CLI: `VAULT_ADDR` (or `BAO_ADDR`, or `-address`), `VAULT_TOKEN`
//! (or `BAO_TOKEN`), and for HTTPS `VAULT_CACERT` (or `BAO_CACERT`, or `-ca-cert`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::Flags;

pub const USAGE: &str = "Usage: ironseal operator <command> [flags]

Commands (TPM seal; the daemon must be unsealed; the token needs sudo):
    seal-policy      Show the sealed root key's PCRs, their current values and the
                     signed values auto-unseal accepts
    authorize-pcrs   Before a firmware/boot/Secure Boot update: sign the PCR values of
                     the next boot, so the appliance still unseals itself after it
                       -pcrs=16=<hex>[,23=<hex>]    expected SHA-256 values
                       -extend=16=<hex>[,16=<hex>]  digests the update will extend into
                                                    the current values, in order
    reseal           Re-create the sealed root key for the current PCR values (after
                     an unseal with the recovery keys, once this boot state is trusted)

Flags: -address=URL (VAULT_ADDR), -ca-cert=FILE (VAULT_CACERT)";

pub fn run(args: &[String]) -> ExitCode {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(1);
    };
    let valued: &[&str] = match command.as_str() {
        "authorize-pcrs" => &["address", "ca-cert", "pcrs", "extend"],
        "reseal" | "seal-policy" => &["address", "ca-cert"],
        "-h" | "-help" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown operator command {other:?}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let flags = match Flags::parse(rest, &[], valued) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let (method, path, body) = match command.as_str() {
        "seal-policy" => ("GET", "sys/seal-policy", None),
        "reseal" => ("POST", "sys/seal-policy/reseal", Some(json!({}))),
        _ => {
            let mut body = serde_json::Map::new();
            for name in ["pcrs", "extend"] {
                if let Some(v) = flags.get(name) {
                    body.insert(name.into(), Value::String(v.into()));
                }
            }
            if body.is_empty() {
                eprintln!("authorize-pcrs needs -pcrs or -extend (the values of the next boot)");
                return ExitCode::from(1);
            }
            (
                "POST",
                "sys/seal-policy/authorize-pcrs",
                Some(Value::Object(body)),
            )
        }
    };
    match request(&flags, method, path, body.as_ref()) {
        Ok(v) => {
            let shown = v.get("data").cloned().unwrap_or(v);
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(2)
        }
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn request(flags: &Flags, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let address = flags
        .get("address")
        .map(String::from)
        .or_else(|| env(&["VAULT_ADDR", "BAO_ADDR"]))
        .unwrap_or_else(|| "https://127.0.0.1:8200".into());
    let token = env(&["VAULT_TOKEN", "BAO_TOKEN"]).ok_or(
        "no token: set VAULT_TOKEN to a token with sudo on sys/seal-policy (e.g. the root token)",
    )?;
    let (tls, rest) = if let Some(r) = address.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = address.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "address {address:?} must start with http:// or https://"
        ));
    };
    let host = rest.trim_end_matches('/');
    let authority = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:{}", if tls { 443 } else { 80 })
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    let stream =
        TcpStream::connect(&authority).map_err(|e| format!("cannot reach {address}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut raw = Vec::new();
    if tls {
        let server = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .trim_matches(['[', ']']);
        let config = tls_config(flags)?;
        let name = rustls::pki_types::ServerName::try_from(server.to_string())
            .map_err(|_| format!("{server:?} is not a valid server name"))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| format!("TLS: {e}"))?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        tls.write_all(head.as_bytes())
            .and_then(|_| tls.write_all(payload.as_bytes()))
            .map_err(|e| format!("TLS to {address}: {e}"))?;
        read_all(&mut tls, &mut raw)?;
    } else {
        let mut s = stream;
        s.write_all(head.as_bytes())
            .and_then(|_| s.write_all(payload.as_bytes()))
            .map_err(|e| format!("cannot send to {address}: {e}"))?;
        read_all(&mut s, &mut raw)?;
    }
    parse_response(&raw)
}

fn read_all(r: &mut impl Read, out: &mut Vec<u8>) -> Result<(), String> {
    match r.read_to_end(out) {
        Ok(_) => Ok(()),
        // A server that closes without close_notify still sent a complete answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(format!("reading the answer: {e}")),
    }
}

fn tls_config(flags: &Flags) -> Result<rustls::ClientConfig, String> {
    let ca = flags
        .get("ca-cert")
        .map(String::from)
        .or_else(|| env(&["VAULT_CACERT", "BAO_CACERT"]))
        .ok_or("HTTPS needs the daemon's CA certificate: set VAULT_CACERT or -ca-cert")?;
    let pem = std::fs::read(&ca).map_err(|e| format!("cannot read {ca}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("{ca}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{ca}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{ca} holds no PEM certificate"));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

fn parse_response(raw: &[u8]) -> Result<Value, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the daemon's answer is not HTTP")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the daemon's answer has no status")?;
    if head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    }) {
        body = dechunk(&body)?;
    }
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| format!("HTTP {status}: the answer is not JSON"))?
    };
    if (200..300).contains(&status) {
        return Ok(value);
    }
    let errors = value["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    Err(format!("HTTP {status}: {errors}"))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunked answer")?;
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunked answer".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
