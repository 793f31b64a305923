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

use engine::audit::chain::{self, Report};
use hyper::Method;
use serde_json::Value;

use crate::cli::Flags;
use crate::vault_client::{self, Client};

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
        (Some(device), []) => {
            let head = if flags.is_set("against-storage") {
                StoredHead::Required
            } else {
                StoredHead::Reported
            };
            online(device, head)
        }
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

/// What a file that falls short of the chain head recorded in storage means for the exit
/// status of an online check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredHead {
    /// Reported only: the file alone is judged.
    Reported,
    /// `-against-storage`: the file must reach the head, else the check fails.
    Required,
}

fn online(device: &str, head_check: StoredHead) -> ExitCode {
    let path = format!("sys/audit-verify/{}", device.trim_matches('/'));
    let answer = Client::from_env(None, None, "sudo on sys/audit-verify")
        .map_err(vault_client::Error::Failed)
        .and_then(|client| client.request(Method::GET, &path, None));
    let json = match answer {
        Ok((_, json)) => json,
        Err(vault_client::Error::Status { status, message }) => {
            eprintln!("Error verifying {device}: {status}: {message}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
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
            if head_check == StoredHead::Required {
                ok = false;
            }
        }
    }
    if head_check == StoredHead::Reported {
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
