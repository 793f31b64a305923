//! `ironseal audit verify`: checks an audit file's chain.
//!
//! The chain is keyed with a secret that never leaves the appliance, so there are two
//! modes:
//! - offline, `ironseal audit verify FILE`: what anyone can check from the file alone
//!   (every line's structure, `seq` continuity, the `prev_hash` links, the tags of lines
//!   written before the chain was keyed, and recorded cuts); it says that keyed lines'
//!   MACs were not checked, so an edit that keeps a line's tag passes here;
//! - online, `ironseal audit verify -device=PATH [-against-storage]`: asks the appliance
//!   at `VAULT_ADDR` (token `VAULT_TOKEN`, CA `VAULT_CACERT` for https) through
//!   `sys/audit-verify/PATH`, an Ironseal extension needing `sudo`, to check its own file
//!   with the key; with `-against-storage` the file must also reach the chain head the
//!   appliance recorded in storage, so a tail cut off the file is found.
//!
//! Exit status: 0 intact (torn writes the daemon recorded are reported, not failed), 1
//! when the chain is broken, holds bytes that are not chain lines, or (with
//! `-against-storage`) misses the stored head; 2 on usage or I/O errors.

use std::process::ExitCode;
use std::sync::Arc;

use engine::audit::chain::{self, Report};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cli::Flags;

const USAGE: &str = "Usage: ironseal audit verify FILE
       ironseal audit verify -device=PATH [-against-storage]   (uses VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT)";

pub fn run(args: &[String]) -> ExitCode {
    let Some((_, rest)) = args.split_first().filter(|(v, _)| v.as_str() == "verify") else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let (files, flags): (Vec<String>, Vec<String>) =
        rest.iter().cloned().partition(|a| !a.starts_with('-'));
    let flags = match Flags::parse(&flags, &["against-storage"], &["device"]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match (flags.get("device"), files.as_slice()) {
        (None, [file]) if !flags.is_set("against-storage") => offline(file),
        (Some(device), []) => online(device, flags.is_set("against-storage")),
        (None, [_]) => {
            eprintln!(
                "-against-storage needs -device=PATH: the appliance verifies its own file, \
                 since the chain key and the stored head never leave it\n{USAGE}"
            );
            ExitCode::from(2)
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn offline(file: &str) -> ExitCode {
    let opened = std::fs::File::open(file).map(std::io::BufReader::new);
    let report = match opened.and_then(|r| chain::verify(r, None, None)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(2);
        }
    };
    let ok = print_report(file, &report);
    if report.keyed_lines > 0 {
        println!(
            "offline check: structure, seq continuity and links verified; the MACs of {} \
             keyed lines were NOT (they need the appliance's chain key: run `ironseal audit \
             verify -device=PATH` with VAULT_ADDR and VAULT_TOKEN)",
            report.keyed_lines
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints what the report found; true when the chain is clean.
fn print_report(name: &str, r: &Report) -> bool {
    for c in &r.cuts {
        println!(
            "{name}: line {} (offset {}, {} bytes): cut ({}), recorded at line {}",
            c.line,
            c.offset,
            c.length,
            match c.reason.as_str() {
                chain::CUT_TORN => "a write torn by a crash",
                _ => "bytes that are not chain lines",
            },
            c.recorded_at
        );
    }
    for (line, data) in &r.behind {
        println!(
            "{name}: line {line}: the appliance found the file shorter than the chain head \
             it had recorded (cut short or replaced while it was down): {data}"
        );
    }
    if let Some((line, offset, reason)) = &r.broken {
        println!("{name}: line {line}: {reason} (offset {offset})");
        return false;
    }
    let clean = r.is_clean();
    println!(
        "{name}: {}, {} lines ({} keyed, {} unkeyed){}",
        if clean { "intact" } else { "NOT intact" },
        r.lines,
        r.keyed_lines,
        r.unkeyed_lines,
        if r.macs_checked {
            ", MACs checked with the chain key"
        } else {
            ""
        }
    );
    clean
}

fn online(device: &str, against_storage: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let path = format!("/v1/sys/audit-verify/{}", device.trim_matches('/'));
    let (status, body) = match runtime.block_on(get(&path)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 {
        let errors = json["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        eprintln!("Error verifying {device}: {status}: {errors}");
        return ExitCode::from(2);
    }
    let data = &json["data"];
    let report = match serde_json::from_value::<Report>(data.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("unexpected answer from the appliance: {e}");
            return ExitCode::from(2);
        }
    };
    let name = format!(
        "{} ({})",
        data["device"].as_str().unwrap_or(device),
        data["file_path"].as_str().unwrap_or_default()
    );
    let mut ok = print_report(&name, &report);
    match (&data["stored_head"], data["stored_head_found"].as_bool()) {
        (Value::Null, _) => println!("{name}: no chain head recorded in storage yet"),
        (head, Some(true)) => println!(
            "{name}: the chain reaches the head recorded in storage (seq {})",
            head["seq"]
        ),
        (head, _) => {
            println!(
                "{name}: the chain does NOT reach the head recorded in storage (seq {}, {}): \
                 the file was cut short or replaced",
                head["seq"], head["hash"]
            );
            if against_storage {
                ok = false;
            }
        }
    }
    if !against_storage {
        println!(
            "(not compared with storage: add -against-storage to fail when the tail is missing)"
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One GET to the appliance, with the CLI's usual environment. HTTP/1.0 keeps the
/// answer unchunked, so reading to the end of the connection gives the body.
async fn get(path: &str) -> Result<(u16, Vec<u8>), String> {
    let addr = std::env::var("VAULT_ADDR").unwrap_or_else(|_| "https://127.0.0.1:8200".into());
    let token = std::env::var("VAULT_TOKEN")
        .map_err(|_| "VAULT_TOKEN is not set: a token with sudo on sys/audit-verify is needed")?;
    let (tls, rest) = match addr.split_once("://") {
        Some(("https", r)) => (true, r),
        Some(("http", r)) => (false, r),
        _ => {
            return Err(format!(
                "VAULT_ADDR {addr:?} must start with http:// or https://"
            ))
        }
    };
    let hostport = rest.trim_end_matches('/');
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(hostport)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let target = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:{}", if tls { 443 } else { 80 })
    };
    let tcp = tokio::net::TcpStream::connect(&target)
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nX-Vault-Token: {token}\r\nAccept: application/json\r\n\r\n"
    );
    if tls {
        let connector = tls_connector()?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("VAULT_ADDR host {host:?}: {e}"))?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {addr}: {e}"))?;
        exchange(stream, &request).await
    } else {
        exchange(tcp, &request).await
    }
}

async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> Result<(u16, Vec<u8>), String> {
    let io = |e: std::io::Error| format!("talking to the appliance: {e}");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.map_err(io)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("a malformed HTTP answer")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("a malformed HTTP status line")?;
    Ok((status, answer[split + 4..].to_vec()))
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let ca = std::env::var("VAULT_CACERT").map_err(|_| {
        "VAULT_ADDR is https: set VAULT_CACERT to the appliance's CA certificate".to_string()
    })?;
    let pem = std::fs::read(&ca).map_err(|e| format!("VAULT_CACERT {ca}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("VAULT_CACERT {ca}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("VAULT_CACERT {ca}: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
